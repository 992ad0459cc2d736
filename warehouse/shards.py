"""Checkpointed shards inside a stage: a crash loses at most the shard in flight.

    <root>/_shards/<run_id>/<stage>-<version>/<shard>.<table>.parquet
    <root>/_shards/<run_id>/<stage>-<version>/<shard>.done          written last

Shards live outside the table folders, so DuckDB never sees a stage half done. A rerun of
the same stage version loads every shard with a `.done` marker and computes only the rest;
the stage then writes its tables whole, its manifest, and removes its shards.
"""
from __future__ import annotations

import json
import os
import shutil
import time
from collections import defaultdict
from pathlib import Path
from typing import Callable

import pyarrow.parquet as pq

from selfimprove.atomic import write_bytes, write_file
from selfimprove.warehouse.schemas import to_table


class ShardStore:
    def __init__(self, root: Path, run_id: str, stage: str, version: str) -> None:
        self.folder = Path(root) / "_shards" / run_id / f"{stage}-{version}"
        self.run_id, self.stage = run_id, stage
        self.loaded = 0  # shards found finished on disk (resumed, not recomputed)
        self.computed = 0

    def run(self, units: list, size: int, work: Callable[[list, int], dict[str, list[dict]]],
            progress: Callable[[int], None] | None = None) -> dict[str, list[dict]]:
        """`work(units_of_shard, shard_index) -> {table: rows}` for each shard not finished yet; all rows.

        A shard whose work returns `{"_incomplete": True, ...}` (error rows) is used but not saved,
        so a rerun tries it again."""
        out: dict[str, list[dict]] = defaultdict(list)
        for start in range(0, len(units), max(1, size)):
            shard = start // max(1, size)
            chunk = units[start:start + max(1, size)]
            done = self.folder / f"{shard:05d}.done"
            if done.exists():
                for table in json.loads(done.read_text())["tables"]:
                    out[table] += pq.read_table(self.folder / f"{shard:05d}.{table}.parquet").to_pylist()
                self.loaded += 1
            else:
                produced = work(chunk, shard)
                if produced.pop("_incomplete", False):
                    for table, rows in produced.items():
                        out[table] += rows
                    if progress:
                        progress(len(chunk))
                    continue
                self.folder.mkdir(parents=True, exist_ok=True)
                for table, rows in produced.items():
                    arrow = to_table(table, rows, self.run_id)
                    write_file(self.folder / f"{shard:05d}.{table}.parquet", lambda tmp: pq.write_table(arrow, tmp))
                    out[table] += rows
                write_bytes(done, json.dumps({"tables": sorted(produced), "units": len(chunk)}).encode())
                self.computed += 1
                self._pause()
            if progress:
                progress(len(chunk))
        return out

    def _pause(self) -> None:
        """SELFIMPROVE_PAUSE_AFTER_SHARD=<stage>:<seconds> holds a stage after each shard, so a crash
        test can kill it mid-stage; unset, nothing happens."""
        stage, _, seconds = os.environ.get("SELFIMPROVE_PAUSE_AFTER_SHARD", "").partition(":")
        if stage == self.stage and seconds:
            time.sleep(float(seconds))

    def clear(self) -> None:
        shutil.rmtree(self.folder, ignore_errors=True)
