"""OPSD's privileged information (PI): one registered builder per source, the rows that record it, and the
teacher context that reads it.

The student's input is the question in the run's prompt file, exactly as at test time. The teacher's is
the same text with the PI appended in the same user turn (`opsd_teacher.txt`). Every PI is a rendered
prompt file, recorded per seed with its text, its content hash and its prompt's hash, so a teacher's
context can be rebuilt from the lake.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Callable

from selfimprove import prompts
from selfimprove.generation.sampling import user_message
from selfimprove.training.distill_config import validation_ids
from selfimprove.training.self_distill import TeacherContext

TEACHER_PROMPT = "opsd_teacher"


@dataclass(frozen=True)
class PI:
    text: str
    prompt_hash: str
    candidate_id: str | None = None  # the accepted candidate a self_verified PI quotes


# source → builder(seed, accepted examples by seed_id, rule prompt name) → PI, or None when the seed has none
PI_BUILDERS: dict[str, Callable[[dict, dict, str], PI | None]] = {}


def pi_builder(name: str):
    def register(fn):
        PI_BUILDERS[name] = fn
        return fn
    return register


@pi_builder("ground_truth")
def _ground_truth(seed: dict, accepted: dict, rule: str) -> PI | None:
    if not seed.get("answer"):
        return None
    if seed.get("solution"):
        p = prompts.load("opsd_pi_solution")
        return PI(p.render(solution=seed["solution"], answer=seed["answer"]), p.hash)
    p = prompts.load("opsd_pi_answer")
    return PI(p.render(answer=seed["answer"]), p.hash)


@pi_builder("self_verified")
def _self_verified(seed: dict, accepted: dict, rule: str) -> PI | None:
    example = accepted.get(seed["seed_id"])
    if example is None:
        return None
    p = prompts.load("opsd_pi_candidate")
    return PI(p.render(candidate=example["completion"].strip()), p.hash, example["candidate_id"])


@pi_builder("rule")
def _rule(seed: dict, accepted: dict, rule: str) -> PI:
    p = prompts.load(rule)
    return PI(p.text, p.hash)


def prompt_names(source: str, rule: str) -> tuple[str, ...]:
    """The prompt files a source's PI and the teacher's context read (their hashes version the stage)."""
    own = {"ground_truth": ("opsd_pi_answer", "opsd_pi_solution"), "self_verified": ("opsd_pi_candidate",),
           "rule": (rule,)}[source]
    return (TEACHER_PROMPT, *own)


def content_hash(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def privileged_rows(seeds: list[dict], source: str, accepted: dict[str, dict], rule: str, val_size: int,
                    gradable=lambda seed: True) -> list[dict]:
    """One row per seed: its phase and, for a rolled-out seed, its PI. The held-out-reward seeds are chosen among
    the gradable ones first (they need no PI); of the rest, a seed without PI is `no_pi` and skipped."""
    if source not in PI_BUILDERS:
        raise ValueError(f"unknown PI source {source!r}; known: {sorted(PI_BUILDERS)}")
    val = validation_ids([s["seed_id"] for s in seeds if gradable(s)], val_size)
    rows = []
    for s in seeds:
        pi = None if s["seed_id"] in val else PI_BUILDERS[source](s, accepted, rule)
        phase = "distill_val" if s["seed_id"] in val else ("distill" if pi else "no_pi")
        rows.append({"seed_id": s["seed_id"], "phase": phase, "pi_source": source if pi else None,
                     "pi_hash": content_hash(pi.text) if pi else None, "pi_text": pi.text if pi else None,
                     "candidate_id": pi.candidate_id if pi else None, "prompt_hash": pi.prompt_hash if pi else None})
    return rows


def teacher_messages(question: str, pi_text: str, prompt_name: str) -> list[dict]:
    """The teacher's chat: the student's user turn with the PI appended."""
    student = user_message(question, prompt_name)[0]["content"]
    return [{"role": "user", "content": prompts.load(TEACHER_PROMPT).render(prompt=student, privileged=pi_text)}]


class PrivilegedContext(TeacherContext):
    """`chat(x + PI) + y`: the teacher reads the seed's PI; the student, `chat(x) + y`, never does."""

    name = "privileged"

    def __init__(self, rows: list[dict]) -> None:
        self.pi = {r["seed_id"]: r for r in rows if r["phase"] == "distill"}
        self.source = next((r["pi_source"] for r in self.pi.values()), None)
        self._ids: dict[str, list[int]] = {}

    def sequence(self, d, seed, prompt, y, correct):
        sid = seed["seed_id"]
        if sid not in self._ids:
            self._ids[sid] = d.chat_ids(teacher_messages(seed["question"], self.pi[sid]["pi_text"], d.prompt_name))
        return self._ids[sid] + y

    def fields(self, seed, correct):
        row = self.pi.get(seed["seed_id"], {})
        return {"pi_source": row.get("pi_source"), "pi_hash": row.get("pi_hash")}
