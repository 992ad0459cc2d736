"""The sampling stage in this process vs on a local Ray cluster with 1 and 2 engine workers, one run.

    python bench/scale_out.py [--seeds 64] [--n 4] [--shard 8] [--tokens 32]

Variants: this process (2 torch threads); Ray with 1 worker of 2 CPUs (the same threads: what Ray
itself costs); 1 worker of 1 CPU and 2 workers of 1 CPU (Ray gives an actor one torch thread per CPU).
Each variant runs the real `sample-candidates` stage body (shards checkpointed as in a run) on the
embedded model; each wall time includes loading the engine (in this process, or in each Ray actor).
Reported per variant: wall seconds, useful tokens/s, the ratio to the local stage, and for Ray
the extra seconds per shard against local. On 2 cores no speed-up is expected from 2 workers: the
point is that Ray adds little per shard. The cluster's own start (`ray.init`) is reported apart;
it is paid once per process.
"""
from __future__ import annotations

import argparse
import tempfile
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove import config as configlib
from selfimprove.tasks.common import StageContext, release_engines
from selfimprove.tasks.stages import ingest_seeds, sample_candidates


def stage(cfg, lake: str) -> tuple[float, dict]:
    ctx = StageContext(lake=lake, run_id=f"bench-{cfg.executor.kind}-{cfg.executor.workers}x{cfg.executor.cpus_per_worker:g}",
                       cache=False)
    seeds = ingest_seeds.fn(ctx, cfg)
    start = time.time()
    manifest = sample_candidates.fn(ctx, cfg, seeds)
    wall = time.time() - start
    release_engines()
    return wall, manifest


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=64)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--shard", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=32)
    args = ap.parse_args()
    base = {"seeds": {"size": args.seeds}, "shard_seeds": args.shard,
            "sampling": {"n": args.n, "max_new_tokens": args.tokens}, "backend": {"dtype": "bfloat16"}}
    import ray

    t = time.time()
    ray.init(include_dashboard=False, log_to_driver=False, namespace="selfimprove")
    ray_start = time.time() - t
    shards = -(-args.seeds // args.shard)
    rows, local = [], None
    with tempfile.TemporaryDirectory() as lake:
        # Ray gives an actor as many torch threads as CPUs: 1 worker × 2 CPUs matches this process's threads
        # (Ray's own cost), 1 × 1 and 2 × 1 show what the thread split does
        for kind, workers, cpus in (("local", 1, 2), ("ray", 1, 2), ("ray", 1, 1), ("ray", 2, 1)):
            cfg = configlib.load("quickstart", overrides={**base, "executor": {"kind": kind, "workers": workers,
                                                                               "cpus_per_worker": cpus}})
            wall, m = stage(cfg, lake)
            tokens = sum(b["counters"]["generated_tokens"] for b in m["backends"])
            local = local or wall
            rows.append((f"ray {workers}×{cpus} CPU" if kind == "ray" else "local", wall, tokens / wall, wall / local))
    print(f"sampling stage: {args.seeds} seeds × {args.n} samples, {args.tokens} new tokens, shards of {args.shard} "
          f"({shards} shards); ray.init {ray_start:.1f} s (once per process)")
    print(f"{'variant':<14} {'wall s':>8} {'tok/s':>8} {'vs local':>9} {'extra s/shard':>14}")
    for name, wall, rate, ratio in rows:
        print(f"{name:<14} {wall:>8.1f} {rate:>8.1f} {ratio:>9.2f} {(wall - local) / shards:>14.2f}")
    ray.shutdown()


if __name__ == "__main__":
    main()
