"""The calibration flow: run every verifier on seeds with ground truth and recommend a cascade."""
from __future__ import annotations

from prefect import flow, task

from selfimprove.flows.parameters import documented

from selfimprove import config as configlib
from selfimprove.verification.calibration import calibration_stages, recommend
from selfimprove.config import RunConfig
from selfimprove.flows.pipeline import start_run
from selfimprove.tasks.common import read, release_engines
from selfimprove.tasks.report import render_calibration
from selfimprove.tasks.stages import ingest_seeds, judge_candidates, sample_candidates


@task(name="recommend-cascade")
def recommend_cascade(cfg: RunConfig, judge_manifest: dict) -> dict:
    labels = {r["candidate_id"]: r["correct"] for r in read(judge_manifest, "candidate_labels")}
    if not labels:
        raise ValueError("calibration needs seeds with ground-truth answers (generated seeds have them)")
    stages, notes = recommend(read(judge_manifest, "judge_metrics"), read(judge_manifest, "judgments"), labels,
                              cfg.cascade.stages)
    return {"stages": stages, "notes": notes}


@flow(name="calibrate")
@documented("calibrate")
def calibrate(model: str = "default", preset: str = "quickstart", seeds_size: int = 48, lake: str | None = None,
              overrides: dict | None = None, reuse: str | None = None, seed: int = 4321) -> dict:
    """Calibrate on generated seeds of their own generator seed (4321), apart from the training seeds."""
    base = configlib.load(preset, overrides=configlib.merge(
        {"model": model, "seeds": {"size": seeds_size, "seed": seed}}, overrides or {}), method="calibrate")
    agreement = next((s.threshold for s in base.cascade.stages if s.strategy == "agreement"), 0.5)
    base.cascade.stages = calibration_stages(agreement)
    base.cascade.selection = "all_valid"
    with start_run("calibrate", base, preset, lake, reuse=reuse) as ctx:
        seeds = ingest_seeds(ctx, base)
        candidates = sample_candidates(ctx, base, seeds)
        judged = judge_candidates(ctx, base, seeds, candidates)
        release_engines()
        rec = recommend_cascade(base, judged)
        text = render_calibration(ctx.lake, ctx.run_id, rec)
        return {"run_id": ctx.run_id, "summary": text, "recommended": rec["stages"]}
