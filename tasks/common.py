"""Plumbing every stage shares: the stage context, versioning, resume, engines, reading inputs by manifest.

A stage's version is a hash of its name, its config section (with the identity of every engine
it calls: kind, weights, dtype, settings) and its inputs' content hashes. If a manifest with that
version already exists for the run, the stage is done and is skipped; otherwise it runs, writes
its tables atomically and writes the manifest last. A model stage opens its engine with
`open_backend` and closes it when done, so memory is free before the next stage (fine-tuning
above all) starts.
"""
from __future__ import annotations

import atexit
import dataclasses
import errno
import hashlib
import json
import time
from contextlib import contextmanager
from dataclasses import dataclass
from functools import lru_cache

from selfimprove import __version__
from selfimprove.execution.base import Executor, ExecutorConfig, LocalExecutor, ShardJob, get_executor, run_sharded
from selfimprove.inference import models
from selfimprove.inference.base import Backend, BackendConfig, backend_identity, load_backend, record_usage
from selfimprove.prompts import load as load_prompt
from selfimprove.tasks.ui import progress_bar, say  # noqa: F401  (progress_bar: used by every model stage)
from selfimprove.warehouse.lake import Lake, files_exist
from selfimprove.warehouse.provenance import stage_line
from selfimprove.warehouse.run_status import RUNNING, set_status
from selfimprove.warehouse.shards import ShardStore
from selfimprove.storage.stores import read_table


@dataclass(frozen=True)
class StageContext:
    """Where a run's stages write and how they may reuse earlier work.

    Parameters:
        lake: the lake root.
        run_id: this run.
        reuse: another run's id; its stage is copied here when the versions match.
        from_stage: stages before it are copied from `reuse` as they are (pinned); it and the
            stages after it are recomputed.
        cache: any earlier run's stage of the same version is copied here, so a rerun with one
            changed judge setting recomputes judging and what follows, not sampling.
        stages: the flow's stage order (its `STAGES`): `from_stage` is one of them, and each manifest records
            its stage's place in it (`order`), which is how provenance lists a run's stages.
    """

    lake: str
    run_id: str
    reuse: str | None = None
    from_stage: str | None = None
    cache: bool = True
    stages: tuple[str, ...] = ()

    def order(self, stage: str) -> int:
        """The stage's place in the flow (an evaluation at a sweep temperature, `eval-x@T..`, takes eval-x's);
        a stage the flow does not declare comes after the declared ones."""
        base = stage.split("@")[0]
        return self.stages.index(base) if base in self.stages else len(self.stages)


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


def run_stage(ctx: StageContext, stage: str, config_section, inputs: list[dict], body,
              prompt_names: tuple[str, ...] = (), reads: tuple[str, ...] | None = None) -> dict:
    """Run `body(lake, shards) -> (files, info)` unless this exact stage version is already available.

    `shards` (a ShardStore) checkpoints long stages: after a crash, the same version resumes
    from its finished shards. A finished stage of this run itself is always skipped (resume);
    `ctx` says which other runs it may be copied from. Copies bring the rows into this run, so
    every run is complete on its own in SQL.
    """
    lake, run_id = Lake(ctx.lake), ctx.run_id
    version = version_of(stage, config_section, inputs, prompt_names, reads)
    set_status(lake, run_id, RUNNING, stage)
    done = lake.read_manifest(run_id, stage)
    if _complete(done, version):
        say(stage_line(stage, done, "already done in this run: skipped"))
        return done
    start = time.time()
    source_run, forced = _source(ctx, lake, stage, version)
    if source_run:
        source = lake.read_manifest(source_run, stage)
        why = "pinned by from_stage" if forced else "same version"
        copier = Lake(lake.location, {"run_id": run_id, "stage": stage, "version": source.get("version"),
                                      "copied_from": source_run, "libraries": library_versions()}, staged=True)
        manifest = {**source, "run_id": run_id, "reused_from": source_run, "reused_because": why,
                    "files": [copier.copy_to_run(f, run_id) for f in source["files"]],
                    "copy_seconds": round(time.time() - start, 2), "order": ctx.order(stage)}
        manifest = lake.write_manifest(run_id, stage, manifest)
        say(stage_line(stage, manifest))
        return manifest
    shards = ShardStore(lake.storage, run_id, stage, version)
    provenance = {"run_id": run_id, "stage": stage, "version": version, "libraries": library_versions(),
                  "inputs": {m["stage"]: m.get("version") for m in inputs}, "prompts": sorted(prompt_names)}
    files, info = body(Lake(lake.location, provenance, staged=True), shards)
    manifest = {**provenance, "files": files, "rows": {f["table"]: f["rows"] for f in files},
                "seconds": round(time.time() - start, 2), "finished_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "seed": _seed_of(config_section), "order": ctx.order(stage), **info}
    if shards.loaded or shards.computed:
        manifest["shards"] = {"resumed": shards.loaded, "computed": shards.computed}
    manifest = lake.write_manifest(run_id, stage, manifest)
    if not info.get("error_rows"):  # a stage kept with error rows is never served to other runs from the cache
        lake.index_version(stage, version, run_id)
    shards.clear()
    say(stage_line(stage, manifest))
    return manifest


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str]:
    from importlib.metadata import PackageNotFoundError, version

    out = {"selfimprove": __version__}
    for name in ("torch", "transformers", "trl", "peft", "prefect", "duckdb", "pyarrow", "math-verify", "reasoning-gym"):
        try:
            out[name] = version(name)
        except PackageNotFoundError:
            pass
    return out


