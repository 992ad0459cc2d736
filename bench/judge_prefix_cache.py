"""What prefix caching buys a judging stage on the vLLM engine: the same cascade, caching on and off, one run.

    python bench/judge_prefix_cache.py [--seeds 32] [--n 8]

Candidates are sampled once (transformers), then the quickstart cascade (agreement, then advisory
cycle-consistency x2, factuality, correctness as probability judges) judges them on a vLLM
engine with `enable_prefix_caching` on, then off. Judge prompts share their instructions, the
votes of one candidate share everything but the sampled part: that is what the cache reuses.
Reported: judging seconds each way and their ratio; the verdicts must be the same.
"""
from __future__ import annotations

import argparse
import time
from dataclasses import replace

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove import config as configlib
from selfimprove.data.seeds import SeedSource, generate
from selfimprove.generation.sampling import sample
from selfimprove.inference import models
from selfimprove.inference.base import BackendConfig, load_backend
from selfimprove.verification.cascade import run_cascade


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--seeds", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    args = ap.parse_args()
    cfg = configlib.load("quickstart")
    path = models.resolve("default")
    seeds = generate(SeedSource(size=args.seeds))
    with load_backend(path, BackendConfig()) as hf:
        candidates = sample(hf, seeds, replace(cfg.sampling, n=args.n))
    cascade = replace(cfg.cascade, selection="all_valid")
    timings, verdicts = {}, {}
    for caching in (True, False):
        settings = replace(BackendConfig().vllm, enable_prefix_caching=caching)
        with load_backend(path, BackendConfig(kind="vllm", vllm=settings)) as engine:
            start = time.time()
            _, out = run_cascade(engine, seeds, candidates, cascade)
            timings[caching] = time.time() - start
            verdicts[caching] = [v["accepted"] for v in out]
    same = sum(a == b for a, b in zip(verdicts[True], verdicts[False]))
    print(f"{args.seeds} seeds x {args.n} candidates, quickstart cascade (all candidates judged), vLLM bf16, 2 CPU cores")
    print(f"judging: prefix caching on {timings[True]:.1f} s, off {timings[False]:.1f} s, ratio on/off "
          f"{timings[True] / timings[False]:.2f}; verdicts identical {same}/{len(verdicts[True])}")


if __name__ == "__main__":
    main()
