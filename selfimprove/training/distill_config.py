"""Settings of the on-policy self-distillation loop (`selfimprove.training.self_distill`), shared by its methods."""
from __future__ import annotations

import hashlib
from dataclasses import dataclass

from selfimprove.validation import AtLeast0, AtLeast1, NonNegative, OpenShare, Positive, Share


@dataclass
class DistillConfig:
    """On-policy self-distillation (SD-Zero Phase 2, OPSD). Defaults sized for the 135M model on 2 CPU cores."""

    steps: AtLeast1 = 30  # optimizer steps
    batch_size: AtLeast1 = 8  # prompts per step, one on-policy response each
    learning_rate: Positive = 1e-5  # AdamW's learning rate (the student's)
    max_grad_norm: Positive = 1.0  # gradient-norm clipping
    divergence: str = "mixture"  # forward_kl | reverse_kl (paper) | mixture (released code: 0.5/0.5) | jsd
    mix: Share = 0.5  # mixture: weight of the forward KL
    beta: Share = 0.5  # jsd: the teacher's weight in the mixture distribution (generalized JSD)
    top_k: AtLeast1 = 64  # the teacher's top-k tokens are the support (paper: 64)
    support: str = "renormalized"  # renormalized | tail_bucket (never `truncated`: it collapses training)
    temperature: Positive = 1.0  # the student's sampling temperature for its rollouts
    top_p: OpenShare = 1.0  # nucleus share of the rollouts
    max_new_tokens: AtLeast1 = 64  # tokens a rollout may generate
    autocast: str = "bfloat16"  # bfloat16 | float32: compute dtype (weights and optimiser stay float32)
    sync_every: AtLeast0 = 0  # copy student -> teacher every N steps (0: never by count)
    sync_on_plateau: bool = True  # copy student -> teacher when the held-out reward stops improving
    keep_best: bool = True  # a plateau sync and the saved model use the best student by held-out reward, not the last
    eval_every: AtLeast0 = 10  # steps between held-out reward checks (0: never; plateau syncs need them)
    patience: AtLeast0 = 1  # checks without improvement that make a plateau
    min_delta: NonNegative = 0.0  # an improvement must exceed this
    val_size: AtLeast1 = 32  # seeds kept out of the rollouts to measure the held-out reward
    seed: int = 0  # the seed of seed order and rollouts

    def __post_init__(self) -> None:
        if self.support == "truncated":
            raise ValueError("distill.support 'truncated' (raw truncated KL) pushes mass out of the top-k and "
                             "collapses training; use renormalized or tail_bucket")


def unit_hash(seed_id: str) -> float:
    """A seed's stable place in [0, 1], independent of the seed order."""
    return int(hashlib.sha256(seed_id.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def validation_ids(seed_ids: list[str], val_size: int) -> set[str]:
    """The seeds that measure the held-out reward: the lowest-hash `val_size`, but at most a third of them."""
    return set(sorted(seed_ids, key=unit_hash)[:min(val_size, len(seed_ids) // 3)])