def _seed_of(section) -> dict:
    """Every `seed` field in a stage's config section, by path: what makes its randomness repeatable."""
    found = {}

    def walk(node, path):
        if isinstance(node, dict):
            for k, v in node.items():
                if k == "seed" and isinstance(v, int):
                    found[f"{path}.seed" if path else "seed"] = v
                else:
                    walk(v, f"{path}.{k}" if path else k)

    walk(section, "")
    return found


def _source(ctx: StageContext, lake: Lake, stage: str, version: str) -> tuple[str | None, bool]:
    """The run to copy this stage from, and whether it is pinned (copied whatever its version)."""
    reuse, start = ctx.reuse, ctx.from_stage
    if start:
        if start not in ctx.stages:
            raise ValueError(f"unknown stage {start!r} for from_stage; stages: {ctx.stages}")
        if ctx.order(stage) >= ctx.order(start):
            return None, False  # from here on (and extra evaluations, always last): recompute
        if not reuse:
            raise ValueError("from_stage needs reuse=RUN_ID: the run whose earlier stages are kept")
        if not files_exist(lake.read_manifest(reuse, stage)):
            raise ValueError(f"run {reuse!r} has no finished stage {stage!r} to start from")
        return reuse, True
    if reuse and _complete(lake.read_manifest(reuse, stage), version):
        return reuse, False
    if ctx.cache:
        for other in lake.runs_with_version(stage, version):
            if other != ctx.run_id and _complete(lake.read_manifest(other, stage), version):
                return other, False
    return None, False


class StageError(RuntimeError):
    pass


def _retry_unless_bad_input(task, task_run, state) -> bool:
    """Retry backend trouble (with shards, a retry resumes); never bad input or config (ValueError), nor a
    full or read-only disk: that waits for someone to free space, then `--resume`."""
    try:
        exc = state.result(raise_on_failure=False)
    except Exception as e:  # noqa: BLE001 - the result itself failed to load: treat as transient
        exc = e
    if isinstance(exc, OSError) and exc.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS):
        return False
    return not isinstance(exc, (ValueError, KeyError, TypeError))


# model stages: retried with backoff, tagged so a Prefect tag concurrency limit can serialise GPU work
MODEL_STAGE = {"retries": 2, "retry_delay_seconds": [10, 60], "retry_condition_fn": _retry_unless_bad_input,
               "tags": ["gpu"]}


def error_reason(e: BaseException) -> str:
    """The reason code of an error row: backend:<exception type>: <message>."""
    return f"backend:{type(e).__name__}: {e}"[:300]


