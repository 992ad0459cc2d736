"""Lake layout and commits, on a local folder or an S3 bucket (`selfimprove.storage.stores`).

    <lake>/<table>/run=<run_id>/<part>.<content hash>.parquet   a stage's output: immutable, one object a part
    <lake>/<table>/run=<run_id>/<part>.parquet                  a part written on its own (the runs row), replaced whole
    <lake>/_manifests/<run_id>/<stage>.json                     a stage's commit, written last
    <lake>/_manifests/<run_id>/_parts/<table>.<part>.json       the commit of a part written on its own

Every object appears whole or not at all. A stage's parts become visible only through its manifest,
which names them with their row counts and content hashes; readers (DuckDB views, `sql`, `report`,
`compare`, resume, the version cache) see only the files a manifest names, never a folder listing, so a
stage that crashed half-way is invisible on S3 exactly as on disk. Of two writers committing the
same stage the first wins (a create-only write); a stage recomputed at a new version replaces its
manifest only if it is still the one it read.
"""
from __future__ import annotations

import hashlib
import json
import os
import uuid
from pathlib import Path
from typing import Iterable, Iterator

import pyarrow as pa

from selfimprove.validation import InputError
from selfimprove.warehouse.schemas import TABLES, to_table
from selfimprove.storage.stores import Entry, Storage, is_s3, read_table, storage_for, url_exists

MANIFESTS = "_manifests"
_MANIFESTS_SEEN: dict[tuple[str, str], tuple[str, dict | None]] = {}  # (lake, key) -> (tag, manifest)
LAYOUT = "_lake.json"  # a local lake's layout version; its absence means a lake from before part commits


def lake_location(path: str | os.PathLike | None = None) -> str:
    """The lake a user named (`--lake`, $SELFIMPROVE_LAKE, else ./lake): an absolute path or s3://bucket/prefix."""
    where = str(path or os.environ.get("SELFIMPROVE_LAKE") or "lake")
    return where.rstrip("/") if is_s3(where) else str(Path(where).resolve())


def file_sha256(path: str | os.PathLike) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


BATCH_ROWS = 8192  # rows per record batch and row group a write streams


class _HashingSink:
    """A write-only file that keeps nothing but the SHA-256 of what passes through it."""

    closed = False

    def __init__(self) -> None:
        self.sha = hashlib.sha256()

    def write(self, data) -> int:
        self.sha.update(data)
        return len(data)

    def flush(self) -> None:
        pass


def _batches(table: str, rows: Iterable[dict], run_id: str, metadata: dict | None, digest: _HashingSink,
             counted: list[int]) -> Iterator[pa.RecordBatch]:
    """`rows` as record batches of BATCH_ROWS, checked against the table's schema; each batch's content
    (run_id and metadata left out) also goes through `digest`, so the hash needs no second pass."""
    schema = TABLES[table].with_metadata(metadata) if metadata else TABLES[table]
    content = TABLES[table].remove(TABLES[table].get_field_index("run_id"))
    with pa.ipc.new_stream(digest, content) as hashing:
        buffer: list[dict] = []

        def flush() -> pa.RecordBatch:
            arrow = to_table(table, buffer, run_id)
            hashing.write_table(arrow.drop_columns(["run_id"]))
            counted[0] += arrow.num_rows
            buffer.clear()
            return arrow.replace_schema_metadata(schema.metadata).to_batches()[0] if arrow.num_rows else None

        for row in rows:
            buffer.append(row)
            if len(buffer) == BATCH_ROWS:
                yield flush()
        if buffer or not counted[0]:
            batch = flush()
            if batch is not None:
                yield batch


def part_of(entry: dict) -> str:
    """A file entry's part name (older manifests have none: it is the file name's first segment)."""
    return entry.get("part") or entry["path"].rsplit("/", 1)[-1].split(".")[0]


