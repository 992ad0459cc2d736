"""Sampling throughput of each engine against its own raw engine and the full-batch ceiling, one run.

    python bench/backend_throughput.py [--backend transformers transformers/static vllm openai] [--prompts 32] [--n 8]
                                       [--samplers topk_first reference] [--stop on off] [--attention segmented dense]

The same chat-formatted arithmetic prompts, n samples each, up to 64 new tokens, T 0.8:
- stage: the sampling stage's own call (`generation.sampling.sample` through the Backend);
  `transformers` is continuous batching (the default), `transformers/static` padded batches;
- own raw engine: transformers `model.generate` on the same batches, or one `generate_batch`
  call with the stage's paged-cache sizing; vLLM: one completions request with every prompt,
  straight to the engine (`openai` uses the same server);
- ceiling: the model's forward throughput at the stage's batch size: raw transformers `generate`, greedy, every
  sequence forced to the full 64 tokens (no sampler, no early stop, no idle slot), so the sampler's cost counts
  against the stage;
- sampled ceiling (the earlier definition, kept beside it): the same forced to 64 tokens but sampling through
  transformers' own top-k/top-p chain.
transformers runs once per sampler (`--samplers`), stop setting (`--stop`: end a candidate at its boxed answer) and
continuous batching's attention (`--attention`).
Reported: useful tokens/s (tokens up to EOS or the stop), tokens per candidate, the stage's seconds, the ratios
stage/ceiling, stage/sampled ceiling and stage/own raw, and the engine's start-up time. `openai` is served by a
`vllm serve` this script starts.
"""
from __future__ import annotations

import argparse
import asyncio
import os
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.data.seeds import SeedSource, generate
from selfimprove.generation.sampling import SamplingConfig, sample, user_message
from selfimprove.inference import models
from selfimprove.inference.base import BackendConfig, SamplingParams, length_until_eos, load_backend
from selfimprove.inference.transformers_backend import TransformersBackend


def useful(rows: list[dict]) -> int:
    return sum(r["n_tokens"] for r in rows)


def ceiling(path, seeds, cfg: SamplingConfig, batch_size: int) -> dict[str, float]:
    """tok/s of raw `generate` on the stage's batches: greedy forced to full length (`ceiling`), sampling forced to
    full length (`sampled`), and sampling until EOS (`raw`, useful tokens)."""
    import torch

    hf = TransformersBackend(path, BackendConfig(dtype="bfloat16", batch_size=batch_size))
    texts = [hf.render(user_message(s["question"], cfg.prompt)) for s in seeds]
    sampled = dict(do_sample=True, temperature=cfg.temperature, top_p=cfg.top_p, top_k=cfg.top_k)
    rates = {}
    for name, kwargs, forced in (("ceiling", {"do_sample": False}, True), ("sampled", sampled, True), ("raw", sampled, False)):
        tokens, start = 0, time.time()
        for idx, enc in hf._batches(texts, cfg.n):
            torch.manual_seed(0)
            rows = {k: v.repeat_interleave(cfg.n, dim=0) for k, v in enc.items()}
            with torch.inference_mode():
                out = hf.model.generate(**rows, max_new_tokens=cfg.max_new_tokens, **kwargs,
                                        **({"min_new_tokens": cfg.max_new_tokens} if forced else {}))
            new = out[:, enc["input_ids"].shape[1]:]
            tokens += new.numel() if forced else sum(length_until_eos(seq.tolist(), hf._stop) for seq in new)
        rates[name] = tokens / (time.time() - start)
    hf.close()
    return rates


def raw_continuous(backend: TransformersBackend, texts: list[str], cfg: SamplingConfig) -> float:
    """Useful tok/s of one `generate_batch` call (prompts repeated n times) with the stage's cache sizing."""
    from transformers import ContinuousBatchingConfig, GenerationConfig

    ids = [backend.tokenizer(t, add_special_tokens=False).input_ids for t in texts for _ in range(cfg.n)]
    generation = GenerationConfig(max_new_tokens=cfg.max_new_tokens, do_sample=True, temperature=cfg.temperature,
                                  top_p=cfg.top_p, top_k=cfg.top_k, eos_token_id=sorted(backend._stop),
                                  pad_token_id=backend.tokenizer.pad_token_id)
    sizing = backend._paged_cache(ids, 1, cfg.max_new_tokens)
    start = time.time()
    out = backend.model.generate_batch(ids, generation_config=generation, warmup=False,
                                       continuous_batching_config=ContinuousBatchingConfig(seed=0, **sizing))
    return sum(length_until_eos(o.generated_tokens, backend._stop) for o in out.values()) / (time.time() - start)


