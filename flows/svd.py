"""The SVD flow: seeds → candidates → self-judging → selection → contamination guard → fine-tuning → held-out evaluation."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from prefect import flow

from selfimprove import config as configlib
from tasks.report import summarize_run
from tasks.stages import (evaluate_model, evaluate_uq_ttc, fine_tune, guard_contamination, ingest_seeds,
                          judge_candidates, register_run, sample_candidates, select_examples)
from warehouse import lake_root


def new_run_id(flow_name: str) -> str:
    return f"{flow_name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


@flow(name="svd")
def svd(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
        overrides: dict | None = None, run_id: str | None = None, method: str = "svd", reuse: str | None = None,
        from_stage: str | None = None, cache: bool = True) -> dict:
    """Self-Verified Distillation.

    `run_id` of an earlier run resumes it (finished stages are skipped). Any stage whose
    version (config, prompts, model, input content) matches an earlier run's is copied from it
    unless `cache` is off; `reuse` names the run to prefer. `from_stage` (with `reuse`) keeps
    that run's earlier stages as they are and recomputes this stage and everything after it.
    """
    cfg = configlib.load(preset, config_file, overrides, method)
    conf = cfg.to_dict()
    ctx = {"lake": str(lake_root(lake)), "run_id": run_id or new_run_id("svd"), "reuse": reuse,
           "from_stage": from_stage, "cache": cache}
    m: dict[str, dict] = {}
    register_run(ctx, conf, "svd", preset)
    m["seeds"] = ingest_seeds(ctx, conf)
    m["candidates"] = sample_candidates(ctx, conf, m["seeds"])
    m["judge"] = judge_candidates(ctx, conf, m["seeds"], m["candidates"])
    m["select"] = select_examples(ctx, conf, m["seeds"], m["candidates"], m["judge"])
    if cfg.contamination.enabled:
        m["contamination"] = guard_contamination(ctx, conf, m["seeds"], m["select"])
    m["train"] = fine_tune(ctx, conf, m["select"])
    m["eval-base"] = evaluate_model(ctx, conf, m["seeds"], cfg.model, "base")
    if m["train"].get("checkpoint"):
        m["eval-tuned"] = evaluate_model(ctx, conf, m["seeds"], m["train"]["checkpoint"], "tuned")
    if cfg.uq_ttc.enabled:
        m["eval-uq_ttc"] = evaluate_uq_ttc(ctx, conf, m["seeds"], cfg.model)
    return summarize_run(ctx, conf, m)
