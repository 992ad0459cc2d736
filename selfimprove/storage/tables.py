"""The lake tables the method packages declare (each package's `tables.py`, registered with its methods), kept here
at the bottom of the library so the warehouse can add them to its own without knowing any method."""
from __future__ import annotations

from typing import Any

DECLARED: dict[str, Any] = {}  # table name → Arrow schema


def declare(tables: dict[str, Any]) -> None:
    """Add a package's tables; a name the package or another one already declared with another schema is an error."""
    for name, schema in tables.items():
        if name in DECLARED and DECLARED[name] != schema:
            raise ValueError(f"table {name!r} is declared twice with different columns")
        DECLARED[name] = schema
