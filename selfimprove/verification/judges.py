"""Cascade stages: their config, what judges see, and judging a batch of candidates with one stage.

A stage = one strategy (`strategy.py`, registered in `strategies/`) × `votes` independent
samples × a voting rule (`votes.py`). With `reconsider`, every verdict is followed by a second
turn asking the judge to check again ("think twice"); the second verdict is the vote. Judges
see only the final-answer part of a candidate, neutralised (see `neutralize`).
"""
from __future__ import annotations

import re
from dataclasses import dataclass

from selfimprove.scoring.answers import final_part
from selfimprove.inference.base import Backend
from selfimprove.verification.agreement import agreement_scores
from selfimprove.verification.strategy import get_strategy, strategy_names
from selfimprove.verification.votes import Item, StageResult
from selfimprove.validation import AtLeast1, NonNegative, Share

RULES = ("unanimous", "majority", "at_least_k")
SCORINGS = ("sample", "probability", "constrained")
_VERDICT_TOKEN = re.compile(r"\[+\s*(Y|N|YES|NO)\s*\]+", re.IGNORECASE)


@dataclass
class StageConfig:
    """One cascade stage.

    Parameters:
        strategy: a registered judge strategy (`strategy_names()`).
        votes: independent judgments (paper best: 5).
        rule: unanimous | majority | at_least_k (with `k`).
        k: at_least_k: the Y votes a candidate needs.
        scoring: sample | probability | constrained (see `votes.py`).
        threshold: probability scoring: min P(Y | Y or N); agreement: min answer share.
        temperature: judge sampling temperature.
        max_new_tokens: room for a short rationale before the verdict.
        gate: False records the stage's votes for telemetry but never rejects.
        reconsider: ask each verdict a second time in a follow-up turn; the second one counts.
        name: stage name in the lake; defaults to the strategy.
    """

    strategy: str
    votes: AtLeast1 = 5
    rule: str = "unanimous"
    k: AtLeast1 = 1
    scoring: str = "sample"
    threshold: Share = 0.5
    temperature: NonNegative = 0.7
    max_new_tokens: AtLeast1 = 96
    gate: bool = True
    reconsider: bool = False
    name: str = ""

    def __post_init__(self) -> None:
        if self.strategy not in strategy_names():
            raise ValueError(f"unknown judge strategy {self.strategy!r}; known: {strategy_names()}")
        if self.rule not in RULES:
            raise ValueError(f"unknown voting rule {self.rule!r}; known: {RULES}")
        if self.scoring not in SCORINGS:
            raise ValueError(f"scoring must be one of {SCORINGS}, got {self.scoring!r}")
        if self.votes < 1:
            raise ValueError("votes must be >= 1")
        self.name = self.name or self.strategy

    @property
    def calls_model(self) -> bool:
        return get_strategy(self.strategy).calls_model


def prompts_used(stage: StageConfig) -> tuple[str, ...]:
    """The prompt files a stage reads: part of its version."""
    return get_strategy(stage.strategy).prompts_for(stage)


def judge(backend: Backend | None, items: list[Item], stage: StageConfig, seed: int = 0) -> list[StageResult]:
    """Judge every item with one stage, batching all model calls of the stage together."""
    return get_strategy(stage.strategy).judge(backend, items, stage, seed) if items else []


def neutralize(text: str) -> str:
    """Candidate text as judges see it: no verdict brackets, no delimiter markers.

    A candidate cannot close the quote it sits in, nor plant a `[[Y]]` that a judge
    echoing its input would hand to the verdict parser.
    """
    text = _VERDICT_TOKEN.sub("(verdict removed)", text)
    for token, safe in (("[[", "[ ["), ("]]", "] ]"), ("<<<", "< < <"), (">>>", "> > >")):
        while token in text:
            text = text.replace(token, safe)
    return text


def make_items(candidates: list[dict], seeds_by_id: dict[str, dict]) -> list[Item]:
    """Items for every candidate, with agreement computed over each seed's candidates."""
    by_seed: dict[str, list[dict]] = {}
    for c in candidates:
        by_seed.setdefault(c["seed_id"], []).append(c)
    share: dict[str, float] = {}
    for sid, group in by_seed.items():
        for c, s in zip(group, agreement_scores([c["final_answer"] for c in group], seeds_by_id[sid]["domain"])):
            share[c["candidate_id"]] = s
    return [Item(c["candidate_id"], neutralize(seeds_by_id[c["seed_id"]]["question"]), neutralize(final_part(c["text"])),
                 share[c["candidate_id"]]) for c in candidates]
