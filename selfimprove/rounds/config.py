"""A track's settings: what its champion must beat to be replaced, and how its rounds use data."""
from __future__ import annotations

from dataclasses import dataclass

from selfimprove.validation import InputError


@dataclass
class TrackConfig:
    """A run that names a track registers its model and applies the promotion gate at its end.

    Parameters:
        name: the track (letters, digits, `-`, `_`); None: the run belongs to no track.
        base: the model a new track starts from, and what `start_from: base` fine-tunes.
        margin: the paired delta's 95 % CI lower bound over the champion must exceed this (pass@1 points / 100).
        guard_tolerance: the largest drop in guard-set pass@1 against the champion a promotion may show.
        diversity_floor: the least distinct final answers per seed a promotion may show (None: not checked).

    A run on a track samples, judges and trains from the track's champion (its base while it has none).
    """

    name: str | None = None
    base: str = "default"
    margin: float = 0.0
    guard_tolerance: float = 0.02
    diversity_floor: float | None = None

    def __post_init__(self) -> None:
        if self.name is not None and (not self.name or not all(c.isalnum() or c in "-_" for c in self.name)):
            raise InputError(f"track name {self.name!r}: use letters, digits, '-' and '_'", field="track.name")
        if not 0 <= self.guard_tolerance <= 1:
            raise InputError(f"{self.guard_tolerance}: a share between 0 and 1", field="track.guard_tolerance")
