"""The SVD flow: seeds → candidates → self-judging → selection → fine-tuning → held-out evaluation."""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from prefect import flow

from selfimprove import config as configlib
from tasks.report import summarize_run
from tasks.stages import evaluate_model, fine_tune, ingest_seeds, judge_candidates, sample_candidates, select_examples
from warehouse import lake_root


def new_run_id(flow_name: str) -> str:
    return f"{flow_name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


@flow(name="svd", log_prints=True)
def svd(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
        overrides: dict | None = None, run_id: str | None = None, method: str = "svd") -> dict:
    """Self-Verified Distillation. Pass an existing `run_id` to resume it: finished stages are reused."""
    cfg = configlib.load(preset, config_file, overrides, method)
    conf = cfg.to_dict()
    lake_dir = str(lake_root(lake))
    run_id = run_id or new_run_id("svd")
    m: dict[str, dict] = {}
    m["seeds"] = ingest_seeds(lake_dir, run_id, conf, "svd", preset)
    m["candidates"] = sample_candidates(lake_dir, run_id, conf, m["seeds"])
    m["judge"] = judge_candidates(lake_dir, run_id, conf, m["seeds"], m["candidates"])
    m["select"] = select_examples(lake_dir, run_id, conf, m["seeds"], m["candidates"], m["judge"])
    m["train"] = fine_tune(lake_dir, run_id, conf, m["select"])
    m["eval-base"] = evaluate_model(lake_dir, run_id, conf, m["seeds"], cfg.model, "base")
    if m["train"].get("checkpoint"):
        m["eval-tuned"] = evaluate_model(lake_dir, run_id, conf, m["seeds"], m["train"]["checkpoint"], "tuned")
    return summarize_run(lake_dir, run_id, conf, m)
