"""The RFT flow (rejection-sampling fine-tuning): k samples per question, keep every sample the
ground-truth scorer accepts, SFT. Needs seeds with answers."""
from __future__ import annotations

from prefect import flow

from selfimprove.flows.parameters import documented

from selfimprove.flows.pipeline import STAGES, run_method  # noqa: F401  (its stage order: the shared one)


@flow(name="rft")
@documented("rft")
def rft(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
        overrides: dict | None = None, run_id: str | None = None, reuse: str | None = None,
        from_stage: str | None = None, cache: bool = True, method: str = "rft") -> dict:
    """Rejection-sampling fine-tuning: keep every sample the ground-truth scorer accepts, SFT (needs answers)."""
    return run_method("rft", method, preset, config_file, lake, overrides, run_id, reuse, from_stage, cache)
