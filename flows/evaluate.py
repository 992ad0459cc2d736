"""Evaluation flows: models on a built-in held-out set or a user file, and rescoring stored outputs."""
from __future__ import annotations

import json
from pathlib import Path

from prefect import flow

from selfimprove.flows.parameters import documented

from selfimprove import config as configlib
from selfimprove.evaluation.heldout import EVAL_METHODS, metrics, paired_difference, rescore
from selfimprove.flows.pipeline import new_run_id, start_run, tracked
from selfimprove.inference import models as modellib
from selfimprove.tasks.common import StageContext, read, release_engines
from selfimprove.tasks.report import render_eval
from selfimprove.tasks.stages import evaluate_majority, evaluate_model, evaluate_uq_ttc, ingest_heldout, register_run
from selfimprove.warehouse.lake import Lake, lake_location

def model_labels(names: list[str]) -> dict[str, str]:
    """label → model: `default`, else the checkpoint folder's name, made unique."""
    labels: dict[str, str] = {}
    for name in names:
        label = name if name == modellib.DEFAULT_MODEL else Path(name).name or name
        while label in labels:
            label += "'"
        labels[label] = name
    return labels


@flow(name="evaluate")
@documented("evaluate", method="greedy (one answer per item), uq_ttc (samples judged by the preset's cascade; "
                                  "the first accepted answer is scored) or majority (the most frequent answer of k "
                                  "samples, maj@k).",
            k="majority: samples per item. Empty: the preset's sampling.n.")
def evaluate_flow(model: str | list[str] = "default", data: str | None = None, scorer: str | None = None,
                  dataset: str | None = None, method: str = "greedy", lake: str | None = None,
                  overrides: dict | None = None, preset: str = "quickstart", k: int | None = None) -> dict:
    """Score one or more models on the same held-out items; with several, each later one gets the paired
    difference against the first."""
    if method not in EVAL_METHODS:
        raise ValueError(f"unknown evaluation method {method!r}; known: {EVAL_METHODS}")
    names = [model] if isinstance(model, str) else list(model)
    if not names:
        raise ValueError("evaluate needs at least one model")
    evaluation = {k: v for k, v in (("dataset", data or dataset), ("scorer", scorer)) if v}
    cfg = configlib.load(preset, overrides=configlib.merge(overrides or {}, {"evaluation": evaluation, "model": names[0]}),
                         method="evaluate")
    with start_run("evaluate", cfg, preset, lake) as ctx:
        items = ingest_heldout(ctx, cfg)
        evals = {}
        for label, name in model_labels(names).items():
            if method == "uq_ttc":
                evals[label] = evaluate_uq_ttc(ctx, cfg, items, name, f"{label}+uq_ttc", f"eval-{label}+uq_ttc")
            elif method == "majority":
                evals[label] = evaluate_majority(ctx, cfg, items, name, f"{label}+majority", k)
            else:
                evals[label] = evaluate_model(ctx, cfg, items, name, label)
        release_engines()
        first, *rest = evals
        lk = Lake(ctx.lake)
        for i, label in enumerate(rest, 1):
            delta = paired_difference(read(evals[first], "eval_samples"), read(evals[label], "eval_samples"),
                                      cfg.evaluation, f"{label} vs {first}")
            lk.write("eval_metrics", ctx.run_id, [delta], part=f"delta-{i}")
        return {"run_id": ctx.run_id, "summary": render_eval(ctx.lake, ctx.run_id)}


@flow(name="rescore")
@documented("rescore")
def rescore_flow(source_run: str, lake: str | None = None) -> dict:
    """Reapply the scorers to the outputs stored by `source_run`, into a new run; nothing is regenerated."""
    lk = Lake(lake_location(lake))
    lk.require_run(source_run, "rescore")
    items = [r for rows in lk.read("eval_items", source_run).values() for r in rows]
    samples = lk.read("eval_samples", source_run)
    if not items or not samples:
        raise ValueError(f"run {source_run!r} has no stored evaluation in {lk.location} (eval_items and eval_samples)")
    runs = [r for rows in lk.read("runs", source_run).values() for r in rows]
    conf = json.loads(runs[0]["config_json"]) if runs else configlib.RunConfig().to_dict()
    cfg = configlib.from_dict(conf)
    ctx = StageContext(lake=lk.location, run_id=new_run_id("rescore"))
    register_run(ctx, cfg, "rescore", "n/a", {"rescored_from": source_run})
    with tracked(ctx):
        rescored = {}
        for part, rows in samples.items():
            rescored[part] = rescore(rows, items, cfg.evaluation)
            lk.write("eval_samples", ctx.run_id, rescored[part], part=part)
            lk.write("eval_metrics", ctx.run_id, metrics(rescored[part], cfg.evaluation), part=part)
        if "base" in rescored and "tuned" in rescored:
            lk.write("eval_metrics", ctx.run_id,
                     [paired_difference(rescored["base"], rescored["tuned"], cfg.evaluation, "tuned")], part="delta")
        changed = sum(a["correct"] != b["correct"] for part in samples for a, b in zip(samples[part], rescored[part]))
        summary = render_eval(ctx.lake, ctx.run_id, f"rescored {source_run}: {changed} sample verdicts changed")
        return {"run_id": ctx.run_id, "summary": summary, "changed": changed}
