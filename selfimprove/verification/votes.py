"""Votes: what a judge call records, how a verdict is read from the model, and how votes combine.

Scoring a verdict (`StageConfig.scoring`):
- `sample`: the judge writes freely; the verdict is parsed from its text (the last `[[Y]]`/`[[N]]`).
- `probability`: P(Y) among {Y, N} after the prefix "[[" against `threshold`; nothing is
  unparseable, and a prompt without sampled parts is asked once, whatever `votes` says.
- `constrained`: the same single forward pass, then each vote draws Y or N from those two
  probabilities at the judge temperature: independent votes that share one prefill.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from selfimprove.scoring.answers import parse_verdict
from selfimprove.inference.base import Backend, SamplingParams

VERDICT_PREFIX = "[["


@dataclass
class Item:
    """A candidate as a judge sees it."""

    candidate_id: str
    question: str
    answer: str  # final-answer part only, neutralised
    agreement: float = 0.0


@dataclass
class Call:
    """One judge call: a judgments row."""

    vote_index: int
    call: str
    prompt_hash: str
    raw_output: str
    decision: str  # Y | N | unparseable, or '' for a call that gives no verdict (cycle infer)
    p_yes: float | None = None
    model_call: bool = True  # False for strategies that read no model (agreement)
    n_tokens: int = 0  # tokens the call generated (0 for probability scoring)


@dataclass
class StageResult:
    passed: bool
    reason: str
    calls: list[Call] = field(default_factory=list)


def user_turn(text: str) -> list[dict]:
    return [{"role": "user", "content": text}]


def combine(decisions: list[str], stage) -> bool:
    yes = sum(d == "Y" for d in decisions)
    if stage.rule == "unanimous":
        return yes == len(decisions)
    if stage.rule == "majority":
        return yes * 2 > len(decisions)
    return yes >= stage.k


def decide(calls: list[Call], stage, reason: str | None = None) -> StageResult:
    """Combine the calls' decisions by the stage's rule; the reason says the count unless given."""
    decisions = [c.decision for c in calls if c.decision]
    if reason is None:
        yes, unparseable = decisions.count("Y"), decisions.count("unparseable")
        reason = f"{stage.name}: {yes}/{len(decisions)} Y ({stage.rule})"
        if unparseable:
            reason += f", {unparseable} unparseable"
    return StageResult(passed=combine(decisions, stage), reason=reason, calls=calls)


def verdicts(backend: Backend, messages: list[list[dict]], stage, n: int,
             seed: int) -> list[list[tuple[str, str, float | None, int]]]:
    """Per prompt, n (raw_output, decision, p_yes, generated tokens) tuples."""
    if stage.scoring in ("probability", "constrained"):
        out = []
        for i, probs in enumerate(backend.choice_probs(messages, VERDICT_PREFIX, ["Y", "N"])):
            total = probs["Y"] + probs["N"]
            p_yes = probs["Y"] / total if total > 0 else 0.0
            raw = f"P(Y)={probs['Y']:.4g} P(N)={probs['N']:.4g}"
            if stage.scoring == "probability":
                out.append([(raw, "Y" if p_yes >= stage.threshold else "N", p_yes, 0)] * n)
            else:
                rng = random.Random(seed * 1_000_003 + i)
                p = _tempered(p_yes, stage.temperature)
                out.append([(raw, "Y" if rng.random() < p else "N", p_yes, 0) for _ in range(n)])
        return out
    params = SamplingParams(temperature=stage.temperature, top_p=1.0, max_new_tokens=stage.max_new_tokens, n=n, seed=seed,
                            thinking="off")
    return [[(g.text, parse_verdict(g.text), None, g.n_tokens) for g in gens] for gens in backend.generate(messages, params)]


def _tempered(p_yes: float, temperature: float) -> float:
    """P(Y) after sharpening (T<1) or flattening (T>1) the two-way verdict distribution."""
    if temperature <= 0:
        return 1.0 if p_yes >= 0.5 else 0.0
    a, b = p_yes ** (1 / temperature), (1 - p_yes) ** (1 / temperature)
    return a / (a + b) if a + b > 0 else 0.5