def check_error_rate(stage: str, errors: list[str | None], max_rate: float) -> int:
    """Fail the stage (so Prefect retries it, resuming from saved shards) past `max_rate` error rows."""
    bad = [e for e in errors if e]
    if errors and len(bad) / len(errors) > max_rate:
        raise StageError(f"stage {stage}: {len(bad)} of {len(errors)} rows are errors "
                         f"({len(bad) / len(errors):.1%} > max_error_rate {max_rate:.1%}); first: {bad[0]}")
    if bad:
        say(f"[{stage}] {len(bad)} error rows kept ({len(bad) / len(errors):.1%} <= max_error_rate {max_rate:.1%})")
    return len(bad)


def _complete(manifest: dict | None, version: str) -> bool:
    return files_exist(manifest) and manifest.get("version") == version


def read(manifest: dict, table: str) -> list[dict]:
    """The rows of one table that a stage's manifest names."""
    for f in manifest["files"]:
        if f["table"] == table:
            return read_table(f["path"]).to_pylist()
    raise KeyError(f"stage {manifest['stage']!r} wrote no table {table!r}")


def section(cfg, *keys: str) -> dict:
    """Config fields by name, as plain data: the part of a stage's version they make up."""
    return {k: (dataclasses.asdict(v) if dataclasses.is_dataclass(v) else v) for k in keys for v in [getattr(cfg, k)]}


def engine(model: str | None, config: BackendConfig) -> dict | None:
    """The identity of the engine that would serve `model` (kind, weights, dtype, settings): part of the
    version of every stage that calls it, so another dtype or engine recomputes the stage."""
    return None if model is None else backend_identity(models.resolve(model), config)


# an engine that is slow to start (vLLM: tens of seconds) stays up between consecutive stages that use
# the same (checkpoint, settings); at most one is kept, and it is closed before any training stage
_WARM: dict[str, Backend] = {}


@contextmanager
def open_backend(model: str, config: BackendConfig, usage: dict):
    """A loaded engine for one stage, closed (its memory freed) when the stage is done with it, unless
    the engine keeps warm (`Backend.keep_warm`): then it serves the next stage with the same checkpoint
    and settings and is closed by `release_engines()` (before training, at the end of a flow) or when
    another engine is needed. `usage` receives its identity and counters for the stage's manifest."""
    path = models.resolve(model)
    key = json.dumps([str(path), dataclasses.asdict(config)], sort_keys=True)
    backend = _WARM.pop(key, None)
    release_engines()
    if backend is None:
        backend = load_backend(path, config)
    before = backend.counters.as_dict()
    try:
        yield backend
    finally:
        after = backend.counters.as_dict()
        spent = {k: after[k] - before[k] for k in after}
        usage.setdefault("backends", []).append({"identity": backend.identity(), "counters": spent,
                                                 **backend.run_notes()})
        record_usage(backend, spent)
        if backend.keep_warm:
            _WARM[key] = backend
        else:
            backend.close()


def release_engines() -> None:
    """Close every engine kept warm, here and on cluster workers (before training, and when a flow ends)."""
    release_engines_here()
    for executor in _EXECUTORS.values():
        executor.release()


_EXECUTORS: dict[str, Executor] = {}  # one per executor config, so a cluster's engine pool outlives a stage


def run_shards(config: ExecutorConfig, shards: ShardStore, units: list, size: int, job: ShardJob, tick,
               usage: dict) -> dict[str, list[dict]]:
    """A stage's shards through the run's executor: locally on an engine opened here (`open_backend`), or
    on Ray workers that each hold one; `usage` gets the engine identity and counters either way."""
    if config.kind == "local":
        if job.model is None:
            return run_sharded(LocalExecutor(config), job, shards, units, size, tick)
        with open_backend(job.model, job.backend, usage) as engine:
            return run_sharded(LocalExecutor(config, engine), job, shards, units, size, tick)
    key = json.dumps(dataclasses.asdict(config), sort_keys=True, default=str)
    if key not in _EXECUTORS:
        _EXECUTORS[key] = get_executor(config)
    release_engines_here()
    return run_sharded(_EXECUTORS[key], job, shards, units, size, tick, usage)


def release_engines_here() -> None:
    """Close the engines this process keeps warm (a cluster stage needs none here)."""
    while _WARM:
        _WARM.popitem()[1].close()


atexit.register(release_engines)  # a flow that failed midway leaves no engine running
