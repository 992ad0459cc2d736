"""Held-out pass@1 of several cascades trained on the same seeds and the same candidates.

    python bench/compare_methods.py --lake bench-lake [--methods svd no_filter agreement paper]

The first method samples; the others reuse its seeds and candidates (zero sampling calls),
so differences come from the filter alone. Prints one row per method with the paired
difference against no_filter on the same held-out items.
"""
from __future__ import annotations

import argparse
import json
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.flows.svd import svd
from selfimprove import config as configlib
from selfimprove.evaluation.heldout import paired_difference
from selfimprove.warehouse import Lake
from selfimprove.warehouse.views import format_table, query


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--lake", default="bench-lake")
    ap.add_argument("--preset", default="quickstart")
    ap.add_argument("--methods", nargs="+", default=["svd", "no_filter", "agreement"])
    ap.add_argument("--config", help="extra YAML/JSON applied to every run")
    ap.add_argument("--reuse", help="an earlier run whose seeds and candidates every method reuses")
    args = ap.parse_args()
    runs, first = {}, args.reuse
    for method in args.methods:
        start = time.time()
        result = svd(preset=args.preset, config_file=args.config, lake=args.lake, method=method, reuse=first)
        runs[method] = result["run_id"]
        first = first or result["run_id"]
        print(f"[bench] {method}: run {result['run_id']} in {time.time() - start:.0f} s")
    lake = Lake(args.lake)
    cfg = configlib.load(args.preset)
    rows = []
    base_samples = None
    for method, run in runs.items():
        q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
        (n_train,), = q("SELECT count(*) FROM train_examples WHERE run_id = RUN")
        prec = q("SELECT avg(CASE WHEN l.correct THEN 1.0 ELSE 0.0 END) FROM train_examples t "
                 "JOIN candidate_labels l USING (run_id, candidate_id) WHERE run_id = RUN")[0][0]
        (calls,), = q("SELECT count(*) FROM judgments WHERE run_id = RUN AND call <> 'agreement'")
        metric = {m: (v, lo, hi) for m, v, lo, hi in q(
            "SELECT model || ':' || metric, value, ci_low, ci_high FROM eval_metrics WHERE run_id = RUN")}
        samples = {m: [dict(zip(["item_id", "correct"], r)) for r in q(
            f"SELECT item_id, correct FROM eval_samples WHERE run_id = RUN AND model = '{m}'")] for m in ("base", "tuned")}
        base_samples = base_samples or samples["base"]
        tuned = metric.get("tuned:pass@1", (None, None, None))
        rows.append([method, n_train, prec, calls, metric["base:pass@1"][0], *tuned, samples["tuned"]])
    ref = next((r[-1] for r in rows if r[0] == "no_filter"), None)
    table = []
    for r in rows:
        delta = paired_difference(ref, r[-1], cfg.evaluation, r[0]) if ref and r[-1] else None
        table.append((r[0], r[1], _f(r[2]), r[3], _f(r[4]), _f(r[5]), f"[{_f(r[6])}, {_f(r[7])}]",
                      f"{_f(delta['value'])} [{_f(delta['ci_low'])}, {_f(delta['ci_high'])}]" if delta else "-"))
    cols = ["method", "train_examples", "train_precision", "judge_calls", "base_pass@1", "tuned_pass@1", "ci95",
            "delta_vs_no_filter (paired ci95)"]
    print(format_table(cols, table))
    print(json.dumps(runs))


def _f(v) -> str:
    return "-" if v is None else f"{v:.3f}"


if __name__ == "__main__":
    main()
