"""The SVD flow: the model samples, judges its own samples (cascade), and trains on what it accepts."""
from __future__ import annotations

from prefect import flow

from selfimprove.flows.pipeline import run_method


@flow(name="svd")
def svd(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
        overrides: dict | None = None, run_id: str | None = None, method: str = "svd", reuse: str | None = None,
        from_stage: str | None = None, cache: bool = True) -> dict:
    """Self-Verified Distillation.

    `run_id` of an earlier run resumes it (finished stages are skipped). Any stage whose
    version (config, prompts, model, input content) matches an earlier run's is copied from it
    unless `cache` is off; `reuse` names the run to prefer. `from_stage` (with `reuse`) keeps
    that run's earlier stages as they are and recomputes this stage and everything after it.
    `method` swaps the cascade for a baseline: any registered method of this flow (`selfimprove.methods`).
    """
    return run_method("svd", method, preset, config_file, lake, overrides, run_id, reuse, from_stage, cache)