def raw_vllm(base_url: str, texts: list[str], cfg: SamplingConfig) -> float:
    """Useful tok/s of one completions request carrying every prompt, straight to the engine."""
    from openai import AsyncOpenAI

    async def run():
        async with AsyncOpenAI(base_url=base_url, api_key="EMPTY") as client:
            return await client.completions.create(model="policy", prompt=texts, n=cfg.n, max_tokens=cfg.max_new_tokens,
                                                   temperature=cfg.temperature, top_p=cfg.top_p,
                                                   extra_body={"top_k": cfg.top_k})

    start = time.time()
    response = asyncio.run(run())
    return response.usage.completion_tokens / (time.time() - start)


def variants(name: str, samplers: list[str], stops: list[str], attentions: list[str]) -> list[tuple[str, dict, bool]]:
    """(label, transformers settings, stop) for each run of an engine: transformers once per sampler, stop and (in
    continuous batching) attention."""
    kind, _, batching = name.partition("/")
    if kind != "transformers":
        return [(name, {}, stop == "on") for stop in stops]
    batching = batching or "continuous"
    return [(f"{name} {sampler}{' +stop' if stop == 'on' else ''}{f' {attention}' if batching == 'continuous' else ''}",
             {"batching": batching, "sampler": sampler, "attention": attention}, stop == "on")
            for sampler in samplers for stop in stops for attention in (attentions if batching == "continuous" else attentions[:1])]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--backend", nargs="+", default=["transformers", "transformers/static", "vllm", "openai"])
    ap.add_argument("--samplers", nargs="+", default=["topk_first", "reference"])
    ap.add_argument("--stop", nargs="+", default=["on", "off"], choices=["on", "off"])
    ap.add_argument("--attention", nargs="+", default=["segmented", "dense"], choices=["segmented", "dense"])
    ap.add_argument("--prompts", type=int, default=32)
    ap.add_argument("--n", type=int, default=8)
    ap.add_argument("--batch-size", type=int, default=64)
    args = ap.parse_args()
    path = models.resolve(args.model)
    seeds = generate(SeedSource(size=args.prompts))
    rates = ceiling(path, seeds, SamplingConfig(n=args.n, max_new_tokens=64), args.batch_size)
    print(f"{args.prompts} prompts x {args.n} samples, up to 64 tokens, T 0.8, bf16, {os.cpu_count()} CPU cores")
    print(f"ceiling (raw generate, greedy, forced to 64 tokens): {rates['ceiling']:.1f} tok/s; sampled ceiling (transformers' "
          f"sampler, forced to 64): {rates['sampled']:.1f} tok/s; raw generate: {rates['raw']:.1f} useful tok/s")
    server = None
    for name in args.backend:
        kind = name.partition("/")[0]
        for label, settings, stop in variants(name, args.samplers, args.stop, args.attention):
            cfg = SamplingConfig(n=args.n, max_new_tokens=64, stop_at_answer=stop)
            config = BackendConfig(kind=kind, dtype="bfloat16", batch_size=args.batch_size, transformers=settings)
            start = time.time()
            if kind == "openai":
                from selfimprove.inference.vllm_backend import EngineProcess

                server = EngineProcess(str(path), BackendConfig(kind="vllm"))
                config = BackendConfig(kind="openai", openai={"base_url": server.base_url, "send_seed": False,
                                                              "tokenizer": str(path), "max_concurrency": 64})
            backend = load_backend(path, config)
            startup = time.time() - start
            sample(backend, seeds[:2], SamplingConfig(n=1, max_new_tokens=4))  # warm-up, not timed
            t0 = time.time()
            rows = sample(backend, seeds, cfg)
            seconds = time.time() - t0
            rate = useful(rows) / seconds
            texts = [backend.render(user_message(s["question"], cfg.prompt)) for s in seeds]
            if kind == "transformers":
                own = rates["raw"] if settings["batching"] == "static" else raw_continuous(backend, texts, cfg)
            else:
                own = raw_vllm(server.base_url if kind == "openai" else backend.engine.base_url, texts, cfg)
            print(f"{label:44s} stage {rate:6.1f} useful tok/s, {useful(rows) / len(rows):5.1f} tok/candidate, {seconds:6.1f} s "
                  f"| stage/ceiling {rate / rates['ceiling']:.2f} | stage/sampled ceiling {rate / rates['sampled']:.2f} "
                  f"| stage/own raw {rate / own:.2f} (own raw {own:.1f}) | start-up {startup:.1f} s", flush=True)
            backend.close()
            if server:
                server.stop()
                server = None


if __name__ == "__main__":
    main()
