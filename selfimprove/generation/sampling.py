"""Candidate sampling: n completions per seed question from the policy model."""
from __future__ import annotations

from dataclasses import dataclass

from selfimprove import prompts
from selfimprove.generation.answers import final_answer
from selfimprove.inference.base import Backend, SamplingParams
from selfimprove.inference.prompt_format import THINKING
from selfimprove.validation import AtLeast0, AtLeast1, NonNegative, OpenShare


@dataclass
class SamplingConfig:
    """Candidate generation. Defaults follow the measured prototype in methods.md."""

    n: AtLeast1 = 8  # candidates per seed (paper best: 8)
    temperature: NonNegative = 0.8
    top_p: OpenShare = 0.95
    top_k: AtLeast0 = 50  # 0 disables; 50 (transformers' default) is what the measured quickstart used
    max_new_tokens: AtLeast1 = 64
    prompt: str = "sample_math"  # prompt file that wraps each question
    answer_format: str = "boxed"  # boxed (paper) | boxed_or_last_number (models that ignore boxing)
    thinking: str = "auto"  # on | off | auto (the template's default): a thinking template's switch
    seed: int = 0

    def __post_init__(self) -> None:
        if self.thinking not in THINKING:
            raise ValueError(f"sampling.thinking must be one of {THINKING}, got {self.thinking!r}")

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens, n=self.n, seed=self.seed, thinking=self.thinking)


def user_message(question: str, prompt_name: str) -> list[dict]:
    return [{"role": "user", "content": prompts.load(prompt_name).render(question=question)}]


def sample(backend: Backend, seeds: list[dict], config: SamplingConfig, progress=None,
           messages: list[list[dict]] | None = None) -> list[dict]:
    """One row per candidate, in sampling order within each seed; `messages` replaces the
    prompt file's rendering of each seed's question (e.g. an evaluation item with its options)."""
    messages = messages or [user_message(s["question"], config.prompt) for s in seeds]
    outputs = backend.generate(messages, config.params(), progress=progress)
    prompt_hash = prompts.load(config.prompt).hash
    rows = []
    for seed, gens in zip(seeds, outputs):
        for k, g in enumerate(gens):
            rows.append({
                "candidate_id": f"{seed['seed_id']}#{k}",
                "seed_id": seed["seed_id"],
                "sample_index": k,
                "text": g.text,
                "final_answer": final_answer(g.text, seed["domain"], config.answer_format),
                "n_tokens": g.n_tokens,
                "prompt_hash": prompt_hash,
            })
    return rows
