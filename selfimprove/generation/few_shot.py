"""Few-shot examples: worked question/answer pairs shown before each seed's question (for base models above all).

`sampling.few_shot` names a JSONL/CSV/Parquet file of rows `{question, answer, domain?, choices?}`; `answer` is the
worked answer the model should imitate. A seed is shown the examples of its own domain (math when a row names
none), each as a user turn in that domain's prompt and an assistant turn with the answer, in file order. The
file's content hash is part of the sampling stage's version, like every prompt's. Training rows keep only the
seed's own question: the model learns to answer without the examples.
"""
from __future__ import annotations

import hashlib
from functools import lru_cache
from pathlib import Path

from selfimprove.data.seeds import DOMAINS, SeedError, read_raw


def examples(path: str) -> tuple[dict, ...]:
    """The file's examples, validated (one line naming file, row and field for a bad one); read once per version
    of the file."""
    stat = Path(path).stat() if Path(path).is_file() else None
    return _read(str(path), stat and (stat.st_size, stat.st_mtime_ns))


@lru_cache(maxsize=8)
def _read(path: str, stamp) -> tuple[dict, ...]:
    rows = []
    for n, r in read_raw(Path(path)):
        if not isinstance(r, dict):
            raise SeedError(path, n, None, f"expected an object, got {type(r).__name__}")
        for name in ("question", "answer"):
            if not isinstance(r.get(name), str) or not r[name].strip():
                raise SeedError(path, n, name, "missing, empty or not a string (a few-shot example needs both)")
        domain = r.get("domain") or "math"
        if domain not in DOMAINS:
            raise SeedError(path, n, "domain", f"{domain!r} is not one of {DOMAINS}")
        choices = r.get("choices")
        if choices is not None and (not isinstance(choices, list) or not all(isinstance(c, str) for c in choices)):
            raise SeedError(path, n, "choices", "must be a list of strings")
        rows.append({"question": r["question"].strip(), "answer": r["answer"].strip(), "domain": domain,
                     "choices": choices})
    if not rows:
        raise SeedError(path, None, None, "no few-shot examples in the file")
    return tuple(rows)


def of_domain(path: str | None, domain: str) -> list[dict]:
    """The examples a seed of this domain is shown (none without a file)."""
    return [e for e in examples(path) if e["domain"] == domain] if path else []


def version(path: str | None) -> dict:
    """What the examples add to a stage's version: the file's content hash."""
    if not path:
        return {}
    examples(path)  # a bad file is refused before its hash is taken
    return {"few_shot_sha256": hashlib.sha256(Path(path).read_bytes()).hexdigest()}
