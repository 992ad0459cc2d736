"""The executor seam: `ExecutorConfig` (the run's `executor:` section), `ShardJob`, the registry, and
`run_sharded`, which runs a stage's unfinished shards through an executor and checkpoints each."""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Callable, ClassVar, Iterator, Protocol

from selfimprove.inference.base import BackendConfig
from selfimprove.validation import AtLeast1, NonNegative, Positive


@dataclass
class ExecutorConfig:
    """Where model stages run. Not part of any stage's version: a shard's rows are the same wherever it runs.

    Parameters:
        kind: local (this process) | ray.
        address: a Ray cluster to join (`ray://host:10001`, `auto`); None starts a local one (or joins the
            one this process already started).
        workers: engine replicas (Ray actors), each holding one engine loaded once for all its shards.
        gpus_per_worker: each actor's `num_gpus`: N GPUs and gpus_per_worker 1 give N data-parallel
            replicas; a tensor-parallel vLLM engine asks for its `tensor_parallel_size`.
        cpus_per_worker: each actor's `num_cpus`.
        shard_retries: how often a shard whose worker died is run again before the stage fails (Prefect
            then retries the stage, which resumes from the finished shards).
        train_workers: Ray Train workers for fine-tuning (`ScalingConfig(num_workers)`); 0 trains in the
            stage's own process even on Ray.
    """

    kind: str = "local"
    address: str | None = None
    workers: AtLeast1 = 2
    gpus_per_worker: NonNegative = 0.0
    cpus_per_worker: Positive = 1.0
    shard_retries: NonNegative = 2
    train_workers: NonNegative = 1
    env: dict = field(default_factory=dict)  # extra environment for workers (never secrets: Ray shows it)

    def __post_init__(self) -> None:
        if self.kind not in EXECUTORS:
            raise ValueError(f"unknown executor kind {self.kind!r}; known: {sorted(EXECUTORS)}")


@dataclass(frozen=True)
class ShardJob:
    """One stage's shard work: `fn(engine, units, shard_index) -> {table: rows}`, with the engine opened
    from `model` and `backend` (None: the work calls no model). `fn` must be picklable (a module-level
    function or a functools.partial of one) so a Ray worker can run it."""

    fn: Callable
    model: str | None = None
    backend: BackendConfig | None = None


class ShardCheckpoints(Protocol):
    """Where a stage's finished shards are kept (the lake's `ShardStore`)."""

    def finished(self) -> dict[int, dict[str, list[dict]]]: ...

    def save(self, shard: int, produced: dict[str, list[dict]], units: int) -> None: ...


def run_sharded(executor: "Executor", job: ShardJob, store: ShardCheckpoints, units: list, size: int,
                progress: Callable[[int], None] | None = None, usage: dict | None = None) -> dict[str, list[dict]]:
    """Every shard of `units` (`size` a shard) that `store` has not finished, through `executor`, each saved
    as it comes back (in any order); all rows in shard order. A shard whose work returns
    `{"_incomplete": True, ...}` (error rows) is used but not saved, so a rerun tries it again. `usage` sums
    the engine counters workers report."""
    size = max(1, size)
    shards = [(start // size, units[start:start + size]) for start in range(0, len(units), size)]
    results = store.finished()
    if progress:
        for shard, chunk in shards:
            if shard in results:
                progress(len(chunk))
    pending = [(shard, chunk) for shard, chunk in shards if shard not in results]
    sizes = {shard: len(chunk) for shard, chunk in pending}
    for shard, produced, used in executor.run(job, pending):
        if not produced.pop("_incomplete", False):
            store.save(shard, produced, sizes[shard])
        results[shard] = produced
        if used and usage is not None:
            _add_usage(usage, used)
        if progress:
            progress(sizes[shard])
    out: dict[str, list[dict]] = defaultdict(list)
    for shard in sorted(results):
        for table, rows in results[shard].items():
            out[table] += rows
    return out


def _add_usage(usage: dict, used: dict) -> None:
    """Sum a worker's engine counters into the stage's `backends` entry for that engine."""
    entries = usage.setdefault("backends", [])
    entry = next((e for e in entries if e["identity"] == used["identity"]), None)
    if entry is None:
        entries.append({"identity": used["identity"], "counters": dict(used["counters"])})
    else:
        for k, v in used["counters"].items():
            entry["counters"][k] = entry["counters"].get(k, 0) + v


class Executor(ABC):
    kind: ClassVar[str] = ""

    def __init__(self, config: ExecutorConfig) -> None:
        self.config = config

    @abstractmethod
    def run(self, job: ShardJob, shards: list[tuple[int, list]]) -> Iterator[tuple[int, dict, dict]]:
        """Run every (index, units) shard; yield (index, {table: rows}, engine usage) as each finishes."""

    def close(self) -> None:
        """Free what the executor holds (engines on workers)."""


EXECUTORS: dict[str, str] = {"local": "selfimprove.execution.base:LocalExecutor",
                             "ray": "selfimprove.execution.ray_executor:RayExecutor"}
_LOADED: dict[str, type[Executor]] = {}


def register_executor(kind: str):
    def deco(cls):
        cls.kind = kind
        _LOADED[kind] = cls
        EXECUTORS.setdefault(kind, f"{cls.__module__}:{cls.__name__}")
        return cls
    return deco


def get_executor(config: ExecutorConfig) -> Executor:
    if config.kind not in _LOADED:
        module, _, name = EXECUTORS[config.kind].partition(":")
        getattr(importlib.import_module(module), name)
    return _LOADED[config.kind](config)


@register_executor("local")
class LocalExecutor(Executor):
    """Shards run one after another in this process on an engine the stage opened (`engine`)."""

    def __init__(self, config: ExecutorConfig, engine=None) -> None:
        super().__init__(config)
        self.engine = engine

    def run(self, job, shards):
        for index, units in shards:
            yield index, job.fn(self.engine, units, index), {}
