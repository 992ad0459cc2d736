"""Sampling throughput of the project's backend against raw `model.generate`, same prompts, one run.

    python bench/backend_throughput.py [--model default] [--prompts 32] [--n 8] [--batch-size 64]

Both sides generate n samples per prompt, 64 new tokens, the same batches of the same
chat-formatted prompts. Reported: generated tokens/s (tokens up to EOS) of each, the time
ratio ours/raw (1.0 = no overhead), and the process's peak resident memory.
"""
from __future__ import annotations

import argparse
import resource
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.inference import models
from selfimprove.inference.base import BackendConfig, SamplingParams, length_until_eos
from selfimprove.inference.transformers_backend import TransformersBackend
from selfimprove.generation.sampling import user_message
from selfimprove.data.seeds import SeedSource, generate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    import torch

    backend = TransformersBackend(models.resolve(args.model), BackendConfig(dtype=args.dtype, batch_size=args.batch_size))
    messages = [user_message(s["question"], "sample_math") for s in generate(SeedSource(size=args.prompts))]
    params = SamplingParams(n=args.n, max_new_tokens=64, seed=0)
    backend.generate(messages[:1], SamplingParams(n=1, max_new_tokens=4))  # warm-up, not timed
    backend.counters.generated_tokens = 0

    start = time.time()
    backend.generate(messages, params)
    ours = time.time() - start
    ours_tokens = backend.counters.generated_tokens

    stop = backend._stop
    raw_tokens, start = 0, time.time()
    for idx, enc in backend._batches([backend.render(m) for m in messages], args.n):
        torch.manual_seed(0)
        with torch.inference_mode():
            out = backend.model.generate(**enc, max_new_tokens=64, do_sample=True, temperature=params.temperature,
                                         top_p=params.top_p, top_k=params.top_k, num_return_sequences=args.n)
        raw_tokens += sum(length_until_eos(seq.tolist(), stop) for seq in out[:, enc["input_ids"].shape[1]:])
    raw = time.time() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(f"{args.prompts} prompts x {args.n} samples, batch {args.batch_size}, {args.dtype}")
    print(f"ours: {ours_tokens / ours:.1f} tok/s ({ours:.1f} s); raw generate: {raw_tokens / raw:.1f} tok/s ({raw:.1f} s)")
    print(f"time ratio ours/raw = {ours / raw:.3f}; peak RSS {peak:.0f} MiB")


if __name__ == "__main__":
    main()
