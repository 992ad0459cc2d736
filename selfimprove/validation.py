"""User-input checks: one error type that says where (file, row or line, field) and why, in one line,
and the ranges that config fields declare in their type hints.

A field opts into a range with `Annotated`: `n: AtLeast1 = 8`. `check_value` holds a value to its
hint (types, then range), so every config path (CLI file, Prefect parameters, presets) is checked the
same way before anything is written.
"""
from __future__ import annotations

import math
import types
import typing
from dataclasses import dataclass
from typing import Annotated


class InputError(ValueError):
    """A user's mistake. `str()` is the one line the CLI prints: `file, row 3, field 'x': reason`."""

    def __init__(self, reason: str, file: str | None = None, row: int | None = None, field: str | None = None,
                 line: int | None = None, column: int | None = None) -> None:
        parts = [file] if file else []
        if row is not None:
            parts.append(f"row {row}")
        if line is not None:
            parts.append(f"line {line}" + (f", column {column}" if column is not None else ""))
        if field:
            parts.append(f"field '{field}'")
        super().__init__(f"{', '.join(parts)}: {reason}" if parts else reason)
        self.reason, self.file, self.row, self.field, self.line = reason, file, row, field, line


class ModelError(InputError):
    """A model that cannot serve a run: one line naming the model and why."""

    def __init__(self, model, problem: str) -> None:  # model: its name or path, as the user gave it
        super().__init__(f"model {str(model)!r}: {problem}")


def read_utf8(path, label: typing.Literal["line", "row"] = "line") -> str:
    """A text file's content as UTF-8 (a byte-order mark is dropped); InputError names the line (or,
    with label="row", the row of a line-per-record file) where decoding fails."""
    data = open(path, "rb").read()
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        where = {label: data[:e.start].count(b"\n") + 1}
        raise InputError(f"not UTF-8 (byte 0x{data[e.start]:02x}); save the file as UTF-8", file=str(path), **where) from None


@dataclass(frozen=True)
class Range:
    """Bounds a numeric field must lie within; `above` excludes `low` itself."""

    low: float | None = None
    high: float | None = None
    above: bool = False

    def problem(self, value: float) -> str | None:
        if isinstance(value, float) and not math.isfinite(value):
            return f"must be a finite number, got {value}"
        too_low = self.low is not None and (value <= self.low if self.above else value < self.low)
        too_high = self.high is not None and value > self.high
        if too_low or too_high:
            return f"must be {self.describe()}, got {value}"
        return None

    def describe(self) -> str:
        low = None if self.low is None else f"{'>' if self.above else '>='} {_num(self.low)}"
        high = None if self.high is None else f"<= {_num(self.high)}"
        return " and ".join(p for p in (low, high) if p)


def _num(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else str(x)


AtLeast0 = Annotated[int, Range(0)]
AtLeast1 = Annotated[int, Range(1)]
NonNegative = Annotated[float, Range(0)]
Positive = Annotated[float, Range(0, above=True)]
Share = Annotated[float, Range(0, 1)]  # a probability, a fraction, a threshold on one
OpenShare = Annotated[float, Range(0, 1, above=True)]  # (0, 1]: top_p, a memory fraction


TYPE_NAMES = {int: "an integer", float: "a number", str: "a string", bool: "true or false", dict: "a mapping",
              list: "a list"}


def check_value(value, hint, field: str) -> None:
    """Raise InputError(field=...) when `value` does not fit `hint` (types, then `Range`s in `Annotated`)."""
    problem = _problem(value, hint)
    if problem:
        raise InputError(problem, field=field)


def _problem(value, hint) -> str | None:
    origin = typing.get_origin(hint)
    if origin is Annotated:
        base, *extras = typing.get_args(hint)
        problem = _problem(value, base)
        if problem:
            return problem
        return next((p for r in extras if isinstance(r, Range) for p in [r.problem(value)] if p), None)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(hint)
        if value is None and type(None) in options:
            return None
        problems = [_problem(value, o) for o in options if o is not type(None)]
        return None if None in problems else problems[0]
    if origin is list:
        if not isinstance(value, list):
            return f"must be a list, got {_shown(value)}"
        (item,) = typing.get_args(hint) or (typing.Any,)
        return next((f"item {i}: {p}" for i, v in enumerate(value) for p in [_problem(v, item)] if p), None)
    if hint is float and isinstance(value, (int, float)) and not isinstance(value, bool):
        return None
    if hint in TYPE_NAMES and (not isinstance(value, hint) or (hint is int and isinstance(value, bool))):
        return f"must be {TYPE_NAMES[hint]}, got {_shown(value)}"
    return None


def _shown(value) -> str:
    text = repr(value)
    return f"{type(value).__name__} {text if len(text) <= 40 else text[:37] + '...'}"
