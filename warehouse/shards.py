"""Checkpointed shards inside a stage: a crash loses at most the shard in flight.

    <lake>/_shards/<run_id>/<stage>-<version>/<shard>.<table>.parquet
    <lake>/_shards/<run_id>/<stage>-<version>/<shard>.done          written last

Shards live outside the table folders, so DuckDB never sees a stage half done. A rerun of
the same stage version loads every shard with a `.done` marker and computes only the rest;
the stage then writes its tables whole, its manifest, and removes its shards. The store only loads, saves
and clears; an executor runs the shards (`selfimprove.execution.base.run_sharded`).
"""
from __future__ import annotations

import json
import os
import time

from selfimprove.warehouse.schemas import to_table
from selfimprove.storage.stores import Storage, storage_for


class ShardStore:
    def __init__(self, lake: str | Storage, run_id: str, stage: str, version: str) -> None:
        self.storage = lake if isinstance(lake, Storage) else storage_for(lake)
        self.folder = f"_shards/{run_id}/{stage}-{version}"
        self.run_id, self.stage = run_id, stage
        self.loaded = 0  # shards found finished on disk (resumed, not recomputed)
        self.computed = 0

    def finished(self) -> dict[int, dict[str, list[dict]]]:
        """The rows of every shard saved with its `.done` marker, by shard index (counted as loaded)."""
        out = {}
        for key in sorted(e.key for e in self.storage.list(self.folder + "/") if e.key.endswith(".done")):
            shard = int(key.rsplit("/", 1)[1].split(".")[0])
            out[shard] = {table: self.storage.read_parquet(f"{self.folder}/{shard:05d}.{table}.parquet").to_pylist()
                          for table in json.loads(self.storage.get(key))["tables"]}
        self.loaded += len(out)
        return out

    def save(self, shard: int, produced: dict[str, list[dict]], units: int) -> None:
        """Checkpoint one shard's rows; the `.done` marker is written last."""
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
