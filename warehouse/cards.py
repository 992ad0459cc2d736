"""The dataset card of an export, written from the lake: a YAML header the Hub and `datasets` read (configs and
their data files, size category, task category), then provenance, the verification funnel, judge quality against
the seeds' answers, the contamination check, held-out results and the SQL that rebuilds each split."""
from __future__ import annotations

import json

import yaml

from selfimprove.warehouse.document import Table, as_markdown
from selfimprove.warehouse.export import SPLIT_SQL, Curated
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.method_views import CascadeView, funnel, run_config
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
    body = ("\n" + as_markdown(items)).replace("\n## ", "\n# ").replace("\n### ", "\n## ").lstrip()  # one level up
    return "---\n" + yaml.safe_dump(header(curated, method), sort_keys=False) + "---\n\n" + body