class Lake:
    def __init__(self, root: str | os.PathLike | None = None, provenance: dict | None = None,
                 staged: bool = False) -> None:
        self.storage: Storage = storage_for(lake_location(root))
        self.location = self.storage.location
        # stored as Parquet key-value metadata (key b"selfimprove") on every file this Lake writes
        self.provenance = provenance
        # a stage's Lake: its parts are committed by the stage's manifest, not one by one
        self.staged = staged
        if not self.on_s3 and not (Path(self.location) / LAYOUT).exists() and Path(self.location).is_dir():
            self._adopt_legacy_parts()

    def _mark_layout(self) -> None:
        """A local lake says its layout from its first write, so it is never taken for an older lake."""
        if not self.on_s3 and not (Path(self.location) / LAYOUT).exists():
            self.storage.put(LAYOUT, json.dumps({"layout": 2}).encode())

    def _adopt_legacy_parts(self) -> None:
        """A local lake from before every reader went by manifests kept parts written on their own (the runs
        row, deltas, rescores) as `<part>.parquet` with no commit: commit each once, so every run it held
        stays as visible as it was."""
        named = {f["path"] for f in self.committed()}
        for path in sorted(Path(self.location).glob("*/run=*/*.parquet")):
            table, run = path.parent.parent.name, path.parent.name.removeprefix("run=")
            if table in TABLES and str(path) not in named and path.name.count(".") == 1:
                entry = {"table": table, "part": path.stem, "path": str(path), "rows": None, "sha256": None}
                self.storage.put(f"{MANIFESTS}/{run}/_parts/{table}.{path.stem}.json", json.dumps({"files": [entry]}).encode())
        self.storage.put(LAYOUT, json.dumps({"layout": 2}).encode())

    @property
    def root(self) -> Path:
        if is_s3(self.location):
            raise ValueError(f"the lake at {self.location} is on S3: it has no local folder")
        return Path(self.location)

    @property
    def on_s3(self) -> bool:
        return is_s3(self.location)

    @staticmethod
    def table_key(table: str, run_id: str) -> str:
        return f"{table}/run={run_id}"

    def write(self, table: str, run_id: str, rows: Iterable[dict], part: str = "data") -> dict:
        """Write rows of one table for one run as one object, streamed in row groups (a generator of rows
        keeps the writer's memory at one batch); return its file entry. A staged Lake's part is a new
        immutable object that waits for the stage's manifest; otherwise the part replaces the run's earlier
        `part` whole and is committed at once."""
        if table not in TABLES:
            raise KeyError(f"unknown table {table!r}; known: {sorted(TABLES)}")
        metadata = {b"selfimprove": json.dumps(self.provenance, default=str).encode()} if self.provenance else None
        digest, counted = _HashingSink(), [0]
        name = f"{part}.{uuid.uuid4().hex[:16]}.parquet" if self.staged else f"{part}.parquet"
        schema = TABLES[table].with_metadata(metadata) if metadata else TABLES[table]
        self._mark_layout()
        url = self.storage.write_parquet(f"{self.table_key(table, run_id)}/{name}",
                                         _batches(table, rows, run_id, metadata, digest, counted), schema)
        entry = {"table": table, "part": part, "path": url, "rows": counted[0], "sha256": digest.sha.hexdigest()[:16]}
        if not self.staged:
            self.storage.put(f"{MANIFESTS}/{run_id}/_parts/{table}.{part}.json", json.dumps({"files": [entry]}).encode())
        return entry

    def copy_to_run(self, entry: dict, run_id: str) -> dict:
        """Copy one written file (a manifest's entry) into another run; returns the new entry."""
        rows = read_table(entry["path"]).drop_columns(["run_id"]).to_pylist()
        return self.write(entry["table"], run_id, rows, part=part_of(entry))

    def read(self, table: str, run_id: str) -> dict[str, list[dict]]:
        """Every committed part of one table for one run: {part name: rows}."""
        return {part_of(f): read_table(f["path"]).to_pylist()
                for f in sorted(self.committed(run_id), key=part_of) if f["table"] == table}

    # commits: what every reader sees
    def manifest_listing(self, run_id: str | None = None) -> list[Entry]:
        prefix = f"{MANIFESTS}/{run_id}/" if run_id else f"{MANIFESTS}/"
        return [e for e in self.storage.list(prefix) if e.key.endswith(".json")]

    def manifest_objects(self, run_id: str | None = None, listing: list[Entry] | None = None) -> dict[str, dict]:
        """Every manifest (stage and part commits) of one run or of the whole lake: {key: manifest}. One
        listing, and a read only for a manifest this process has not seen in that version (by its tag)."""
        listing = self.manifest_listing(run_id) if listing is None else listing
        out, missing = {}, []
        for e in listing:
            hit = _MANIFESTS_SEEN.get((self.location, e.key))
            if hit and hit[0] == e.tag and e.tag:
                out[e.key] = hit[1]
            else:
                missing.append(e)
        for e, data in zip(missing, self.storage.get_many([e.key for e in missing]).values()):
            try:
                parsed = json.loads(data) if data is not None else None
            except ValueError:
                parsed = None  # written whole, so this is damage from outside: not this reader's to mend
            out[e.key] = parsed
            if len(_MANIFESTS_SEEN) > 50_000:
                _MANIFESTS_SEEN.clear()
            _MANIFESTS_SEEN[(self.location, e.key)] = (e.tag, parsed)
        return {k: v for k, v in out.items() if isinstance(v, dict)}

    def committed(self, run_id: str | None = None, listing: list[Entry] | None = None) -> list[dict]:
        """The file entries committed manifests name (a part replaced on its own: its latest)."""
        files, seen = [], set()
        for m in self.manifest_objects(run_id, listing).values():
            for f in m.get("files") or []:
                if f.get("path") and f.get("table") and f["path"] not in seen:
                    seen.add(f["path"])
                    files.append({**f, "path": self._here(f)})
        return files

    def _here(self, entry: dict) -> str:
        """A manifest's path, as this lake is reached now: a local lake copied or moved elsewhere keeps
        its old absolute paths in its manifests, and its own files under the same keys."""
        path, own = entry["path"], self.storage.url("")
        marker = f"/{entry['table']}/run="
        if path.startswith(own) or marker not in path:
            return path
        return own + path[path.index(marker) + 1:]

    def run_ids(self) -> list[str]:
        """Runs with a commit in this lake, oldest first."""
        first: dict[str, float] = {}
        for e in self.storage.list(f"{MANIFESTS}/"):
            run = e.key.split("/")[1]
            first[run] = min(first.get(run, float("inf")), e.mtime)
        return sorted(first, key=lambda r: (first[r], r))

    def has_run(self, run_id: str) -> bool:
        return bool(self.storage.list(f"{MANIFESTS}/{run_id}/"))

    def exists(self) -> bool:
        """A local lake's folder exists; an S3 lake's bucket answers (or one clear line says why not)."""
        if self.on_s3:
            self.storage.check()
            return True
        return self.root.is_dir()

    def is_empty(self) -> bool:
        return not self.storage.list(f"{MANIFESTS}/")

    def require_run(self, run_id: str, given_as: str) -> None:
        """InputError unless `run_id` names a run in this lake; says where it looked and what is there."""
        if not isinstance(run_id, str) or "/" in run_id or not run_id or not self.has_run(run_id):
            known = self.run_ids()
            there = f"latest: {', '.join(known[-3:])}" if known else "it has no runs yet"
            raise InputError(f"{given_as} {run_id!r}: no such run in the lake at {self.location} ({there})")

    # stage manifests: a stage is done when its manifest exists
    def manifest_key(self, run_id: str, stage: str) -> str:
        return f"{MANIFESTS}/{run_id}/{stage}.json"

    def write_manifest(self, run_id: str, stage: str, manifest: dict) -> dict:
        """Commit a stage: the manifest that holds afterwards (another writer's, if it committed this version
        first). A manifest of another version is replaced only if it is still the one read. Parts that the
        replaced manifest named and the new one does not are removed."""
        key, data = self.manifest_key(run_id, stage), json.dumps(manifest, indent=2, default=str).encode()
        self._mark_layout()
        while not self.storage.create(key, data):
            found = self.storage.get_tagged(key)
            if found is None:
                continue  # removed meanwhile: try to create it again
            old = json.loads(found[0])
            if old.get("version") == manifest.get("version") and files_exist(old):
                return old  # the first writer of this version won; its parts are as good as ours
            if self.storage.replace(key, data, found[1]):
                self._sweep(old, manifest)
                break
        return manifest

    def _sweep(self, old: dict, new: dict) -> None:
        keep = {f["path"] for f in new.get("files", [])}
        gone = [f["path"] for f in old.get("files", []) if f["path"] not in keep and f["path"] not in self._others(old)]
        self.storage.delete([self.storage.key_of(p) for p in gone if p.startswith(self.storage.url(""))])

    def _others(self, old: dict) -> set[str]:
        """Paths a run's other manifests name (a copy may share nothing, but be safe)."""
        run = old.get("run_id")
        return {f["path"] for k, m in self.manifest_objects(run).items() if m.get("stage") != old.get("stage")
                for f in m.get("files", [])} if run else set()

    def read_manifest(self, run_id: str, stage: str) -> dict | None:
        data = self.storage.get(self.manifest_key(run_id, stage))
        return json.loads(data) if data is not None else None

    def stage_manifests(self, run_id: str) -> list[tuple[float, dict]]:
        """(commit time, manifest) of every finished stage of a run."""
        times = {e.key: e.mtime for e in self.storage.list(f"{MANIFESTS}/{run_id}/")}
        return [(times.get(k, 0.0), m) for k, m in self.manifest_objects(run_id).items()
                if "/_parts/" not in k and "stage" in m]

    # version index: <lake>/_versions/<stage>/<version>/<run_id>, one empty marker per run (no shared object to race on)
    def index_version(self, stage: str, version: str, run_id: str) -> None:
        self.storage.put(f"_versions/{stage}/{version}/{run_id}", b"")

    def runs_with_version(self, stage: str, version: str) -> list[str]:
        return sorted(e.key.rsplit("/", 1)[-1] for e in self.storage.list(f"_versions/{stage}/{version}/"))


def files_exist(manifest: dict | None) -> bool:
    return bool(manifest) and all(url_exists(f["path"]) for f in manifest.get("files", []))
