"""Where a run's data came from, read back from its `runs` row and its stage manifests: what it ran (method,
preset, model and weight hash), which run it reused and from which stage, and for every stage whether it
was computed, resumed from shards or copied (and why), with its version, rows, model calls and seconds.
The printed summary, the Prefect run-summary artifact and the HTML report all show these items."""
from __future__ import annotations

import json

from selfimprove.warehouse.document import Item, Table
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.run_status import current, describe

def how_made(manifest: dict) -> str:
    """computed | resumed from N finished shards, M computed | copied from run X (same version | pinned by from_stage)."""
    if manifest.get("reused_from"):
        return f"copied from run {manifest['reused_from']} ({manifest.get('reused_because', 'same version')})"
    shards = manifest.get("shards") or {}
    if shards.get("resumed"):
        return f"resumed from {shards['resumed']} finished shards, {shards.get('computed', 0)} computed"
    return "computed"


def stage_usage(manifest: dict) -> dict:
    """Model calls (prompts sent to generate or to score), generated tokens and seconds of the stage's own
    work; a copy called no model, and its seconds are the copy's."""
    calls = tokens = 0
    if not manifest.get("reused_from"):
        for b in manifest.get("backends", []):
            c = b.get("counters", {})
            calls += c.get("generate_calls", 0) + c.get("scored_prompts", 0)
            tokens += c.get("generated_tokens", 0)
    return {"model_calls": calls, "generated_tokens": tokens,
            "seconds": manifest.get("copy_seconds") if manifest.get("reused_from") else manifest.get("seconds")}


def rows_of(manifest: dict) -> str:
    return ", ".join(f"{table} {n:,}" for table, n in (manifest.get("rows") or {}).items()) or "no rows"


def stage_line(stage: str, manifest: dict, how: str | None = None) -> str:
    """One line for a stage: how it was made, its version, rows per table, model calls, tokens, seconds."""
    use = stage_usage(manifest)
    seconds = use["seconds"]
    return (f"[{stage}] {how or how_made(manifest)}; version {manifest.get('version')}; rows: {rows_of(manifest)}; "
            f"{use['model_calls']:,} model calls, {use['generated_tokens']:,} tokens generated"
            + (f", {manifest['steps']} optimiser steps" if isinstance(manifest.get("steps"), int) else "")
            + (f"; {seconds:.1f} s" if isinstance(seconds, (int, float)) and not how else ""))


def stage_manifests(lake: Lake, run_id: str) -> list[dict]:
    """The run's finished stages in run order: each manifest's place in its flow's stage order (`order`, which
    the flow declares), then when it finished (a manifest without one: when it finished)."""
    found = lake.stage_manifests(run_id)

    def order(entry):
        mtime, m = entry
        return (m.get("order", 0), mtime, str(m.get("stage", "")))

    return [m for _, m in sorted(found, key=order)]


def stages_table(lake: Lake, run_id: str) -> Table:
    rows = []
    for m in stage_manifests(lake, run_id):
        use = stage_usage(m)
        rows.append((m.get("stage"), how_made(m), m.get("version"), rows_of(m), use["model_calls"], use["generated_tokens"],
                     use["seconds"]))
    return Table(["stage", "how", "version", "rows", "model calls", "tokens generated", "seconds"], rows, max_width=72)


def provenance(lake: Lake, run_id: str, closing: bool = False) -> list[Item]:
    """What the run is, what it started from, its status, and how each stage was made. `closing`: rendered
    by the run's own last step, so it is completing, not stuck."""
    row = current(lake, run_id) or {}
    if closing:
        row = {**row, "status": "completing (this summary is its last step)"}
    config = json.loads(row.get("config_json") or "{}")
    out = [f"run {run_id}: flow {row.get('flow')}, method {config.get('method', row.get('flow'))}, "
           f"preset {row.get('preset')}; status {row.get('status') or 'not recorded'}",
           f"model: {row.get('model')} ({row.get('model_path')}, weights {row.get('model_hash')})",
           f"started {row.get('started_at')} with selfimprove {row.get('library_version')}"
           + (f"; Prefect flow run {row['flow_run_id']}" if row.get("flow_run_id") else "")]
    state = None if closing else describe(row)
    if state:
        out.append(f"WARNING: this run is not completed: {state}")
    if row.get("reuse") and row.get("from_stage"):
        out.append(f"reused run {row['reuse']}: the stages before {row['from_stage']} are pinned to its output; "
                   f"{row['from_stage']} and the stages after it were recomputed where their version changed")
    elif row.get("reuse"):
        out.append(f"reused run {row['reuse']}: each stage whose version matches it was copied from it")
    if config.get("rescored_from"):
        out.append(f"rescored the stored outputs of run {config['rescored_from']}")
    table = stages_table(lake, run_id)
    if table.rows:
        out += ["", "## stages (how each was made)", table]
    return out
