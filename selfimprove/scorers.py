"""Scorers: decide whether a model output answers an item correctly.

Each returns a `Score(correct, extracted, reason)`. `math` uses math-verify with its
signal-based timeouts off (they only work on the main thread; Prefect runs tasks in
threads); `task` uses the reasoning-gym task's own scorer, guarded.
"""
from __future__ import annotations

from dataclasses import dataclass
import logging
from functools import lru_cache

from .answers import final_answer

# we bound time ourselves; math-verify warns on every call when its signal timeouts are off
logging.getLogger("math_verify").setLevel(logging.ERROR)


@dataclass
class Score:
    correct: bool
    extracted: str | None
    reason: str  # ok | wrong | no_answer | error:<type>


def _parse(text: str):
    from math_verify import parse

    return parse(text, parsing_timeout=None)


def math_equal(a: str, b: str) -> bool:
    """Whether two final answers are mathematically equivalent (math-verify)."""
    from math_verify import verify

    try:
        pa, pb = _parse(f"${a}$"), _parse(f"${b}$")
        return bool(pa and pb and verify(pb, pa, timeout_seconds=None))
    except Exception:
        return False


@lru_cache(maxsize=None)
def _task_dataset(task: str):
    import reasoning_gym

    return reasoning_gym.create_dataset(task, size=1, seed=0)


SCORERS = ("math", "task")


def score(output: str, gold: str, scorer: str = "math", task: str | None = None,
          answer_format: str = "boxed", domain: str = "math") -> Score:
    """Extract the final answer as training does, then compare it with `gold`.

    `math`: math-verify equivalence; `task`: the reasoning-gym task's own `score_answer`.
    A scorer failure is reported as `error:<type>`, never raised.
    """
    if scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; known: {SCORERS}")
    extracted = final_answer(output, domain, answer_format)
    if extracted is None:
        return Score(False, None, "no_answer")
    try:
        if scorer == "task":
            if not task:
                return Score(False, extracted, "error:no_task")
            ok = float(_task_dataset(task).score_answer(extracted, {"answer": gold, "metadata": {}})) >= 1.0
        else:
            ok = math_equal(extracted, gold)
        return Score(ok, extracted, "ok" if ok else "wrong")
    except Exception as e:
        return Score(False, extracted, f"error:{type(e).__name__}")
