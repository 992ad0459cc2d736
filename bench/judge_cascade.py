"""Judge cost: the early-exit cascade vs every stage on every candidate, and judge throughput.

    python bench/judge_cascade.py [--model default] [--seeds 24] [--n 4] [--votes 3]

1. Samples a fixed candidate set, then judges it twice with the same stages: as a cascade
   with early exit, and with every stage advisory (each stage sees every candidate). Reports
   model calls of each, their ratio, and whether the accepted sets agree. Verdicts use
   probability scoring so both runs see identical decisions for identical prompts.
2. Generates the factuality judge's prompts through the project's backend and through raw
   `model.generate` on the same batches, and reports tokens/s of each and their ratio.
"""
from __future__ import annotations

import argparse
import time

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.inference import models
from selfimprove import prompts
from selfimprove.inference.base import BackendConfig, SamplingParams
from selfimprove.inference.transformers_backend import TransformersBackend
from selfimprove.verification.cascade import CascadeConfig, run_cascade
from selfimprove.verification.judges import StageConfig, make_items
from selfimprove.generation.sampling import SamplingConfig, sample
from selfimprove.data.seeds import SeedSource, generate


def stages(votes: int, gate: bool) -> list[StageConfig]:
    return [StageConfig("agreement", threshold=0.5, gate=gate),
            StageConfig("cycle_consistency", votes=votes, scoring="probability", max_new_tokens=32, gate=gate),
            StageConfig("factuality", scoring="probability", gate=gate),
            StageConfig("correctness", scoring="probability", gate=gate)]


def passes(judgments: list[dict], cfg_stages: list[StageConfig]) -> set[str]:
    from selfimprove.verification.votes import combine

    by: dict[tuple[str, str], list[str]] = {}
    for j in judgments:
        if j["decision"]:
            by.setdefault((j["candidate_id"], j["stage"]), []).append(j["decision"])
    ok = set()
    for cid in {j["candidate_id"] for j in judgments}:
        if all((cid, s.name) in by and combine(by[(cid, s.name)], s) for s in cfg_stages):
            ok.add(cid)
    return ok


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--seeds", type=int, default=24)
    ap.add_argument("--n", type=int, default=4)
    ap.add_argument("--votes", type=int, default=3)
    ap.add_argument("--dtype", default="bfloat16")
    args = ap.parse_args()
    backend = TransformersBackend(models.resolve(args.model), BackendConfig(dtype=args.dtype))
    seeds = generate(SeedSource(size=args.seeds))
    candidates = sample(backend, seeds, SamplingConfig(n=args.n, answer_format="boxed_or_last_number"))

    results = {}
    for label, gate in (("early_exit", True), ("all_stages", False)):
        cfg = CascadeConfig(stages=stages(args.votes, gate), selection="all_valid")
        before = backend.counters.generate_calls + backend.counters.scored_prompts
        start = time.time()
        judgments, verdicts = run_cascade(backend, seeds, candidates, cfg)
        calls = backend.counters.generate_calls + backend.counters.scored_prompts - before
        accepted = {v["candidate_id"] for v in verdicts if v["accepted"]} if gate else \
            passes(judgments, stages(args.votes, True))
        results[label] = (calls, time.time() - start, accepted)
        print(f"{label:10s}: {calls:5d} model calls, {time.time() - start:6.1f} s, {len(accepted)} accepted")
    (c1, t1, a1), (c2, t2, a2) = results["early_exit"], results["all_stages"]
    print(f"call ratio early_exit / all_stages = {c1 / c2:.3f}; time ratio {t1 / t2:.3f}; same accepted set: {a1 == a2}")

    # throughput: the judge's generation through our backend vs raw generate, same prompts, same batches
    factuality = prompts.load("factuality")
    items = make_items(candidates, {s["seed_id"]: s for s in seeds})
    messages = [[{"role": "user", "content": factuality.render(question=it.question, answer=it.answer)}] for it in items]
    params = SamplingParams(temperature=0.7, top_p=1.0, max_new_tokens=48, n=1, seed=0)
    backend.counters.generated_tokens = 0
    start = time.time()
    backend.generate(messages, params)
    ours = time.time() - start
    import torch

    raw_tokens, start = 0, time.time()
    for idx, enc in backend._batches([backend.render(m) for m in messages], 1):
        torch.manual_seed(0)
        with torch.inference_mode():
            out = backend.model.generate(**enc, max_new_tokens=48, do_sample=True, temperature=0.7, top_p=1.0)
        raw_tokens += int((out[:, enc["input_ids"].shape[1]:] != backend.tokenizer.pad_token_id).sum())
    raw = time.time() - start
    print(f"judge generation: ours {backend.counters.generated_tokens / ours:.1f} tok/s, raw generate "
          f"{raw_tokens / raw:.1f} tok/s, time ratio ours/raw = {ours / raw:.3f} over {len(messages)} prompts")


if __name__ == "__main__":
    main()
