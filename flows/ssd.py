"""The SSD flow (simple self-distillation): one raw sample per prompt at a training temperature,
no verification, drop empty and shortest-10 % samples, SFT, then a T_eval sweep for base and
trained model (the best-tuned base is its own baseline)."""
from __future__ import annotations

from prefect import flow

from selfimprove.flows.parameters import documented

from selfimprove.flows.pipeline import STAGES, run_method  # noqa: F401  (its stage order: the shared one)


@flow(name="ssd")
@documented("ssd")
def ssd(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
        overrides: dict | None = None, run_id: str | None = None, reuse: str | None = None,
        from_stage: str | None = None, cache: bool = True, method: str = "ssd") -> dict:
    """Simple self-distillation: raw samples at a training temperature, no verification, SFT, a T_eval sweep."""
    return run_method("ssd", method, preset, config_file, lake, overrides, run_id, reuse, from_stage, cache)
