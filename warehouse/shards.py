"""Checkpointed shards inside a stage: a crash loses at most the shard in flight.

    <lake>/_shards/<run_id>/<stage>-<version>/<shard>.<table>.parquet
    <lake>/_shards/<run_id>/<stage>-<version>/<shard>.done          written last

Shards live outside the table folders, so DuckDB never sees a stage half done. A rerun of
the same stage version loads every shard with a `.done` marker and computes only the rest;
the stage then writes its tables whole, its manifest, and removes its shards.
"""
from __future__ import annotations

import json
import os
import time
from collections import defaultdict
from functools import partial
from typing import Callable

from selfimprove.execution.base import Executor, ExecutorConfig, LocalExecutor, ShardJob
from selfimprove.warehouse.schemas import to_table
from selfimprove.warehouse.storage import Storage, storage_for


class ShardStore:
    def __init__(self, lake: str | Storage, run_id: str, stage: str, version: str) -> None:
        self.storage = lake if isinstance(lake, Storage) else storage_for(lake)
        self.folder = f"_shards/{run_id}/{stage}-{version}"
        self.run_id, self.stage = run_id, stage
        self.loaded = 0  # shards found finished on disk (resumed, not recomputed)
        self.computed = 0

    def run(self, units: list, size: int, work: Callable[[list, int], dict[str, list[dict]]],
            progress: Callable[[int], None] | None = None) -> dict[str, list[dict]]:
        """`work(units_of_shard, shard_index) -> {table: rows}` for each shard not finished yet, in this
        process; all rows in shard order."""
        return self.run_on(LocalExecutor(ExecutorConfig()), ShardJob(fn=partial(_call, work)), units, size, progress)

    def run_on(self, executor: Executor, job: ShardJob, units: list, size: int,
               progress: Callable[[int], None] | None = None, usage: dict | None = None) -> dict[str, list[dict]]:
        """Every shard not finished yet through `executor`, each checkpointed here as it comes back (in any
        order); all rows in shard order. A shard whose work returns `{"_incomplete": True, ...}` (error rows)
        is used but not saved, so a rerun tries it again. `usage` sums the engine counters workers report."""
        size = max(1, size)
        shards = [(start // size, units[start:start + size]) for start in range(0, len(units), size)]
        results: dict[int, dict[str, list[dict]]] = {}
        pending = []
        finished = {e.key for e in self.storage.list(self.folder + "/") if e.key.endswith(".done")}
        for shard, chunk in shards:
            done = f"{self.folder}/{shard:05d}.done"
            if done in finished:
                results[shard] = {table: self.storage.read_parquet(f"{self.folder}/{shard:05d}.{table}.parquet").to_pylist()
                                  for table in json.loads(self.storage.get(done))["tables"]}
                self.loaded += 1
                if progress:
                    progress(len(chunk))
            else:
                pending.append((shard, chunk))
        sizes = dict((shard, len(chunk)) for shard, chunk in pending)
        for shard, produced, used in executor.run(job, pending):
            if not produced.pop("_incomplete", False):
                self._save(shard, produced, sizes[shard])
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

    def _save(self, shard: int, produced: dict[str, list[dict]], units: int) -> None:
        for table, rows in produced.items():
            self.storage.write_parquet(f"{self.folder}/{shard:05d}.{table}.parquet", to_table(table, rows, self.run_id))
        self.storage.put(f"{self.folder}/{shard:05d}.done", json.dumps({"tables": sorted(produced), "units": units}).encode())
        self.computed += 1
        self._pause()

    def _pause(self) -> None:
        """SELFIMPROVE_PAUSE_AFTER_SHARD=<stage>:<seconds> holds a stage after each shard, so a crash
        test can kill it mid-stage; unset, nothing happens."""
        stage, _, seconds = os.environ.get("SELFIMPROVE_PAUSE_AFTER_SHARD", "").partition(":")
        if stage == self.stage and seconds:
            time.sleep(float(seconds))

    def clear(self) -> None:
        self.storage.delete_prefix(self.folder + "/")


def _call(work, engine, units, index):
    return work(units, index)


def _add_usage(usage: dict, used: dict) -> None:
    """Sum a worker's engine counters into the stage's `backends` entry for that engine."""
    entries = usage.setdefault("backends", [])
    entry = next((e for e in entries if e["identity"] == used["identity"]), None)
    if entry is None:
        entries.append({"identity": used["identity"], "counters": dict(used["counters"])})
    else:
        for k, v in used["counters"].items():
            entry["counters"][k] = entry["counters"].get(k, 0) + v
