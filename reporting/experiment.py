"""An experiment's table: each method over its repeats, against base, the placebo and the test-time baseline.

An experiment's runs carry `experiment: <id>/<repeat>/<method>` in their config. Per method (completed runs
only): held-out pass@1 of its trained model, mean over repeats with a 95 % t-interval; the paired delta against
base and against the placebo (the experiment's `placebo` method, same repeat, same items), pooled over repeats
(items x repeats, paired bootstrap); the base model's maj@k where the runs evaluated it; and the tokens generated
to make the model (sampling, judging, rollouts: every stage but the evaluations, copied stages counted as made)
per point of pass@1 gained over base.
"""
from __future__ import annotations

import math
from statistics import mean, stdev

from selfimprove.methods import get_method
from selfimprove.reporting.evidence import (eval_rows, made_tokens, majority, no_gain_over_placebo, paired, per_point,
                                            points, stored)
from selfimprove.warehouse.document import Item, Table
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.views import query

# two-sided 95 % quantiles of Student's t by degrees of freedom (a df between two listed takes the lower, wider one)
_T95 = {1: 12.706, 2: 4.303, 3: 3.182, 4: 2.776, 5: 2.571, 6: 2.447, 7: 2.365, 8: 2.306, 9: 2.262, 10: 2.228,
        12: 2.179, 15: 2.131, 20: 2.086, 30: 2.042}


def t_interval(values: list[float]) -> tuple[float, float | None, float | None]:
    """(mean, low, high) of a 95 % t-interval over repeats; no interval from one value."""
    m = mean(values)
    if len(values) < 2:
        return m, None, None
    df = len(values) - 1
    t = _T95[max(k for k in _T95 if k <= df)]  # past 30 df, 30's (wider than the exact value, never narrower)
    half = t * stdev(values) / math.sqrt(len(values))
    return m, m - half, m + half


def experiment_runs(lake: Lake, experiment: str) -> list[dict]:
    """Every run of the experiment (the newest per arm), with its repeat, method and status."""
    _, rows = query(lake, """
        SELECT run_id, status, json_extract_string(config_json, '$.experiment') AS arm FROM runs
        WHERE starts_with(json_extract_string(config_json, '$.experiment'), $prefix)
        QUALIFY row_number() OVER (PARTITION BY arm ORDER BY started_at DESC) = 1""", {"prefix": f"{experiment}/"})
    out = []
    for run_id, status, arm in rows:
        _, repeat, method = arm.split("/", 2)
        out.append({"run_id": run_id, "status": status, "repeat": int(repeat), "method": method})
    return sorted(out, key=lambda r: (r["repeat"], r["run_id"]))


def _percent(value: float, low: float | None = None, high: float | None = None) -> str:
    return f"{value * 100:.1f}" + (f" [{low * 100:.1f}, {high * 100:.1f}]" if low is not None else "")


def experiment_table(lake: Lake, experiment: str) -> list[Item]:
    runs = [r for r in experiment_runs(lake, experiment) if r["status"] == "completed"]
    if not runs:
        return [f"experiment {experiment}: no completed run in the lake yet"]
    methods = list(dict.fromkeys(r["method"] for r in runs))
    placebo = next((m for m in methods if get_method(m).placebo), None)
    by = {(r["method"], r["repeat"]): r["run_id"] for r in runs}
    rows, verdicts = [], []
    for method in methods:
        repeats = sorted(rep for (m, rep) in by if m == method)
        tuned = {rep: stored(lake, by[(method, rep)], "tuned", "pass@1") for rep in repeats}
        scored = [rep for rep in repeats if tuned[rep] is not None]
        if not scored:
            rows.append((method, len(repeats), "—", "—", "—", "—", "—", "—"))
            continue
        m, lo, hi = t_interval([tuned[rep][0] for rep in scored])
        run = {rep: by[(method, rep)] for rep in scored}
        vs_base = paired([(eval_rows(lake, run[rep], "base", f"{rep}:"), eval_rows(lake, run[rep], "tuned", f"{rep}:"))
                          for rep in scored], f"{method} vs base")
        vs_placebo: tuple = (None, None, None, 0)
        if placebo and method != placebo:
            vs_placebo = paired([(eval_rows(lake, by[(placebo, rep)], "tuned", f"{rep}:"),
                                  eval_rows(lake, run[rep], "tuned", f"{rep}:")) for rep in scored if (placebo, rep) in by],
                                f"{method} vs {placebo}")
        votes = [v for rep in scored if (v := majority(lake, run[rep]))]
        tokens = mean(made_tokens(lake, run[rep]) for rep in scored)
        rows.append((method, len(scored), _percent(m, lo, hi), points(vs_base), points(vs_placebo),
                     f"{_percent(mean(v[0] for v in votes))} (k={max(v[1] for v in votes):.0f})" if votes else "—",
                     f"{tokens:,.0f}", per_point(tokens, vs_base[0])))
        if no_gain_over_placebo(vs_placebo):
            verdicts.append(f"{method}: the filter adds no measurable gain over random selection here "
                            f"({points(vs_placebo)} points over {placebo}, on {vs_placebo[3]} items x repeats)")
    return [f"# experiment {experiment}: {len(methods)} method(s), {max(r['repeat'] for r in runs)} repeat(s)", "",
            "pass@1 of each method's trained model, mean over repeats [95 % t-interval]; deltas in points, pooled "
            "over repeats (items x repeats, paired bootstrap 95 %)",
            Table(["method", "repeats", "pass@1 %", "vs base", f"vs {placebo or 'placebo'}", "base maj@k %",
                   "tokens to make", "tokens per point"], rows, max_width=40), *verdicts]
