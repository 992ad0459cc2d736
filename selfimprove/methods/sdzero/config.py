"""SD-Zero settings, the disjoint split of seeds between its two phases, and its control phrases.

The control phrase P_r is chosen by the binary reward r of a response: one phrase for a correct
response (restate it), one for a wrong one (start over). Both are prompt files, versioned by
hash like every other prompt, and are appended inside the assistant turn, after the response.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from selfimprove import prompts
from selfimprove.training.distill_config import DistillConfig, unit_hash, validation_ids
from selfimprove.verification.rewards import SOURCES
from selfimprove.validation import AtLeast1, NonNegative, OpenShare, Share

CONTROL_PROMPTS = {True: "revise_correct", False: "revise_wrong"}


@dataclass
class SDZeroConfig:
    """Both phases. Phase 1 revises sampled candidates; Phase 2 distils on a disjoint share of the seeds."""

    reward: str = "ground_truth"  # ground_truth (scorer vs the seed's answer) | self_verified (agreement, no labels)
    scorer: str = "math"  # ground_truth: how an answer is checked
    agreement_threshold: Share = 0.5  # self_verified: share of a seed's candidates the label needs
    distill_share: Share = 0.5  # share of seeds (by a hash of seed_id) kept for Phase 2; the rest is Phase 1's
    init_per_seed: AtLeast1 = 2  # Phase 1: candidates per seed used as y_init (the first ones sampled)
    revise_temperature: NonNegative = 0.7  # Phase 1: decoding of y_revised (0 = greedy)
    revise_top_p: OpenShare = 0.95  # nucleus share of the revision samples
    revise_max_new_tokens: AtLeast1 = 64  # tokens a revision may generate
    seed: int = 0  # the seed of the revision samples
    distill: DistillConfig = field(default_factory=DistillConfig)  # Phase 2

    def __post_init__(self) -> None:
        if self.reward not in SOURCES:
            raise ValueError(f"sdzero.reward must be one of {SOURCES}, got {self.reward!r}")
        if not 0 < self.distill_share < 1:
            raise ValueError("sdzero.distill_share must be in (0, 1): both phases need seeds")
        if isinstance(self.distill, dict):
            self.distill = DistillConfig(**self.distill)


def phases(seeds: list[dict], distill_share: float, val_size: int = 0, gradable=None) -> dict[str, str]:
    """seed_id → 'revise' (Phase 1), 'distill' (Phase 2 rollouts), 'distill_val' (Phase 2 held-out reward)
    or 'distill_ungraded' (a Phase-2 seed the reward cannot grade: no self-verified label).

    Stable per seed and independent of the seed order: a hash of the seed_id below `distill_share`
    goes to Phase 2; the lowest-hash gradable Phase-2 seeds, `val_size` but at most a third of them,
    measure the held-out reward.
    """
    out = {}
    for s in seeds:
        if unit_hash(s["seed_id"]) >= distill_share:
            out[s["seed_id"]] = "revise"
        else:
            out[s["seed_id"]] = "distill" if gradable is None or gradable(s) else "distill_ungraded"
    for seed_id in validation_ids([k for k, v in out.items() if v == "distill"], val_size):
        out[seed_id] = "distill_val"
    return out


def control_phrase(correct: bool) -> str:
    """P_r, with the blank lines that separate it from the response before and the revision after."""
    return "\n\n" + prompts.load(CONTROL_PROMPTS[bool(correct)]).text + "\n\n"


def control_hash(correct: bool) -> str:
    return prompts.load(CONTROL_PROMPTS[bool(correct)]).hash
