"""Evaluation flows: any model on a built-in held-out set or a user file, and rescoring stored outputs."""
from __future__ import annotations

import json

from prefect import flow

from selfimprove import config as configlib
from selfimprove.evaluation import metrics, paired_difference, rescore
from tasks.common import config_of
from tasks.report import render_eval
from tasks.stages import evaluate_model, evaluate_uq_ttc, ingest_heldout, register_run
from warehouse import Lake, lake_root

from .pipeline import new_run_id

METHODS = ("greedy", "uq_ttc")


@flow(name="evaluate")
def evaluate_flow(model: str = "default", data: str | None = None, scorer: str | None = None,
                  dataset: str | None = None, method: str = "greedy", lake: str | None = None,
                  overrides: dict | None = None, preset: str = "quickstart") -> dict:
    """`data` (a file, scored by `scorer`) or `dataset` (built-in); `method` greedy or uq_ttc (the run's cascade)."""
    if method not in METHODS:
        raise ValueError(f"unknown evaluation method {method!r}; known: {METHODS}")
    evaluation = {k: v for k, v in (("dataset", data or dataset), ("scorer", scorer)) if v}
    cfg = configlib.load(preset, overrides=configlib.merge(overrides or {}, {"evaluation": evaluation}))
    conf = cfg.to_dict()
    ctx = {"lake": str(lake_root(lake)), "run_id": new_run_id("eval")}
    register_run(ctx, conf, "evaluate", preset)
    items = ingest_heldout(ctx, conf)
    if method == "uq_ttc":
        evaluate_uq_ttc(ctx, conf, items, model, "model+uq_ttc")
    else:
        evaluate_model(ctx, conf, items, model, "model")
    return {"run_id": ctx["run_id"], "summary": render_eval(ctx["lake"], ctx["run_id"])}


@flow(name="rescore")
def rescore_flow(source_run: str, lake: str | None = None) -> dict:
    """Reapply the scorers to the outputs stored by `source_run`, into a new run; nothing is regenerated."""
    lk = Lake(lake_root(lake))
    items = [r for rows in lk.read("eval_items", source_run).values() for r in rows]
    samples = lk.read("eval_samples", source_run)
    if not items or not samples:
        raise ValueError(f"run {source_run!r} has no stored evaluation in {lk.root} (eval_items and eval_samples)")
    runs = [r for rows in lk.read("runs", source_run).values() for r in rows]
    conf = json.loads(runs[0]["config_json"]) if runs else configlib.RunConfig().to_dict()
    cfg = config_of(conf)
    ctx = {"lake": str(lk.root), "run_id": new_run_id("rescore")}
    register_run(ctx, {**conf, "rescored_from": source_run}, "rescore", "n/a")
    rescored = {}
    for part, rows in samples.items():
        rescored[part] = rescore(rows, items, cfg.evaluation)
        lk.write("eval_samples", ctx["run_id"], rescored[part], part=part)
        lk.write("eval_metrics", ctx["run_id"], metrics(rescored[part], cfg.evaluation), part=part)
    if "base" in rescored and "tuned" in rescored:
        lk.write("eval_metrics", ctx["run_id"], [paired_difference(rescored["base"], rescored["tuned"], cfg.evaluation, "tuned")],
                 part="delta")
    changed = sum(a["correct"] != b["correct"] for part in samples for a, b in zip(samples[part], rescored[part]))
    summary = render_eval(ctx["lake"], ctx["run_id"]) + f"\nrescored {source_run}: {changed} sample verdicts changed"
    return {"run_id": ctx["run_id"], "summary": summary, "changed": changed}
