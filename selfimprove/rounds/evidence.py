"""What a round measures beside held-out pass@1, for the gate: a guard set of another domain, and
diversity (several samples per held-out item: pass@k and distinct final answers per item)."""
from __future__ import annotations

from dataclasses import replace

from selfimprove.data.seeds import SeedSource
from selfimprove.evaluation.heldout import EvalConfig
from selfimprove.rounds.config import TrackConfig
from selfimprove.validation import InputError

ROUND_SEED_STRIDE = 100_003  # round r generates its seeds with seeds.seed + (r - 1) * this


def round_seed(seed: int, round_number: int) -> int:
    """The generator seed of a track's round (1 = the first, which keeps the configured one)."""
    return seed + (round_number - 1) * ROUND_SEED_STRIDE


def guard_evaluation(track: TrackConfig, evaluation: EvalConfig) -> EvalConfig:
    """The guard set, greedy like the held-out evaluation, with its own items and scorer."""
    if track.guard == evaluation.dataset:
        raise InputError(f"{track.guard!r} is the track's held-out set too; a guard set is another domain "
                         "(or null for none)", field="track.guard")
    return replace(evaluation, dataset=track.guard, scorer=None, prompt=None, temperature_sweep=[],
                   source=SeedSource(size=track.guard_size, seed=evaluation.source.seed))


def diversity_evaluation(track: TrackConfig, evaluation: EvalConfig, temperature: float) -> EvalConfig:
    """The held-out items again, `diversity_k` samples each at the sampling temperature."""
    if temperature <= 0:
        raise InputError("diversity needs sampling.temperature > 0 (or track.diversity_k: 0)", field="track.diversity_k")
    return replace(evaluation, samples=track.diversity_k, temperature=temperature, pass_k=[1, track.diversity_k],
                   temperature_sweep=[])


def precision(example_ids: list[str], labels: dict[str, bool | None]) -> float | None:
    """The share of a round's own training examples that are right by the seeds' answers (None: none has one)."""
    known = [labels[i] for i in example_ids if labels.get(i) is not None]
    return sum(map(bool, known)) / len(known) if known else None
