"""The dataset card of an export, written from the lake: a YAML header the Hub and `datasets` read (configs and
their data files, size category, task category), then provenance, the verification funnel, judge quality against
the seeds' answers, the contamination check, held-out results and the SQL that rebuilds each split."""
from __future__ import annotations

import json

import yaml

from selfimprove.warehouse.document import Table, as_markdown
from selfimprove.reporting.curated import SPLIT_SQL, Curated
from selfimprove.warehouse.lake import Lake
from selfimprove.reporting.method_views import CascadeView, funnel, run_config
from selfimprove.warehouse.views import PER_DOMAIN_HEADER, per_domain
from selfimprove.warehouse.views import query

SIZES = ((1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"))


def size_category(n: int) -> str:
    return next((label for bound, label in SIZES if n < bound), "n>1M")


def header(curated: Curated, method: str) -> dict:
    sft = {"config_name": "default", "default": True,
           "data_files": [{"split": s, "path": f"data/{s}.parquet"} for s in curated.splits if s != "preference"]}
    configs = [sft] + ([{"config_name": "preference", "data_files": [{"split": "train", "path": "data/preference.parquet"}]}]
                       if "preference" in curated.splits else [])
    return {"configs": configs, "size_categories": [size_category(sum(map(len, curated.splits.values())))],
            "task_categories": ["text-generation"], "language": ["en"],
            "tags": ["selfimprove", "synthetic", method, "self-verified" if method.startswith("svd") else "self-generated"]}


def _metrics(lake: Lake, run_id: str) -> Table:
    cols, rows = query(lake, """SELECT model, dataset, metric, round(value, 3) AS value, n, round(ci_low, 3) AS ci_low,
                                       round(ci_high, 3) AS ci_high FROM eval_metrics
                                WHERE run_id = $run AND metric IN ('pass@1', 'pass@1_delta_vs_base')
                                ORDER BY metric, model""", {"run": run_id})
    return Table(cols, rows)


def dataset_card(lake: Lake, curated: Curated) -> str:
    run = curated.run_id
    config = run_config(lake, run)
    method = config.get("method", "svd")
    (flow, preset, model, model_hash, version, started), = query(
        lake, "SELECT flow, preset, model, model_hash, library_version, started_at FROM runs WHERE run_id = $run",
        {"run": run})[1]
    counts = ", ".join(f"`{s}` {len(rows)} rows" for s, rows in curated.splits.items())
    items = [
        f"# Curated by selfimprove: run {run}",
        f"Training data a language model produced and verified itself, exported from a selfimprove lake: {counts}. "
        "Every row carries `run_id`, `seed_id` and `candidate_id`, so it traces back to its seed, its sample and "
        "every judge call behind it.",
        *curated.notes,
        "## Provenance",
        Table(["field", "value"], [("run", run), ("flow / method", f"{flow} / {method}"), ("preset", preset),
                                   ("model", model), ("model weights (hash)", model_hash),
                                   ("selfimprove version", version), ("started", str(started))]),
        "## The verification funnel (candidates still in after each step)",
        Table(["step", "candidates", "what it means"], funnel(lake, run)),
    ]
    domains = per_domain(lake, run)
    if len(domains) > 1:
        items += ["## Per domain (each scored by its own rules)", Table(PER_DOMAIN_HEADER, domains)]
    quality = CascadeView().judge_quality(lake, run)
    if quality.rows:
        items += ["## Judge quality against the seeds' answers (measured only; the cascade never reads them)", quality]
    contamination = query(lake, "SELECT dataset, item_id, kind, round(overlap, 2), train_id, action FROM contamination "
                                "WHERE run_id = $run ORDER BY 1, 2", {"run": run})
    guard = lake.read_manifest(run, "contamination")
    items.append("## Contamination check")
    if contamination[1]:
        items += ["Held-out items found in the training text:", Table(*contamination)]
    else:
        items.append("The guard compared every training text with the registered held-out sets and found no overlap."
                     if guard else "The contamination guard did not run for this run.")
    metrics = _metrics(lake, run)
    items += ["## Held-out results (pass@1 with 95 % bootstrap intervals; the delta is paired on the same items)",
              metrics if metrics.rows else "No held-out evaluation was recorded."]
    items += ["## Rebuild each split from the lake",
              *[f"`{split}`:\n\n```sql\n{SPLIT_SQL[split].format(run=run)}\n```" for split in SPLIT_SQL
                if split in curated.splits],
              "Run it with `selfimprove sql \"...\" --lake LAKE` or `selfimprove.open_lake(LAKE).sql(...)`.",
              "## Configuration of the run",
              f"```json\n{json.dumps(config, indent=1, sort_keys=True)}\n```"]
    body = as_markdown(items, page=True)
    return "---\n" + yaml.safe_dump(header(curated, method), sort_keys=False) + "---\n\n" + body


def checkpoint_card(lake: Lake, run_id: str, path: str, results: list[dict] | None = None) -> str | None:
    """The card of the run's checkpoint at `path` from the lake's committed rows (None: no such checkpoint);
    `results`: eval_metrics rows an evaluation stage has not committed yet (default: the lake's 'tuned' rows)."""
    p = {"run": run_id, "path": path}
    cols, rows = query(lake, "SELECT * FROM checkpoints WHERE run_id = $run AND path = $path", p)
    if not rows:
        return None
    if results is None:
        names, found = query(lake, "SELECT * FROM eval_metrics WHERE run_id = $run AND model = 'tuned'", {"run": run_id})
        results = [dict(zip(names, r)) for r in found]
    return model_card(run_id, run_config(lake, run_id), dict(zip(cols, rows[0])), results)


def hub_name(base: str) -> str | None:
    """The base model as the Hub names it: the embedded default by its Hub id, a Hub-style id as it is, a local
    folder or an s3:// url not at all (a card's base_model must be a Hub repository)."""
    from selfimprove.inference.models import DEFAULT_HUB_ID, default_checkpoint_dir

    if base == "default" or base == str(default_checkpoint_dir()):
        return DEFAULT_HUB_ID
    return None if str(base).startswith(("/", ".", "s3://")) or str(base).count("/") != 1 else base


def model_card(run_id: str, config: dict, checkpoint: dict, results: list[dict]) -> str:
    """The model card of a run's checkpoint (a `checkpoints` row): base model, method, hyperparameters, the training
    rows behind it (and how to export them), held-out results as `model-index` entries, and the lineage query."""
    from huggingface_hub import EvalResult, ModelCard, ModelCardData

    from selfimprove.warehouse.views import LINEAGE_QUERY

    c = checkpoint
    shown = [r for r in results if r["metric"] in ("pass@1", "pass@1_delta_vs_base") and r["value"] == r["value"]]
    method = config.get("method", "svd")
    data = ModelCardData(
        base_model=hub_name(c["base_model"]),
        library_name="transformers", model_name=c["checkpoint_id"], tags=["selfimprove", method, f"training:{c['method']}"],
        eval_results=[EvalResult(task_type="text-generation", dataset_type=r["dataset"], dataset_name=r["dataset"],
                                 metric_type=r["metric"], metric_value=round(r["value"], 4)) for r in shown] or None)
    items = [
        f"# {c['checkpoint_id']}",
        f"Fine-tuned by selfimprove run `{run_id}` ({method}, {c['method']} fine-tuning) from `{c['base_model']}` on "
        f"{c['examples']} training rows the model produced and verified itself; {c['steps']} optimiser steps, final "
        f"loss {c['final_loss']:.4f}. Weights hash `{c['model_hash']}`.",
        "## Training data",
        f"The rows are in the lake's `train_examples` table (run `{run_id}`); take them out as a Hugging Face "
        f"dataset with `selfimprove export {run_id} --out DATASET_DIR` (its card holds the verification funnel).",
        "## Training hyperparameters",
        Table(["parameter", "value"], [(k, str(v)) for k, v in sorted(config.get("training", {}).items())]),
        "## Held-out results (pass@1; the delta is paired against the base model on the same items)",
        Table(["dataset", "metric", "value", "n", "95% CI"],
              [(r["dataset"], r["metric"], round(r["value"], 4), r["n"],
                f"[{r['ci_low']:.3f}, {r['ci_high']:.3f}]" if r.get("ci_low") is not None else "") for r in shown])
        if shown else "Not evaluated yet: the run's evaluation stage writes its results here.",
        "## Lineage",
        "From one evaluation sample back to its checkpoint, training rows, candidates and every judge call:\n\n"
        f"```sql\n{LINEAGE_QUERY.format(run_id=run_id).strip()}\n```",
    ]
    body = as_markdown(items, page=True)
    return str(ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}"))
