"""Evaluation throughput against the raw backend on the same prompts, and sandbox overhead per program.

    python bench/eval_throughput.py [--model default] [--items 64] [--programs 32]

1. `evaluate()` (generate, extract, score with math-verify, build rows) against
   `backend.generate()` alone on the same held-out prompts, greedy, one run each:
   generated tokens/s of both and the time ratio (1.0 = scoring costs nothing).
2. The code sandbox: the same trivial programs run (a) with `python -I -S -c` as a plain
   subprocess and (b) in the sandbox one at a time, then (c) `run_many` in parallel; reported
   as milliseconds per program and the ratio sandbox/plain.
"""
from __future__ import annotations

import argparse
import subprocess
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.inference import models
from selfimprove.inference.base import BackendConfig, SamplingParams
from selfimprove.inference.transformers_backend import TransformersBackend
from selfimprove.evaluation.heldout import EvalConfig, evaluate, message
from selfimprove.data.datasets import builtin
from selfimprove.scoring.sandbox import SandboxConfig, launcher, run_many, run_program


def eval_vs_raw(model: str, n_items: int) -> None:
    backend = TransformersBackend(models.resolve(model), BackendConfig())
    cfg = EvalConfig()
    items = builtin("arithmetic", cfg.source)[:n_items]
    backend.generate([message(items[0])], SamplingParams(temperature=0, max_new_tokens=4))  # warm-up
    params = SamplingParams(temperature=0, max_new_tokens=cfg.max_new_tokens)

    before, start = backend.counters.generated_tokens, time.time()
    backend.generate([message(it) for it in items], params)
    raw, raw_tokens = time.time() - start, backend.counters.generated_tokens - before

    before, start = backend.counters.generated_tokens, time.time()
    rows = evaluate(backend, items, cfg, "bench")
    ours, ours_tokens = time.time() - start, backend.counters.generated_tokens - before
    acc = sum(bool(r["correct"]) for r in rows) / len(rows)
    print(f"evaluation, {n_items} arithmetic items, greedy, {cfg.max_new_tokens} new tokens (pass@1 {acc:.3f})")
    print(f"  evaluate(): {ours_tokens / ours:.1f} tok/s ({ours:.2f} s); backend.generate(): {raw_tokens / raw:.1f} tok/s ({raw:.2f} s)")
    print(f"  time ratio evaluate/generate = {ours / raw:.3f}")


def sandbox_overhead(n: int) -> None:
    cfg = SandboxConfig()
    isolation, argv, _ = launcher(cfg)
    python = argv[-3]
    programs = [f"def f(x):\n    return x * {i}\nassert f(2) == {2 * i}\n" for i in range(n)]
    start = time.time()
    for p in programs:
        subprocess.run([python, "-I", "-S", "-c", p], check=True)
    plain = (time.time() - start) / n
    start = time.time()
    statuses = [run_program(p, cfg).status for p in programs]
    boxed = (time.time() - start) / n
    start = time.time()
    parallel = run_many(programs, cfg)
    many = (time.time() - start) / n
    assert statuses == ["passed"] * n and all(r.status == "passed" for r in parallel)
    print(f"sandbox ({isolation}, {python}), {n} trivial programs")
    print(f"  plain subprocess {plain * 1000:.1f} ms/program; sandbox {boxed * 1000:.1f} ms/program "
          f"(ratio {boxed / plain:.2f}); run_many in parallel {many * 1000:.1f} ms/program")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--items", type=int, default=64)
    ap.add_argument("--programs", type=int, default=32)
    args = ap.parse_args()
    sandbox_overhead(args.programs)
    eval_vs_raw(args.model, args.items)


if __name__ == "__main__":
    main()
