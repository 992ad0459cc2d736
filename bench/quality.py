"""The quality matrix: does the filter beat a placebo of the same size, the base model's majority vote, and noise?

    python bench/quality.py --lake LAKE [--repeats 3] [--resume EXPERIMENT_ID] [--methods svd random_keep no_filter rft]

Runs `selfimprove experiment` at quickstart budgets with the test-time baseline on (base maj@8, k = sampling.n):
each method `repeats` times on fresh generator and sampling seeds, the same 200 held-out items, the placebo
(`random_keep`) on each repeat's SVD candidates with SVD's count of examples. Prints the experiment's table
(mean pass@1 over repeats with a 95 % t-interval, deltas vs base and vs the placebo pooled over items x
repeats, base maj@8, tokens per point) and each run's own numbers. Resumable: `--resume` the printed id.
"""
from __future__ import annotations

import argparse
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.flows.experiment import experiment
from selfimprove.reporting.experiment import experiment_runs
from selfimprove.warehouse import Lake
from selfimprove.warehouse.views import format_table, query


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--resume", metavar="EXPERIMENT_ID")
    parser.add_argument("--methods", nargs="+", default=["svd", "random_keep", "no_filter", "rft"])
    args = parser.parse_args()
    start = time.time()
    result = experiment(methods=args.methods, repeats=args.repeats, preset="quickstart", lake=args.lake,
                        overrides={"majority": {"enabled": True}}, experiment_id=args.resume)
    print(result["summary"])
    lake = Lake(args.lake)
    rows = []
    for r in experiment_runs(lake, result["experiment_id"]):
        _, metrics = query(lake, "SELECT model, value FROM eval_metrics WHERE run_id = $r AND metric = 'pass@1'",
                           {"r": r["run_id"]})
        p1 = dict(metrics)
        (examples,), = query(lake, "SELECT count(*) FROM train_examples WHERE run_id = $r", {"r": r["run_id"]})[1]
        rows.append((r["repeat"], r["method"], r["run_id"], examples, p1.get("base"), p1.get("tuned"),
                     p1.get("base+majority")))
    print(format_table(["repeat", "method", "run", "examples", "base pass@1", "tuned pass@1", "base maj@k"], rows))
    print(f"experiment {result['experiment_id']}: {time.time() - start:.0f} s this call")


if __name__ == "__main__":
    main()
