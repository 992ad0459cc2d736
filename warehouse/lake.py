"""Lake layout and atomic writes.

    <root>/<table>/run=<run_id>/<part>.parquet    the data, one file per stage output
    <root>/_manifests/<run_id>/<stage>.json       written last: the stage is complete

Every file goes through `selfimprove.atomic` (hidden temporary name, fsync, rename, folder
fsync), so DuckDB's glob never sees a half-written partition. A manifest names the files, their row counts
and content hashes; its presence is what makes a stage count as done.
"""
from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from selfimprove.atomic import write_bytes, write_file
from selfimprove.validation import InputError
from selfimprove.warehouse.schemas import TABLES, to_table


def lake_root(path: str | os.PathLike | None = None) -> Path:
    return Path(path or os.environ.get("SELFIMPROVE_LAKE") or "lake").resolve()


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def content_hash(table: pa.Table) -> str:
    """Hash of a table's rows, run_id and metadata left out: the same data in two runs hashes the same."""
    if "run_id" in table.column_names:
        table = table.drop_columns(["run_id"])
    table = table.replace_schema_metadata(None)  # provenance names the run and stage: not content
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return hashlib.sha256(sink.getvalue().to_pybytes()).hexdigest()[:16]


class Lake:
    def __init__(self, root: str | os.PathLike | None = None, provenance: dict | None = None) -> None:
        self.root = lake_root(root)
        # stored as Parquet key-value metadata (key b"selfimprove") on every file this Lake writes
        self.provenance = provenance

    def table_dir(self, table: str, run_id: str) -> Path:
        return self.root / table / f"run={run_id}"

    def write(self, table: str, run_id: str, rows: list[dict], part: str = "data") -> dict:
        """Write rows of one table for one run atomically; return its file entry."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; known: {sorted(TABLES)}")
        arrow = to_table(table, rows, run_id)
        if self.provenance:
            arrow = arrow.replace_schema_metadata({b"selfimprove": json.dumps(self.provenance, default=str).encode()})
        target = write_file(self.table_dir(table, run_id) / f"{part}.parquet", lambda tmp: pq.write_table(arrow, tmp))
        return {"table": table, "path": str(target), "rows": arrow.num_rows, "sha256": content_hash(arrow)}

    def copy_to_run(self, entry: dict, run_id: str) -> dict:
        """Copy one written file (a manifest's entry) into another run; returns the new entry."""
        rows = pq.read_table(entry["path"]).drop_columns(["run_id"]).to_pylist()
        return self.write(entry["table"], run_id, rows, part=Path(entry["path"]).stem)

    def read(self, table: str, run_id: str) -> dict[str, list[dict]]:
        """Every part of one table for one run: {part name: rows}."""
        folder = self.table_dir(table, run_id)
        return {p.stem: pq.read_table(p).to_pylist() for p in sorted(folder.glob("*.parquet"))} if folder.exists() else {}

    def run_ids(self) -> list[str]:
        """Runs with rows in this lake (any table's partition), oldest first."""
        first: dict[str, float] = {}
        for p in self.root.glob("*/run=*"):
            run = p.name.removeprefix("run=")
            first[run] = min(first.get(run, float("inf")), p.stat().st_mtime)
        return sorted(first, key=lambda r: (first[r], r))

    def has_run(self, run_id: str) -> bool:
        return any(self.table_dir(table, run_id).is_dir() for table in TABLES)

    def require_run(self, run_id: str, given_as: str) -> None:
        """InputError unless `run_id` names a run in this lake; says where it looked and what is there."""
        if not isinstance(run_id, str) or "/" in run_id or not self.has_run(run_id):
            known = self.run_ids()
            there = f"latest: {', '.join(known[-3:])}" if known else "it has no runs yet"
            raise InputError(f"{given_as} {run_id!r}: no such run in the lake at {self.root} ({there})")

    # manifests: a stage is done when its manifest exists
    def manifest_path(self, run_id: str, stage: str) -> Path:
        return self.root / "_manifests" / run_id / f"{stage}.json"

    def write_manifest(self, run_id: str, stage: str, manifest: dict) -> None:
        write_bytes(self.manifest_path(run_id, stage), json.dumps(manifest, indent=2, default=str).encode())

    def read_manifest(self, run_id: str, stage: str) -> dict | None:
        path = self.manifest_path(run_id, stage)
        return json.loads(path.read_text()) if path.exists() else None

    # version index: <root>/_versions/<stage>/<version>/<run_id>, one empty marker per run (no shared file to race on)
    def index_version(self, stage: str, version: str, run_id: str) -> None:
        folder = self.root / "_versions" / stage / version
        folder.mkdir(parents=True, exist_ok=True)
        (folder / run_id).touch()

    def runs_with_version(self, stage: str, version: str) -> list[str]:
        folder = self.root / "_versions" / stage / version
        return sorted(p.name for p in folder.iterdir()) if folder.exists() else []
