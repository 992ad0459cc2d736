"""Lake layout and atomic writes.

    <root>/<table>/run=<run_id>/<part>.parquet    the data, one file per stage output
    <root>/_manifests/<run_id>/<stage>.json       written last: the stage is complete

A file is written under a hidden temporary name and renamed into place, so DuckDB's
glob never sees a half-written partition. A manifest names the files, their row counts
and content hashes; its presence is what makes a stage count as done.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path

import pyarrow.parquet as pq

from .schemas import TABLES, to_table


def lake_root(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("SELFIMPROVE_LAKE") or "lake").resolve()


def _atomic_write_bytes(target: Path, data: bytes) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.partial"
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, target)


def file_hash(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()[:16]


class Lake:
    def __init__(self, root: str | os.PathLike | None = None) -> None:
        self.root = lake_root(root)

    def table_dir(self, table: str, run_id: str) -> Path:
        return self.root / table / f"run={run_id}"

    def write(self, table: str, run_id: str, rows: list[dict], part: str = "data") -> dict:
        """Write rows of one table for one run atomically; return its file entry."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; known: {sorted(TABLES)}")
        arrow = to_table(table, rows, run_id)
        target = self.table_dir(table, run_id) / f"{part}.parquet"
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.parent / f".tmp-{uuid.uuid4().hex}.partial"
        pq.write_table(arrow, tmp)
        os.replace(tmp, target)
        return {"table": table, "path": str(target), "rows": arrow.num_rows, "sha256": file_hash(target)}

    def read(self, table: str, run_id: str, part: str = "data") -> list[dict]:
        path = self.table_dir(table, run_id) / f"{part}.parquet"
        return pq.read_table(path).to_pylist()

    # manifests: a stage is done when its manifest exists
    def manifest_path(self, run_id: str, stage: str) -> Path:
        return self.root / "_manifests" / run_id / f"{stage}.json"

    def write_manifest(self, run_id: str, stage: str, manifest: dict) -> None:
        _atomic_write_bytes(self.manifest_path(run_id, stage), json.dumps(manifest, indent=2, default=str).encode())

    def read_manifest(self, run_id: str, stage: str) -> dict | None:
        path = self.manifest_path(run_id, stage)
        return json.loads(path.read_text()) if path.exists() else None

    def run_ids(self) -> list[str]:
        folder = self.root / "_manifests"
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
