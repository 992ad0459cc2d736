"""Past one machine, measured in one run: the sampling stage here vs on Ray, and the lake local vs on S3.

    python bench/scale_out.py [--seeds 64] [--n 4] [--shard 8] [--tokens 32]
    python bench/scale_out.py lake [--rows 100000]

`lake`: writes --rows and 10 × --rows candidate rows (streamed from a generator, ~300 characters of text
each) as one part, in a fresh process each, to a local lake and to an S3 lake on moto's standalone
server on 127.0.0.1 (started here; or the server in $AWS_ENDPOINT_URL). Reported: write and read rows/s,
and the writer's peak RSS above its RSS before writing, which stays flat as rows grow 10×
(the writer holds one 8,192-row batch). Read: the part back as Arrow, and a DuckDB full scan through
the lake's views.

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
import os
import sys
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


def _rss_mb() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20


def _write_part(location: str, rows: int, queue) -> None:
    """In a fresh process: stream `rows` candidates into one staged part; report seconds and memory."""
    from selfimprove.warehouse import Lake

    def candidates():
        for i in range(rows):
            yield {"candidate_id": f"s{i // 4}#{i % 4}", "seed_id": f"s{i // 4}", "sample_index": i % 4,
                   "text": f"Step 1: {i} + {i} = {2 * i}. " * 12, "final_answer": str(2 * i), "n_tokens": 96,
                   "prompt_hash": "bench"}

    import threading

    lake = Lake(location, {"stage": "bench"}, staged=True)
    peak, done = [_rss_mb()], threading.Event()

    def sample() -> None:  # the writer's own peak: ru_maxrss would also count the imports before it
        while not done.wait(0.005):
            peak[0] = max(peak[0], _rss_mb())

    sampler = threading.Thread(target=sample, daemon=True)
    before, start = peak[0], time.time()
    sampler.start()
    entry = lake.write("candidates", f"bench-{rows}", candidates())
    seconds = time.time() - start
    done.set()
    sampler.join()
    queue.put((entry, seconds, before, max(peak[0], _rss_mb())))


def lake_io(rows: int) -> None:
    import multiprocessing
    import socket
    import subprocess
    import sys

    import boto3

    from selfimprove.warehouse import Lake
    from selfimprove.storage.stores import read_table
    from selfimprove.warehouse.views import query

    server = None
    if not os.environ.get("AWS_ENDPOINT_URL"):
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        server = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                                  stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        os.environ.update(AWS_ENDPOINT_URL=f"http://127.0.0.1:{port}", AWS_ACCESS_KEY_ID="bench",
                          AWS_SECRET_ACCESS_KEY="bench", AWS_DEFAULT_REGION="us-east-1")
        for _ in range(100):
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                time.sleep(0.2)
    boto3.client("s3").create_bucket(Bucket="bench-lake")
    ctx = multiprocessing.get_context("spawn")
    print(f"{'lake':<6} {'rows':>8} {'MB':>6} {'write rows/s':>13} {'writer RSS before':>18} {'peak':>7} "
          f"{'peak - before':>14} {'arrow read rows/s':>18} {'duckdb scan rows/s':>19}")
    try:
        with tempfile.TemporaryDirectory() as local:
            for name, location in (("local", local), ("s3", "s3://bench-lake/lake")):
                for n in (rows, 10 * rows):
                    queue = ctx.Queue()
                    proc = ctx.Process(target=_write_part, args=(location, n, queue))
                    proc.start()
                    entry, seconds, before, peak = queue.get()
                    proc.join()
                    lake = Lake(location)
                    lake.write_manifest(f"bench-{n}", "candidates", {"stage": "candidates", "version": "bench",
                                                                     "run_id": f"bench-{n}", "files": [entry]})
                    start = time.time()
                    assert read_table(entry["path"]).num_rows == n
                    arrow_s = time.time() - start
                    start = time.time()
                    (count, _), = query(lake, "SELECT count(*), sum(length(text)) FROM candidates WHERE run_id = $r",
                                        {"r": f"bench-{n}"})[1]
                    scan_s = time.time() - start
                    assert count == n
                    size = next(e.size for e in lake.storage.list(f"candidates/run=bench-{n}/")) / 2**20
                    print(f"{name:<6} {n:>8,} {size:>6.1f} {n / seconds:>13,.0f} {before:>15.0f} MB {peak:>4.0f} MB "
                          f"{peak - before:>11.0f} MB {n / arrow_s:>18,.0f} {n / scan_s:>19,.0f}")
    finally:
        if server:
            server.terminate()


if __name__ == "__main__":
    if sys.argv[1:2] == ["lake"]:
        ap = argparse.ArgumentParser(prog="scale_out.py lake")
        ap.add_argument("--rows", type=int, default=100_000)
        lake_io(ap.parse_args(sys.argv[2:]).rows)
    else:
        main()
