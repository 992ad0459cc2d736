"""Prompt files, versioned by content hash.

Each prompt is a text file beside this module. Its hash (first 12 hex digits of
sha256 over the file bytes) is stored on every row the prompt produced, so a
changed prompt is visible in SQL and invalidates cached stages.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

FOLDER = Path(__file__).parent


@dataclass(frozen=True)
class Prompt:
    name: str
    text: str
    hash: str

    def render(self, **fields: str) -> str:
        out = self.text
        for key, value in fields.items():
            out = out.replace("{" + key + "}", value)
        return out


@lru_cache(maxsize=None)
def load(name: str) -> Prompt:
    path = FOLDER / f"{name}.txt"
    if not path.exists():
        known = sorted(p.stem for p in FOLDER.glob("*.txt"))
        raise KeyError(f"no prompt named {name!r}; known: {known}")
    data = path.read_bytes()
    return Prompt(name=name, text=data.decode("utf-8").strip(), hash=hashlib.sha256(data).hexdigest()[:12])

