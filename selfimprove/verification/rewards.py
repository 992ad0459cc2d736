"""Binary rewards for on-policy self-distillation (SD-Zero, OPSD): did a response answer its question?

Pluggable, and each names its source.

- `ground_truth`: the seed's reference answer, checked by a scorer (math-verify, a reasoning-gym
  task's own scorer, or the code sandbox). Needs seeds with answers.
- `self_verified`: no ground truth at all. The label is the answer the model itself agrees on:
  the cascade's agreement stage over the seed's sampled candidates. A seed whose candidates reach
  no answer with at least `threshold` of the votes has no label; its responses get reward None
  (ungraded) and are left out rather than guessed.
`grade(seeds, texts)` returns True / False / None per response.
"""
from __future__ import annotations

from selfimprove.verification.agreement import agreement_scores
from selfimprove.scoring.answers import final_answer
from selfimprove.scoring.scorers import get_scorer, math_equal

SOURCES = ("ground_truth", "self_verified")


class Reward:
    source = "base"

    def grade(self, seeds: list[dict], texts: list[str]) -> list[bool | None]:
        raise NotImplementedError

    def gradable(self, seed: dict) -> bool:
        """Whether responses to this seed can be graded at all (Phase 2 rolls out only on those)."""
        return True


class GroundTruthReward(Reward):
    source = "ground_truth"

    def __init__(self, scorer: str = "math", answer_format: str = "boxed_or_last_number") -> None:
        self.scorer = get_scorer(scorer, answer_format)

    def grade(self, seeds, texts):
        missing = next((s["seed_id"] for s in seeds if not s.get("answer")), None)
        if missing is not None:
            raise ValueError(f"the ground_truth reward needs an answer for every seed; seed {missing!r} has none "
                             "(use reward 'self_verified')")
        items = [{"answer": s["answer"], "task": s.get("task"), "domain": s["domain"]} for s in seeds]
        return [s.correct for s in self.scorer.score_many(texts, items)]


class SelfVerifiedReward(Reward):
    """Agreement pseudo-labels: the majority answer of each seed's candidates, when it has enough votes."""

    source = "self_verified"

    def __init__(self, labels: dict[str, str], answer_format: str = "boxed_or_last_number") -> None:
        self.labels, self.answer_format = labels, answer_format

    @classmethod
    def from_candidates(cls, seeds: list[dict], candidates: list[dict], threshold: float,
                        answer_format: str = "boxed_or_last_number") -> "SelfVerifiedReward":
        by_seed: dict[str, list[dict]] = {}
        for c in candidates:
            if not c.get("error"):
                by_seed.setdefault(c["seed_id"], []).append(c)
        labels = {}
        for s in seeds:
            answers = [c["final_answer"] for c in sorted(by_seed.get(s["seed_id"], []), key=lambda c: c["sample_index"])]
            shares = agreement_scores(answers, s["domain"])
            best = max(range(len(shares)), key=shares.__getitem__, default=None)  # first of the largest group
            if best is not None and shares[best] > 0 and shares[best] >= threshold:
                labels[s["seed_id"]] = answers[best]
        return cls(labels, answer_format)

    def gradable(self, seed):
        return seed["seed_id"] in self.labels

    def grade(self, seeds, texts):
        out: list[bool | None] = []
        for s, text in zip(seeds, texts):
            label = self.labels.get(s["seed_id"])
            if label is None:
                out.append(None)
                continue
            answer = final_answer(text, s["domain"], self.answer_format)
            out.append(answer is not None and math_equal(answer, label))
        return out


def build(source: str, seeds: list[dict], candidates: list[dict], scorer: str = "math", threshold: float = 0.5,
          answer_format: str = "boxed_or_last_number") -> Reward:
    if source == "ground_truth":
        return GroundTruthReward(scorer, answer_format)
    if source == "self_verified":
        return SelfVerifiedReward.from_candidates(seeds, candidates, threshold, answer_format)
    raise ValueError(f"reward source must be one of {SOURCES}, got {source!r}")
