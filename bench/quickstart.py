"""The quickstart, end to end, as a user runs it: a baseline commit against the working tree, side by side.

    python bench/quickstart.py [--baseline main] [--rounds 1] [--small] [--out DIR]

Each side is installed apart (the baseline from a `git worktree` of its commit, the working tree as it is now,
uncommitted changes included) and runs `selfimprove run svd` (the quickstart preset; `--small`: 24 seeds x 4
samples, 40 held-out items, for smoke tests) in a process of its own, into a fresh lake, so nothing is reused
between them. Rounds alternate which side goes first. Reported per side: each stage's seconds (from the run's
manifests), the process's wall time, the time outside stages (Prefect's temporary server, imports, model loads
between stages), held-out pass@1 of base and tuned, and the ratios working tree / baseline.
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SMALL = {"seeds": {"size": 24}, "sampling": {"n": 4}, "evaluation": {"source": {"size": 40, "seed": 777}}}


def install(source: Path, target: Path) -> Path:
    """A site folder with `source`'s selfimprove (dependencies come from the running environment)."""
    subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-build-isolation", "-t", str(target),
                    str(source)], check=True)
    return target


def side(work: Path, name: str, ref: str | None) -> Path:
    if ref is None:
        return install(ROOT, work / f"{name}-site")
    tree = work / f"{name}-tree"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "-f", "--detach", str(tree), ref], check=True,
                   capture_output=True)
    try:
        return install(tree, work / f"{name}-site")
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], check=False)


def run(site: Path, lake: Path, config: Path | None) -> dict:
    """One quickstart in its own process: wall seconds, stage seconds, pass@1."""
    command = [sys.executable, "-c", "from selfimprove.flows.cli import main; main()", "run", "svd", "--lake", str(lake)]
    start = time.time()
    subprocess.run(command + (["--config", str(config)] if config else []), check=True, cwd=lake.parent,
                   env={**os.environ, "PYTHONPATH": str(site)}, stdout=subprocess.DEVNULL)
    wall = time.time() - start
    (manifests,) = (lake / "_manifests").iterdir()
    stages = {}
    for path in sorted(manifests.glob("*.json"), key=lambda p: json.loads(p.read_text()).get("order", 99)):
        manifest = json.loads(path.read_text())
        stages[manifest["stage"]] = manifest.get("seconds") or 0.0
    import polars as pl

    metrics = pl.read_parquet(lake / "eval_metrics" / "**" / "*.parquet").filter(pl.col("metric") == "pass@1")
    stages.update({f"pass@1 {m}": v for m, v in zip(metrics["model"], metrics["value"])})
    samples = pl.read_parquet(lake / "eval_samples" / "**" / "*.parquet").to_dicts()
    return {"wall": wall, "stages": stages, "samples": samples}


def paired(results: dict[str, list[dict]], model: str) -> str:
    """The working tree's pass@1 minus the baseline's for `model` (base, tuned), paired on the held-out items
    (round by round), with a 95 % bootstrap interval."""
    from selfimprove.evaluation.heldout import EvalConfig, paired_difference

    base, tree = ([{**row, "item_id": f"{r}:{row['item_id']}"} for r, run in enumerate(results[name])
                   for row in run["samples"] if row["model"] == model] for name in results)
    if not base or not tree:
        return f"{model}: not evaluated on both sides"
    row = paired_difference(base, tree, EvalConfig(), model)
    outputs = {r["item_id"]: r["output"] for r in base}
    same = sum(outputs.get(r["item_id"]) == r["output"] for r in tree)
    return (f"{model}: {100 * row['value']:+.1f} points [{100 * row['ci_low']:+.1f}, {100 * row['ci_high']:+.1f}] "
            f"over {row['n']} items; identical outputs on {same}")


def report(results: dict[str, list[dict]]) -> None:
    names = list(results)
    stages = [s for s in results[names[0]][0]["stages"] if not s.startswith("pass@1")]
    mean = lambda side, key: sum(r["stages"].get(key, 0.0) for r in results[side]) / len(results[side])  # noqa: E731
    print(f"{'':24s}" + "".join(f"{n:>16s}" for n in names) + f"{'ratio':>10s}")
    rows = [(s, [mean(n, s) for n in names]) for s in stages]
    walls = [sum(r["wall"] for r in results[n]) / len(results[n]) for n in names]
    rows += [("(all stages)", [sum(mean(n, s) for s in stages) for n in names]), ("wall", walls)]
    rows += [("outside stages", [w - sum(mean(n, s) for s in stages) for n, w in zip(names, walls)])]
    for label, values in rows:
        ratio = values[1] / values[0] if values[0] else float("nan")
        print(f"{label:24s}" + "".join(f"{v:16.1f}" for v in values) + f"{ratio:10.2f}")
    for key in sorted({k for n in names for r in results[n] for k in r["stages"] if k.startswith("pass@1")}):
        print(f"{key:24s}" + "".join(f"{mean(n, key):16.3f}" for n in names))


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--baseline", default="main", help="git ref to compare the working tree against")
    ap.add_argument("--rounds", type=int, default=1)
    ap.add_argument("--small", action="store_true", help="a small budget (smoke test), not the quickstart's")
    ap.add_argument("--out", help="folder for lakes and installs (default: a temporary one)")
    args = ap.parse_args()
    work = Path(args.out or tempfile.mkdtemp(prefix="bench-quickstart-"))
    work.mkdir(parents=True, exist_ok=True)
    config = None
    if args.small:
        config = work / "small.json"
        config.write_text(json.dumps(SMALL))
    sites = {f"baseline {args.baseline}": side(work, "baseline", args.baseline), "working tree": side(work, "tree", None)}
    results: dict[str, list[dict]] = {name: [] for name in sites}
    for r in range(args.rounds):
        order = list(sites) if r % 2 == 0 else list(sites)[::-1]
        for name in order:
            lake = work / f"round{r + 1}-{name.split()[0]}" / "lake"
            lake.parent.mkdir(parents=True, exist_ok=True)
            results[name].append(run(sites[name], lake, config))
            print(f"round {r + 1}: {name}: {results[name][-1]['wall']:.0f} s", flush=True)
    print(f"\nquickstart{' (--small)' if args.small else ''}, {args.rounds} round(s), seconds (mean over rounds):")
    report(results)
    print("working tree minus baseline, paired on the same held-out items:")
    for model in ("base", "tuned"):
        print("  " + paired(results, model))


if __name__ == "__main__":
    main()
