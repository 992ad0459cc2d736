"""The evaluation flow: any model on any JSONL of {question, answer}, or the built-in held-out set."""
from __future__ import annotations

from pathlib import Path

from prefect import flow

from selfimprove import config as configlib
from selfimprove import seeds as seedlib
from tasks.common import run_stage
from tasks.report import render_eval
from tasks.stages import evaluate_model
from warehouse import lake_root

from .svd import new_run_id


@flow(name="evaluate")
def evaluate_flow(model: str = "default", data: str | None = None, scorer: str = "math", lake: str | None = None,
                  overrides: dict | None = None) -> dict:
    cfg = configlib.load("quickstart", overrides=overrides)
    cfg.evaluation.scorer = scorer
    if data:
        cfg.evaluation.dataset_name = Path(data).stem
    conf = cfg.to_dict()
    run_id = new_run_id("eval")
    ctx = {"lake": str(lake_root(lake)), "run_id": run_id}

    def ingest(lk):
        if data:
            rows = seedlib.read_eval_file(Path(data))
        else:
            rows = seedlib.generate(cfg.evaluation.source)
        items = [{"dataset": cfg.evaluation.dataset_name, "item_id": r["seed_id"], **r} for r in rows]
        return [lk.write("eval_items", run_id, items)], {}

    items = run_stage(ctx, "seeds", {"data": data, "evaluation": conf["evaluation"]}, [], ingest)
    m = evaluate_model(ctx, conf, items, model, "model")
    return {"run_id": run_id, "summary": render_eval(ctx["lake"], run_id), "manifest": m}
