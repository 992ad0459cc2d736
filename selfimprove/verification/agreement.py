"""Self-consistency agreement: how many of a seed's candidates reach the same answer.

A label-free signal the sampler already produced: zero model calls. Answers are
grouped by math-verify equivalence (math/science) or by normalised text.
"""
from __future__ import annotations

from selfimprove.scoring.answers import normalize_answer
from selfimprove.scoring.scorers import math_equal


def group_answers(answers: list[str | None], domain: str = "math") -> list[int | None]:
    """Group index per answer (None for a missing answer); equal indices mean equivalent answers."""
    reps: list[str] = []
    norm_to_group: dict[str, int] = {}
    groups: list[int | None] = []
    for a in answers:
        if a is None or not a.strip():
            groups.append(None)
            continue
        key = normalize_answer(a)
        if key in norm_to_group:
            groups.append(norm_to_group[key])
            continue
        found = None
        if domain != "code":
            found = next((g for g, r in enumerate(reps) if math_equal(r, a)), None)
        if found is None:
            found = len(reps)
            reps.append(a)
        norm_to_group[key] = found
        groups.append(found)
    return groups


def agreement_scores(answers: list[str | None], domain: str = "math") -> list[float]:
    """Share of all candidates (missing answers included) in each candidate's answer group."""
    groups = group_answers(answers, domain)
    total = len(answers)
    return [0.0 if g is None else sum(1 for h in groups if h == g) / total for g in groups]
