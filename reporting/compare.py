"""`selfimprove compare`: runs side by side, each method's columns asked of its view."""
from __future__ import annotations

from selfimprove.reporting.evidence import evidence, no_gain_over_placebo, points
from selfimprove.reporting.method_views import run_config, view_of
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.views import query, run_state


def compare_runs(lake: Lake, run_ids: list[str]) -> tuple[list[str], list[tuple], list[str]]:
    """One row per run: method (as its view labels it), training examples, generated tokens (what the
    method's view counts: samples, and for SD-Zero its revisions and rollouts; never judges), judge
    model calls, held-out pass@1 of base and fine-tuned models (each at its best evaluation
    temperature when T_eval was swept) with 95 % CIs, the paired delta, and other evaluated models; then
    the trained model's evidence (`evidence.py`): its delta over the placebo that reused its candidates, the
    base model's maj@k and the tokens that made the model per point gained. And notes in words: where the
    placebo matches the method."""
    known = {r for (r,) in query(lake, "SELECT run_id FROM runs WHERE list_contains($ids, run_id)", {"ids": run_ids})[1]}
    missing = [r for r in run_ids if r not in known]
    if missing:
        raise ValueError(f"no run {missing[0]!r} in the lake at {lake.location}")
    columns = ["run_id", "flow", "status", "method", "train_examples", "generated_tokens", "judge_calls", "base pass@1 [95% CI]",
               "tuned pass@1 [95% CI]", "paired delta [95% CI]", "other models pass@1", "heldout_items",
               "vs placebo (points)", "base maj@k", "tokens per point"]
    rows, notes = [], []
    for run in run_ids:
        view = view_of(lake, run)
        _, [common] = query(lake, """
            WITH best AS (
                SELECT split_part(model, '@', 1) AS kind, arg_max(model, value) AS label, max(value) AS p1,
                       arg_max(ci_low, value) AS lo, arg_max(ci_high, value) AS hi, arg_max(n, value) AS n
                FROM eval_metrics WHERE metric = 'pass@1' AND run_id = $run GROUP BY 1),
            fmt AS (SELECT kind, label || ': ' || round(p1, 3) || ' [' || round(lo, 3) || ', ' || round(hi, 3) || ']' AS s, n
                    FROM best)
            SELECT (SELECT flow FROM runs WHERE run_id = $run),
                   (SELECT count(*) FROM train_examples WHERE run_id = $run),
                   (SELECT count(*) FROM judgments WHERE run_id = $run AND model_call),
                   (SELECT s FROM fmt WHERE kind = 'base'), (SELECT s FROM fmt WHERE kind = 'tuned'),
                   (SELECT round(value, 3) || ' [' || round(ci_low, 3) || ', ' || round(ci_high, 3) || ']' FROM eval_metrics
                    WHERE run_id = $run AND metric = 'pass@1_delta_vs_base' AND model LIKE 'tuned%'),
                   (SELECT string_agg(s, '; ' ORDER BY s) FROM fmt WHERE kind NOT IN ('base', 'tuned')),
                   (SELECT max(n) FROM fmt)""", {"run": run})
        flow, examples, judge_calls, base, tuned, delta, other, items = common
        e = evidence(lake, run)
        vote = e.get("majority")
        rows.append((run, flow, run_state(lake, run), view.label(run_config(lake, run)), examples, view.generated_tokens(lake, run), judge_calls,
                     base, tuned, delta, other, items,
                     f"{points(e['vs_placebo'])} ({e['placebo']})" if e.get("placebo") else "—",
                     f"{vote[0]:.3f} at k={vote[1]:.0f}" if vote else "—", e.get("per_point", "—")))
        if e and no_gain_over_placebo(e["vs_placebo"]):
            notes.append(f"{run}: the filter adds no measurable gain over random selection here ({points(e['vs_placebo'])} "
                         f"points over placebo run {e['placebo']}, on {e['vs_placebo'][3]} items)")
    return columns, rows, notes
