"""What one reading session saves when a run's summary, report and `compare` are rendered, one run.

    python bench/reading_session.py --lake LAKE [--run RUN] [--repeats 3]

Each rendering is timed twice in alternation: with every query opening its own DuckDB connection (listing the
manifests and building a view per table each time, as before), and inside `warehouse.views.reading`, where one
connection serves every query. Reported: connections opened and seconds (median of the repeats), and the ratio.
"""
from __future__ import annotations

import argparse
import contextlib
import statistics
import tempfile
import time
from pathlib import Path

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.reporting.compare import compare_runs
from selfimprove.reporting.report import _write
from selfimprove.reporting.summary import summary_items
from selfimprove.warehouse import Lake, views


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--run", help="default: the lake's latest run")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    lake = Lake(args.lake)
    run = args.run or views.query(lake, "SELECT run_id FROM runs ORDER BY started_at DESC LIMIT 1")[1][0][0]
    out = Path(tempfile.mkdtemp())
    renderings = {"summary": lambda: summary_items(lake, run), "report": lambda: _write(lake, run, out),
                  "compare": lambda: compare_runs(lake, [run])}
    opened = []
    real = views.connect
    views.connect = lambda lk: opened.append(1) or real(lk)
    print(f"lake {lake.location}, run {run}, {args.repeats} repeats (median seconds)")
    print(f"{'rendering':<10} {'connections':>12} {'seconds':>8} {'session conn.':>14} {'seconds':>8} {'ratio':>6}")
    for name, render in renderings.items():
        timing = {False: [], True: []}
        counts = {}
        for _ in range(args.repeats):
            for session in (False, True):
                opened.clear()
                start = time.perf_counter()
                with views.reading(lake) if session else contextlib.nullcontext():
                    render()
                timing[session].append(time.perf_counter() - start)
                counts[session] = len(opened)
        before, after = statistics.median(timing[False]), statistics.median(timing[True])
        print(f"{name:<10} {counts[False]:>12} {before:>8.2f} {counts[True]:>14} {after:>8.2f} {after / before:>6.2f}")


if __name__ == "__main__":
    main()
