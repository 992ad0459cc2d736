"""OPSD settings: where the teacher's privileged information (PI) comes from, and the distillation loop's.

The student reads only the question; the teacher, the same weights frozen at the start, reads the
question plus the PI, and the student learns the teacher's next-token distributions over its own
rollouts. PI sources:
- `ground_truth`: the seed's answer, and its worked `solution` where the seed file has one;
- `self_verified`: the candidate the run's own cascade accepted for the seed (label-free); a seed with
  none is skipped and counted;
- `rule`: one shared instruction, the same for every seed (the setting reported to work).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from selfimprove.training.distill_config import DistillConfig
from selfimprove.validation import InputError, OpenShare, Positive, Share
from selfimprove.verification.rewards import SOURCES as REWARDS

PI_SOURCES = ("ground_truth", "self_verified", "rule")


@dataclass
class OPSDDistillConfig(DistillConfig):
    """The loop's settings with OPSD's defaults: generalized JSD (beta 0.5), the paper's divergence, and rollouts at
    T 0.7 / top-p 0.95: at T 1.0 only 6 % of the 135M model's rollouts were right (51 % at T 0.7; README)."""

    divergence: str = "jsd"
    temperature: Positive = 0.7
    top_p: OpenShare = 0.95


@dataclass
class OPSDConfig:
    """OPSD's settings: the teacher's PI source, the reward, the warm start and the distillation loop.

    Parameters:
        pi: the PI source, one of PI_SOURCES.
        rule: the prompt file holding the shared instruction (`pi: rule`).
        reward: how rollouts and the held-out checks (keep_best, plateau syncs) are graded; None: `ground_truth`
            when the PI is, else `self_verified` (agreement labels, no answer read), so a label-free PI makes a
            label-free run.
        scorer: how the reward checks an answer against the seed's (as SD-Zero's).
        agreement_threshold: the agreement reward's minimum answer share (as SD-Zero's).
        warm_start: first fine-tune (SFT) on the run's accepted examples, then distil from that model (the
            "SFT-stabilised student").
        distill: the on-policy loop (`selfimprove.training.self_distill`).
    """

    pi: str = "ground_truth"
    rule: str = "opsd_rule"
    reward: str | None = None
    scorer: str = "math"
    agreement_threshold: Share = 0.5
    warm_start: bool = False
    distill: OPSDDistillConfig = field(default_factory=OPSDDistillConfig)

    def __post_init__(self) -> None:
        if self.pi not in PI_SOURCES:
            raise InputError(f"{self.pi!r}: one of {', '.join(PI_SOURCES)}", field="opsd.pi")
        if self.reward is not None and self.reward not in REWARDS:
            raise InputError(f"{self.reward!r}: one of {', '.join(REWARDS)}", field="opsd.reward")
        if self.pi == "ground_truth" and self.reward == "self_verified":
            raise InputError("a ground_truth PI reads the answers anyway; grade by ground_truth", field="opsd.reward")
        if isinstance(self.distill, dict):
            self.distill = OPSDDistillConfig(**self.distill)

    @property
    def reward_source(self) -> str:
        return self.reward or ("ground_truth" if self.pi == "ground_truth" else "self_verified")

    @property
    def needs_candidates(self) -> bool:
        """Whether the run samples candidates: for agreement labels, or for the cascade to accept one."""
        return self.reward_source == "self_verified" or self.needs_accepted

    @property
    def needs_accepted(self) -> bool:
        """Whether the run judges its candidates: a self_verified PI quotes them, a warm start trains on them."""
        return self.pi == "self_verified" or self.warm_start
