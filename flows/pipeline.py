"""The stages every method shares, in order: seeds → candidates → verdicts → selection →
contamination guard → fine-tuning → held-out evaluation. A method is a config (see
`selfimprove.config.METHODS`): SVD judges with its cascade, SSD keeps raw samples, RFT keeps
what the ground truth accepts; evaluation is greedy, or a T_eval sweep for SSD. SD-Zero
(`flows/sdzero.py`) shares the start, the sampling, the guard, the SFT stage and the evaluation.
"""
from __future__ import annotations

import uuid
from datetime import datetime, timezone

from selfimprove import config as configlib
from tasks.report import summarize_run
from tasks.stages import (evaluate_model, evaluate_uq_ttc, fine_tune, guard_contamination, ingest_seeds,
                          judge_candidates, register_run, sample_candidates, select_examples)
from warehouse import lake_root


def new_run_id(flow_name: str) -> str:
    return f"{flow_name}-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


def start_run(flow_name: str, preset: str, config_file: str | None, lake: str | None, overrides: dict | None,
              run_id: str | None, method: str, reuse: str | None, from_stage: str | None, cache: bool):
    """(config, config as dict, stage context) of a registered run."""
    cfg = configlib.load(preset, config_file, overrides, method)
    conf = cfg.to_dict()
    ctx = {"lake": str(lake_root(lake)), "run_id": run_id or new_run_id(flow_name), "reuse": reuse,
           "from_stage": from_stage, "cache": cache}
    register_run(ctx, conf, flow_name, preset)
    return cfg, conf, ctx


def evaluate_models(ctx: dict, conf: dict, cfg, seeds_manifest: dict, models: dict[str, str | None], m: dict) -> None:
    """Each labelled model on the run's held-out items (None: not trained, skipped), T_eval sweep included."""
    for label, model in models.items():
        if model is None:
            continue
        m[f"eval-{label}"] = evaluate_model(ctx, conf, seeds_manifest, model, label)
        for t in cfg.evaluation.temperature_sweep:  # SSD tunes T_eval for base and trained model alike
            at_t = configlib.merge(conf, {"evaluation": {"temperature": t, "samples": cfg.evaluation.sweep_samples if t > 0 else 1}})
            m[f"eval-{label}@T{t}"] = evaluate_model(ctx, at_t, seeds_manifest, model, f"{label}@T{t}")
    if cfg.uq_ttc.enabled:
        m["eval-uq_ttc"] = evaluate_uq_ttc(ctx, conf, seeds_manifest, cfg.model)


def run_method(flow_name: str, preset: str, config_file: str | None, lake: str | None, overrides: dict | None,
               run_id: str | None, method: str, reuse: str | None, from_stage: str | None, cache: bool) -> dict:
    cfg, conf, ctx = start_run(flow_name, preset, config_file, lake, overrides, run_id, method, reuse, from_stage, cache)
    m: dict[str, dict] = {}
    m["seeds"] = ingest_seeds(ctx, conf)
    m["candidates"] = sample_candidates(ctx, conf, m["seeds"])
    m["judge"] = judge_candidates(ctx, conf, m["seeds"], m["candidates"])
    m["select"] = select_examples(ctx, conf, m["seeds"], m["candidates"], m["judge"])
    if cfg.contamination.enabled:
        m["contamination"] = guard_contamination(ctx, conf, m["seeds"], m["select"])
    m["train"] = fine_tune(ctx, conf, m["select"])
    evaluate_models(ctx, conf, cfg, m["seeds"], {"base": cfg.model, "tuned": m["train"].get("checkpoint")}, m)
    return summarize_run(ctx, conf, m)
