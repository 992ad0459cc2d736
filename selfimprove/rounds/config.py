"""A track's settings: what its champion must beat to be replaced, and how its rounds use data."""
from __future__ import annotations

from dataclasses import dataclass

from selfimprove.validation import AtLeast0, AtLeast1, InputError

TRAIN_ON = ("new", "accumulated")
START_FROM = ("champion", "base")


@dataclass
class TrackConfig:
    """A run that names a track registers its model and applies the promotion gate at its end.

    Parameters:
        name: the track (letters, digits, `-`, `_`); None: the run belongs to no track.
        base: the model a new track starts from, and what `start_from: base` fine-tunes.
        margin: the paired delta's 95 % CI lower bound over the champion must exceed this (pass@1 points / 100).
        guard: a held-out set of another domain (a built-in name or a file) on which the challenger may not
            fall behind the champion by more than `guard_tolerance`; None: no guard set.
        guard_size: items of a built-in guard set.
        guard_tolerance: the largest drop in guard-set pass@1 against the champion a promotion may show.
        diversity_k: samples per held-out item (at the sampling temperature) for pass@k and distinct answers
            per item, for challenger and champion; 0: not measured.
        diversity_floor: the least distinct final answers per item a promotion may show (None: not checked).
        train_on: `new` (this round's accepted examples) or `accumulated` (every accepted example of the
            track's completed rounds too, de-duplicated).
        start_from: `champion` (fine-tune the champion that sampled the data) or `base` (fine-tune the
            track's base on it, as ReST-EM does).
        min_precision: `--rounds` stops when a round's training examples are right (by the seeds' answers,
            where they have them) less often than this; None: not checked.
        stop_after_refusals: `--rounds` stops after this many refused rounds in a row; 0: never.

    A run on a track samples and judges with the track's champion (its base while it has none), takes
    only seed questions no completed round of the track took (generated seeds: a generator seed of its
    own per round), and is evaluated on the track's fixed held-out set.
    """

    name: str | None = None
    base: str = "default"
    margin: float = 0.0
    guard: str | None = "syllogism"
    guard_size: AtLeast1 = 100
    guard_tolerance: float = 0.02
    diversity_k: AtLeast0 = 4
    diversity_floor: float | None = None
    train_on: str = "new"
    start_from: str = "champion"
    min_precision: float | None = None
    stop_after_refusals: AtLeast0 = 2
    round: AtLeast0 = 0  # set by the run: its round on the track (1 = the first); a value given is replaced

    def __post_init__(self) -> None:
        if self.name is not None and (not self.name or not all(c.isalnum() or c in "-_" for c in self.name)):
            raise InputError(f"track name {self.name!r}: use letters, digits, '-' and '_'", field="track.name")
        if not 0 <= self.guard_tolerance <= 1:
            raise InputError(f"{self.guard_tolerance}: a share between 0 and 1", field="track.guard_tolerance")
        for name, value, known in (("train_on", self.train_on, TRAIN_ON), ("start_from", self.start_from, START_FROM)):
            if value not in known:
                raise InputError(f"{value!r}: one of {', '.join(known)}", field=f"track.{name}")
        if self.min_precision is not None and not 0 <= self.min_precision <= 1:
            raise InputError(f"{self.min_precision}: a share between 0 and 1", field="track.min_precision")
        if self.diversity_k == 1:
            raise InputError("1 sample per item measures no diversity: 0 (off) or at least 2", field="track.diversity_k")

    def trains(self, champion: str) -> str:
        """The model a round fine-tunes: the champion that sampled its data, or the track's base."""
        return self.base if self.name and self.start_from == "base" else champion
