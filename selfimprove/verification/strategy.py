"""The judge strategy seam: what one cascade stage asks, and the registry of strategies.

A strategy subclasses `Strategy`, declares the prompt files it reads and whether it calls the
model, writes `judge(backend, items, stage, seed)`, and registers itself with
`@register_strategy`. Everything else (the cascade, telemetry, UQ-TTC's cost accounting, the
lake's views and the report) asks the registry or reads the `model_call` and `n_tokens` each
call records. Only calibration reads one stage by name: the `agreement` stage's threshold, which it
sweeps.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from typing import ClassVar

from selfimprove.inference.base import Backend
from selfimprove.verification.votes import Item, StageResult


class Strategy(ABC):
    """One way of judging a candidate. `prompts`: the prompt files it reads (part of stage versions)."""

    name: ClassVar[str] = ""
    prompts: ClassVar[tuple[str, ...]] = ()
    calls_model: ClassVar[bool] = True
    uses_threshold: ClassVar[bool] = False  # `threshold` gates its score directly (not via probability scoring)

    @abstractmethod
    def judge(self, backend: Backend | None, items: list[Item], stage, seed: int) -> list[StageResult]:
        """One result per item, every call it made recorded on the result."""

    def prompts_for(self, stage) -> tuple[str, ...]:
        return self.prompts + (("reconsider",) if stage.reconsider and self.prompts else ())


STRATEGIES: dict[str, Strategy] = {}


def register_strategy(cls: type[Strategy]) -> type[Strategy]:
    STRATEGIES[cls.name] = cls()
    return cls


def _builtins() -> dict[str, Strategy]:
    importlib.import_module("selfimprove.verification.strategies")
    return STRATEGIES


def get_strategy(name: str) -> Strategy:
    known = _builtins()
    if name not in known:
        raise ValueError(f"unknown judge strategy {name!r}; known: {tuple(known)}")
    return known[name]


def strategy_names() -> tuple[str, ...]:
    return tuple(_builtins())
