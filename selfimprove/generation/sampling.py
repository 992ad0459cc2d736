"""Candidate sampling: n completions per seed question from the policy model."""
from __future__ import annotations

from dataclasses import dataclass, field, replace

from selfimprove import prompts
from selfimprove.generation import few_shot
from selfimprove.scoring import answer_end
from selfimprove.scoring.answers import LETTERS, final_answer
from selfimprove.inference.base import Backend, SamplingParams
from selfimprove.inference.prompt_format import THINKING
from selfimprove.validation import AtLeast0, AtLeast1, NonNegative, OpenShare


@dataclass
class SamplingConfig:
    """Candidate generation. Defaults follow the measured prototype in methods.md."""

    n: AtLeast1 = 8  # candidates per seed (paper best: 8)
    temperature: NonNegative = 0.8  # sampling temperature (0 = greedy)
    top_p: OpenShare = 0.95  # nucleus sampling share
    top_k: AtLeast0 = 50  # 0 disables; 50 (transformers' default) is what the measured quickstart used
    max_new_tokens: AtLeast1 = 64  # tokens a candidate may generate
    prompt: str = "sample_math"  # prompt file that wraps each math/science question
    domain_prompts: dict = field(default_factory=lambda: {"choice": "sample_choice", "code": "sample_code"})  # by domain
    answer_format: str = "boxed"  # boxed (paper) | boxed_or_last_number (models that ignore boxing)
    thinking: str = "auto"  # on | off | auto (the template's default): a thinking template's switch
    few_shot: str | None = None  # a file of worked {question, answer} examples shown before each question (few_shot.py)
    seed: int = 0  # the sampling seed (each shard derives its own from it)
    stop_at_answer: bool = True  # end a candidate at its complete answer, by domain (scoring/answer_end.py)

    def __post_init__(self) -> None:
        if self.thinking not in THINKING:
            raise ValueError(f"sampling.thinking must be one of {THINKING}, got {self.thinking!r}")

    def params(self) -> SamplingParams:
        return SamplingParams(temperature=self.temperature, top_p=self.top_p, top_k=self.top_k,
                              max_new_tokens=self.max_new_tokens, n=self.n, seed=self.seed, thinking=self.thinking)


def user_message(question: str, prompt_name: str, choices: list[str] | None = None) -> list[dict]:
    """The user turn that asks `question` in a prompt file; multiple-choice options are listed as A., B., ..."""
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(choices or []))
    return [{"role": "user", "content": prompts.load(prompt_name).render(question=question, options=options)}]


def prompt_for(config: SamplingConfig, domain: str) -> str:
    """The prompt file a seed of this domain is asked in."""
    return config.domain_prompts.get(domain, config.prompt)


def seed_message(seed: dict, config: SamplingConfig) -> list[dict]:
    """The turns that ask this seed: its domain's few-shot examples (question, worked answer), then the user turn
    with its question, all in its domain's prompt. The seed's own turn is the last."""
    domain = seed.get("domain") or "math"
    prompt = prompt_for(config, domain)
    shots = [turn for e in few_shot.of_domain(config.few_shot, domain)
             for turn in (*user_message(e["question"], prompt, e["choices"]), {"role": "assistant", "content": e["answer"]})]
    return shots + user_message(seed["question"], prompt, seed.get("choices"))


def prompts_of(config: SamplingConfig) -> tuple[str, ...]:
    """Every prompt file sampling may read: part of the stage's version."""
    return tuple(sorted({config.prompt, *config.domain_prompts.values()}))


def sample(backend: Backend, seeds: list[dict], config: SamplingConfig, progress=None,
           messages: list[list[dict]] | None = None) -> list[dict]:
    """One row per candidate, in sampling order within each seed; `messages` replaces the
    prompt file's rendering of each seed's question (e.g. an evaluation item with its options)."""
    messages = messages or [seed_message(s, config) for s in seeds]
    rules = [answer_end.rule_for(s.get("domain")) if config.stop_at_answer else None for s in seeds]
    outputs: list = [None] * len(seeds)
    for rule in dict.fromkeys(rules):  # one call per stop rule: one for a single-domain run
        todo = [i for i, r in enumerate(rules) if r == rule]
        params = replace(config.params(), stop=rule)
        for i, gens in zip(todo, backend.generate([messages[i] for i in todo], params, progress=progress)):
            outputs[i] = gens
    rows = []
    for seed, gens, rule in zip(seeds, outputs, rules):
        for k, g in enumerate(gens):
            text = answer_end.cut(g.text, rule)
            rows.append({
                "candidate_id": f"{seed['seed_id']}#{k}",
                "seed_id": seed["seed_id"],
                "sample_index": k,
                "text": text,
                "final_answer": final_answer(text, seed["domain"], config.answer_format, seed.get("choices")),
                "n_tokens": g.n_tokens,
                "prompt_hash": prompts.load(prompt_for(config, seed["domain"])).hash,
            })
    return rows
