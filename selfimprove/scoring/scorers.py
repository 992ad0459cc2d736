"""Scorers: decide whether a model output answers an item. One interface, four kinds.

A scorer turns (output, item) into `Score(correct, extracted, reason)`. `correct` is
None when the scorer could not decide (its own failure, a time-out, a sandbox that would
not start): such samples are reported as errors and never counted as wrong answers.

- `math`: math-verify on the extracted final answer, with math-verify's signal-based
  timeouts off (they only work on the main thread; Prefect runs tasks in threads) and
  our own time bound instead.
- `choice`: multiple choice; the output may name the letter or the option's text.
- `task`: a reasoning-gym task's own `score_answer`, under the same time bound.
- `code`: the program runs against the item's tests in the sandbox (`sandbox.py`).
"""
from __future__ import annotations

import logging
import re
import threading
from dataclasses import dataclass, field
from functools import lru_cache

from selfimprove.scoring.answers import LETTERS, extract_choice, extract_code, final_answer, final_part, normalize_answer
from selfimprove.scoring.sandbox import SandboxConfig, SandboxError, run_many

# we bound time ourselves; math-verify warns on every call when its signal timeouts are off
logging.getLogger("math_verify").setLevel(logging.ERROR)


@dataclass
class Score:
    correct: bool | None  # None: the scorer could not decide (an error, not a wrong answer)
    extracted: str | None
    reason: str  # ok | wrong | no_answer | code statuses (failed, timeout, blocked, ...) | error:<what>


class ScorerTimeout(Exception):
    pass


def bounded(fn, seconds: float):
    """`fn()` in a daemon thread; ScorerTimeout if it takes longer (the thread is abandoned)."""
    box: dict = {}

    def target():
        try:
            box["value"] = fn()
        except BaseException as e:  # noqa: BLE001 - handed back to the caller
            box["error"] = e

    t = threading.Thread(target=target, daemon=True)
    t.start()
    t.join(seconds)
    if t.is_alive():
        raise ScorerTimeout(f"took longer than {seconds}s")
    if "error" in box:
        raise box["error"]
    return box["value"]


def _parse(text: str):
    from math_verify import parse

    return parse(text, parsing_timeout=None)


def math_equal(a: str, b: str) -> bool:
    """Whether two final answers are mathematically equivalent (math-verify); unbounded."""
    from math_verify import verify

    try:
        pa, pb = _parse(f"${a}$"), _parse(f"${b}$")
        return bool(pa and pb and verify(pb, pa, timeout_seconds=None))
    except Exception:
        return False


@dataclass
class Scorer:
    """Base: extract an answer from the output, then check it against the item."""

    answer_format: str = "boxed_or_last_number"  # how math/task answers are read (answers.final_answer)
    timeout_s: float = 5.0  # bound on one check

    name = "base"

    def extract(self, output: str, item: dict) -> str | None:
        return final_answer(output, item.get("domain") or "math", self.answer_format)

    def check(self, extracted: str, item: dict) -> bool:
        raise NotImplementedError

    def score(self, output: str, item: dict) -> Score:
        extracted = self.extract(output, item)
        if extracted is None:
            return Score(False, None, "no_answer")
        try:
            ok = bounded(lambda: self.check(extracted, item), self.timeout_s)
        except ScorerTimeout:
            return Score(None, extracted, "error:timeout")
        except Exception as e:
            return Score(None, extracted, f"error:{type(e).__name__}")
        return Score(ok, extracted, "ok" if ok else "wrong")

    def score_many(self, outputs: list[str], items: list[dict]) -> list[Score]:
        return [self.score(o, it) for o, it in zip(outputs, items)]


@dataclass
class MathScorer(Scorer):
    name = "math"

    def check(self, extracted: str, item: dict) -> bool:
        return math_equal(extracted, item["answer"])


@lru_cache(maxsize=None)
def _task_dataset(task: str):
    import reasoning_gym

    return reasoning_gym.create_dataset(task, size=1, seed=0)


@dataclass
class TaskScorer(Scorer):
    name = "task"

    def check(self, extracted: str, item: dict) -> bool:
        if not item.get("task"):
            raise ValueError("item has no task")
        return float(_task_dataset(item["task"]).score_answer(extracted, {"answer": item["answer"], "metadata": {}})) >= 1.0


