"""Where a final answer ends: the stop rules that let sampling end a sequence as soon as its answer is complete.

A rule reads the text generated so far and returns the index just past the answer's end, or None while it is not
complete: `boxed` at the brace that closes the first `\\boxed{...}` (math, science), `fence` at the fence that
closes the first fenced block (code), `choice` after the letter of an "Answer: X" line (multiple choice). Inside an
unclosed thinking block nothing is final yet, and after one only the text past `</think>` counts.

Everything after the end is dropped from the stored candidate (`cut`), whichever engine generated it, so the text
the judges, the filter and training read is the same; an engine that can stop early (transformers) also saves the
tokens. With several boxed answers the first one is kept, where the extractor reads the last: stopping changes
those candidates' answers, which is why the rule is part of the sampling config and its version.
"""
from __future__ import annotations

import re
from typing import Callable

from selfimprove.scoring.answers import LETTERS, THINK_CLOSE

THINK_OPEN = "<think>"
_FENCE_OPEN = re.compile(r"```[^\n`]*\n")
_CHOICE = re.compile(rf"(?:[Aa]nswer|ANSWER)\s*(?:is)?\s*:?\s*\**\(?([{LETTERS}])\)?\**(?=[^\w])")


def _boxed(text: str, start: int) -> int | None:
    i = text.find("\\boxed{", start)
    if i == -1:
        return None
    depth = 0
    for j in range(i + len("\\boxed"), len(text)):
        if text[j] == "{":
            depth += 1
        elif text[j] == "}":
            depth -= 1
            if depth == 0:
                return j + 1
    return None


def _fence(text: str, start: int) -> int | None:
    opened = _FENCE_OPEN.search(text, start)
    if opened is None:
        return None
    close = text.find("```", opened.end())
    return None if close == -1 else close + 3


def _choice(text: str, start: int) -> int | None:
    found = _CHOICE.search(text, start)
    return found.end() if found else None


RULES: dict[str, Callable[[str, int], int | None]] = {"boxed": _boxed, "fence": _fence, "choice": _choice}
BY_DOMAIN = {"math": "boxed", "science": "boxed", "code": "fence", "choice": "choice"}


def rule_for(domain: str | None) -> str:
    """The stop rule of a seed's domain (math's for an unknown one)."""
    return BY_DOMAIN.get(domain or "math", "boxed")


def answer_end(text: str, rule: str) -> int | None:
    """The index just past the complete answer in `text`, or None while there is none."""
    start = 0
    if THINK_OPEN in text:
        if THINK_CLOSE not in text:
            return None
        start = text.rindex(THINK_CLOSE) + len(THINK_CLOSE)
    return RULES[rule](text, start)


def cut(text: str, rule: str | None) -> str:
    """`text` up to the end of its answer (all of it when the rule is None or the answer is incomplete)."""
    end = answer_end(text, rule) if rule else None
    return text if end is None else text[:end]
