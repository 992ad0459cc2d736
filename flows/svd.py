"""The SVD flow: the model samples, judges its own samples (cascade), and trains on what it accepts."""
from __future__ import annotations

from prefect import flow

from selfimprove.flows.parameters import documented

from selfimprove.flows.pipeline import STAGES, run_method  # noqa: F401  (its stage order: the shared one)


@flow(name="svd")
@documented("svd")
def svd(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
        overrides: dict | None = None, run_id: str | None = None, method: str = "svd", reuse: str | None = None,
        from_stage: str | None = None, cache: bool = True) -> dict:
    """Self-Verified Distillation: the model samples answers to unlabeled questions, judges its own samples
    (cycle-consistency, factuality, correctness; several votes, unanimous) and fine-tunes on what it accepts.
    """
    return run_method("svd", method, preset, config_file, lake, overrides, run_id, reuse, from_stage, cache)