def gold_choice(item: dict) -> int:
    """Index of the right option: the answer is a letter or one option's text."""
    choices, answer = item.get("choices") or [], str(item["answer"]).strip()
    if len(answer) == 1 and answer.upper() in LETTERS[:len(choices)]:
        return LETTERS.index(answer.upper())
    for i, c in enumerate(choices):
        if normalize_answer(c) == normalize_answer(answer):
            return i
    raise ValueError(f"answer {answer!r} is neither a letter nor one of the options {choices}")


@dataclass
class ChoiceScorer(Scorer):
    """The last option the output names wins: a letter like (B), 'B)', 'answer: B', or an option's text."""

    name = "choice"

    def extract(self, output: str, item: dict) -> str | None:
        return extract_choice(output, item.get("choices") or [])

    def check(self, extracted: str, item: dict) -> bool:
        return LETTERS.index(extracted) == gold_choice(item)


def code_program(code: str, item: dict) -> str:
    """The model's code (completing the prompt if it did not define the entry point) + the tests."""
    entry = item["entry_point"]
    if not re.search(rf"def\s+{re.escape(entry)}\s*\(", code):
        code = item["question"] + code
    return f"{code}\n\n{item['tests']}\n\ncheck({entry})\n"


@dataclass
class CodeScorer(Scorer):
    """Runs programs in the sandbox, in parallel. Statuses other than passed are the reason."""

    sandbox: SandboxConfig = field(default_factory=SandboxConfig)
    name = "code"

    def extract(self, output: str, item: dict) -> str | None:
        part = final_part(output)
        code = extract_code(part)
        if code is None and re.search(r"^\s*def\s+\w+\s*\(", part, re.MULTILINE):
            code = part  # an unfenced function is still code
        return code

    def score_many(self, outputs: list[str], items: list[dict]) -> list[Score]:
        codes = [self.extract(o, it) for o, it in zip(outputs, items)]
        todo = [i for i, c in enumerate(codes) if c is not None]
        results = run_many([code_program(codes[i], items[i]) for i in todo], self.sandbox)
        scores = [Score(False, None, "no_answer") for _ in outputs]
        for i, r in zip(todo, results):
            if isinstance(r, SandboxError):
                scores[i] = Score(None, codes[i], f"error:sandbox: {r}"[:300])
            elif r.status == "passed":
                scores[i] = Score(True, codes[i], "ok")
            else:
                scores[i] = Score(False, codes[i], f"{r.status}: {r.detail}"[:300])
        return scores

    def score(self, output: str, item: dict) -> Score:
        return self.score_many([output], [item])[0]


SCORERS = {"math": MathScorer, "choice": ChoiceScorer, "task": TaskScorer, "code": CodeScorer}
DOMAIN_SCORERS = {"math": "math", "science": "math", "choice": "choice", "code": "code"}


def scorer_for(domain: str) -> str:
    """The scorer a seed or item of this domain is checked by."""
    return DOMAIN_SCORERS.get(domain or "math", "math")


def get_scorer(name: str, answer_format: str = "boxed_or_last_number", sandbox: SandboxConfig | None = None) -> Scorer:
    if name not in SCORERS:
        raise ValueError(f"unknown scorer {name!r}; known: {sorted(SCORERS)}")
    if name == "code":
        return CodeScorer(answer_format=answer_format, sandbox=sandbox or SandboxConfig())
    return SCORERS[name](answer_format=answer_format)


def score(output: str, gold: str, scorer: str = "math", task: str | None = None,
          answer_format: str = "boxed", domain: str = "math") -> Score:
    """One output against a reference answer (math/task/choice items without extra fields)."""
    return get_scorer(scorer, answer_format).score(output, {"answer": gold, "task": task, "domain": domain})


def score_items(outputs: list[str], items: list[dict], answer_format: str, sandbox: SandboxConfig | None = None) -> list[Score]:
    """Score each output with its item's own scorer (`item['scorer']`), batching per scorer."""
    scores: list[Score | None] = [None] * len(outputs)
    by_kind: dict[str, list[int]] = {}
    for i, it in enumerate(items):
        by_kind.setdefault(it.get("scorer") or "math", []).append(i)
    for kind, idx in by_kind.items():
        got = get_scorer(kind, answer_format, sandbox).score_many([outputs[i] for i in idx], [items[i] for i in idx])
        for i, s in zip(idx, got):
            scores[i] = s
    return scores
