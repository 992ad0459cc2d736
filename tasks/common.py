"""Plumbing every stage shares: versioning, resume, reading inputs by manifest, writing outputs.

A stage's version is a hash of its name, its config section and its inputs' content
hashes. If a manifest with that version already exists for the run, the stage is
done and is skipped; otherwise it runs, writes its tables atomically and writes the
manifest last.
"""
from __future__ import annotations

import hashlib
import json
import time
from functools import lru_cache
from pathlib import Path

import pyarrow.parquet as pq
from tqdm.auto import tqdm

from selfimprove import __version__
from selfimprove.backends import BackendConfig, load_backend
from selfimprove.config import RunConfig, from_dict
from selfimprove.prompts import load as load_prompt
from warehouse import Lake


def version_of(stage: str, config_section, inputs: list[dict], prompt_names: tuple[str, ...] = (),
               reads: tuple[str, ...] | None = None) -> str:
    """Hash of what determines a stage's output: code version, config, the prompts it uses, and the
    content of the input tables it reads (`reads`; None = every file of its input manifests)."""
    payload = json.dumps({"stage": stage, "code": __version__, "config": config_section,
                          "prompts": {name: load_prompt(name).hash for name in sorted(prompt_names)},
                          "inputs": [f["sha256"] for m in inputs for f in m.get("files", [])
                                     if reads is None or f["table"] in reads]},
                         sort_keys=True, default=str)
    return hashlib.sha256(payload.encode()).hexdigest()[:16]


def run_stage(ctx: dict, stage: str, config_section, inputs: list[dict], body,
              prompt_names: tuple[str, ...] = (), reads: tuple[str, ...] | None = None) -> dict:
    """Run `body(lake) -> (files, info)` unless this exact stage version is already available.

    `ctx` holds `lake`, `run_id` and optionally `reuse` (another run's id): a finished stage
    of this run is skipped (resume); a stage of the `reuse` run with the same version is
    copied into this run without recomputing it.
    """
    lake, run_id = Lake(ctx["lake"]), ctx["run_id"]
    version = version_of(stage, config_section, inputs, prompt_names, reads)
    done = lake.read_manifest(run_id, stage)
    if _complete(done, version):
        print(f"[{stage}] already done in run {run_id} (version {version}): skipped")
        return done
    source = ctx.get("reuse") and lake.read_manifest(ctx["reuse"], stage)
    if _complete(source, version):
        print(f"[{stage}] same version in run {ctx['reuse']}: copied, not recomputed")
        manifest = {**source, "run_id": run_id, "reused_from": ctx["reuse"],
                    "files": [lake.copy_to_run(f, run_id) for f in source["files"]]}
        lake.write_manifest(run_id, stage, manifest)
        return manifest
    start = time.time()
    files, info = body(lake)
    manifest = {"run_id": run_id, "stage": stage, "version": version, "files": files,
                "rows": {f["table"]: f["rows"] for f in files}, "seconds": round(time.time() - start, 2),
                "inputs": [m["stage"] for m in inputs], **info}
    lake.write_manifest(run_id, stage, manifest)
    return manifest


def _complete(manifest: dict | None, version: str) -> bool:
    return bool(manifest) and manifest.get("version") == version and all(Path(f["path"]).exists() for f in manifest["files"])


def read(manifest: dict, table: str) -> list[dict]:
    """The rows of one table that a stage's manifest names."""
    for f in manifest["files"]:
        if f["table"] == table:
            return pq.read_table(f["path"]).to_pylist()
    raise KeyError(f"stage {manifest['stage']!r} wrote no table {table!r}")


def config_of(config: dict) -> RunConfig:
    return from_dict(config)


@lru_cache(maxsize=2)
def _backend(path: str, backend_json: str):
    return load_backend(path, BackendConfig(**json.loads(backend_json)))


def backend_for(model_path: str, backend: BackendConfig):
    """One loaded model per (checkpoint, backend settings) in this process."""
    return _backend(str(model_path), json.dumps(backend.__dict__, sort_keys=True))


def progress_bar(total: int, desc: str, unit: str = "prompt"):
    bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True)
    return bar, bar.update
