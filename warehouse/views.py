"""DuckDB over the lake: one view per table plus `accepted` / `rejected`, and audit queries.

Views are created fresh on an in-memory connection for every reader, so the lake
has no shared database file and no single writer to contend for. A damaged part (a file
whose Parquet footer cannot be read) is left out of every view and reported by
`damaged_files`, so one bad file does not make the other runs unreadable.
"""
from __future__ import annotations

import os
from contextlib import contextmanager
from contextvars import ContextVar
from functools import lru_cache
from pathlib import Path
from typing import Iterator

import duckdb

from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.schemas import TABLES, duck_type

EXAMPLE_QUERIES = {
    "Why was each candidate rejected, by stage?":
        "SELECT rejected_at_stage, count(*) AS n FROM verdicts WHERE run_id = '{run_id}' GROUP BY 1 ORDER BY n DESC",
    "Every judge call behind one accepted candidate":
        "SELECT j.stage, j.vote_index, j.call, j.decision, j.p_yes, left(j.raw_output, 80) AS raw FROM judgments j "
        "WHERE j.run_id = '{run_id}' AND j.candidate_id = (SELECT candidate_id FROM accepted WHERE run_id = '{run_id}' LIMIT 1) "
        "ORDER BY j.stage, j.vote_index",
    "Base vs fine-tuned held-out accuracy":
        "SELECT model, metric, round(value, 4) AS value, n, round(ci_low, 4) AS ci_low, round(ci_high, 4) AS ci_high "
        "FROM eval_metrics WHERE run_id = '{run_id}' ORDER BY model, metric",
}

# From one held-out sample of the fine-tuned model back to the checkpoint that answered it, the training
# rows it was trained on, their candidates and every judge call behind them (a row an earlier round of a track
# accepted, `train_on: accumulated`, is followed back to that round's candidate and judges).
LINEAGE_QUERY = """WITH sample AS (
    SELECT run_id, item_id, model_path, correct FROM eval_samples WHERE run_id = '{run_id}' AND model = 'tuned' LIMIT 1),
trained AS (
    SELECT c.run_id, c.checkpoint_id, unnest(c.example_ids) AS candidate_id FROM checkpoints c JOIN sample s
    ON c.run_id = s.run_id AND c.path = s.model_path)
SELECT s.item_id, s.correct, t.checkpoint_id, t.candidate_id, left(x.completion, 40) AS trained_on,
       j.stage, j.vote_index, j.call, j.decision, left(j.raw_output, 40) AS judge_said
FROM sample s JOIN trained t USING (run_id) JOIN train_examples x USING (run_id, candidate_id)
JOIN candidates k ON k.run_id = coalesce(x.origin_run, x.run_id) AND k.candidate_id = x.candidate_id
LEFT JOIN judgments j ON j.run_id = k.run_id AND j.candidate_id = k.candidate_id
ORDER BY t.candidate_id, j.stage, j.vote_index, j.call"""


READING_STATEMENTS = {"SELECT", "EXPLAIN"}  # SELECT covers DESCRIBE, SHOW and SUMMARIZE


class ReadOnlyError(ValueError):
    """A statement `selfimprove sql` refuses: the lake is inspected, never changed through it."""


def s3_reader() -> str:
    """How DuckDB reads an S3 lake: `arrow` (default) scans pyarrow datasets over pyarrow's S3 filesystem;
    `fsspec` (SELFIMPROVE_DUCKDB_S3=fsspec) registers an fsspec filesystem and DuckDB reads the urls itself.
    DuckDB's own httpfs extension is not used: it is downloaded at run time, and the PyPI build
    (duckdb-extension-httpfs 1.5.5) does not match duckdb 2.0."""
    reader = os.environ.get("SELFIMPROVE_DUCKDB_S3", "arrow")
    if reader not in ("arrow", "fsspec"):
        raise ValueError(f"SELFIMPROVE_DUCKDB_S3={reader!r}: arrow or fsspec")
    return reader


def connect(lake: Lake) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB with one view per table over the files committed manifests name; it can read
    those and nothing else on the machine (external access off, the lake the only allowed directory,
    the configuration locked)."""
    con = duckdb.connect(":memory:", config={"autoinstall_known_extensions": False, "autoload_known_extensions": False})
    readable = _readable_files(lake)
    reader = s3_reader() if lake.on_s3 else "local"
    if reader == "fsspec":
        con.register_filesystem(_fsspec_s3())
    for name, schema in TABLES.items():
        files = readable.get(name, [])
        if files and reader == "arrow":
            import pyarrow.dataset as ds

            fs, _ = lake.storage.arrow()
            con.register(f"_{name}_files", ds.dataset([f.removeprefix("s3://") for f in files], format="parquet",
                                                     filesystem=fs, schema=schema))
            con.execute(f"CREATE VIEW {name} AS SELECT * FROM _{name}_files")
        else:
            # every column of the schema, in its order, NULL where a file from an older version lacks it
            typed = "SELECT " + ", ".join(f"CAST(NULL AS {duck_type(f.type)}) AS {f.name}" for f in schema) + " WHERE false"
            con.execute(f"CREATE VIEW {name} AS {typed}" + (
                f" UNION ALL BY NAME SELECT * FROM read_parquet({_sql_list(files)}, union_by_name=true)" if files else ""))
    con.execute("CREATE VIEW accepted AS SELECT c.*, v.reason FROM verdicts v "
                "JOIN candidates c USING (run_id, candidate_id) WHERE v.accepted")
    con.execute("CREATE VIEW rejected AS SELECT c.*, v.rejected_at_stage, v.reason FROM verdicts v "
                "JOIN candidates c USING (run_id, candidate_id) WHERE NOT v.accepted")
    con.execute("SET allowed_directories = $dirs", {"dirs": [] if reader == "arrow" else [lake.location + "/"]})
    con.execute("SET enable_external_access = false")
    con.execute("SET lock_configuration = true")
    return con


def _fsspec_s3():
    """pyarrow's S3 filesystem seen through fsspec (fsspec ships with `datasets`; s3fs is not needed), under the
    s3:// protocol DuckDB routes to it."""
    from fsspec.implementations.arrow import ArrowFSWrapper

    from selfimprove.storage.stores import s3_filesystem

    class S3(ArrowFSWrapper):
        protocol = "s3"
        root_marker = ""

        @classmethod
        def _strip_protocol(cls, path):
            return str(path).removeprefix("s3://").rstrip("/")

    return S3(s3_filesystem())


def _sql_list(items: list[str]) -> str:
    return "[" + ", ".join("'" + i.replace("'", "''") + "'" for i in items) + "]"


@lru_cache(maxsize=4096)
def _damage(path: str, size: int, mtime_ns: int) -> str | None:
    import pyarrow.parquet as pq

    try:
        pq.read_metadata(path)
    except Exception as e:
        return f"{type(e).__name__}: {str(e).splitlines()[0] if str(e) else 'unreadable'}"
    return None


def damage(path: Path) -> str | None:
    """Why a local Parquet part cannot be read (its footer checked, cached per size and mtime), or None."""
    try:
        st = path.stat()
    except FileNotFoundError:
        return "missing: a manifest names it, but it is not in the lake"
    return _damage(str(path), st.st_size, st.st_mtime_ns)


_S3_CHECKED: dict[str, tuple[tuple, list]] = {}  # lake -> (its manifests' tags, the checked files)


def _checked_files(lake: Lake) -> list[tuple[str, str, str | None]]:
    """(table, url, why it cannot be read or None) for every file a committed manifest names. An S3 object
    arrives whole, so there only a missing object counts (one listing per table, no request per file),
    checked again only when a manifest changed."""
    listing = lake.manifest_listing()
    signature = tuple((e.key, e.tag) for e in listing)
    cached = _S3_CHECKED.get(lake.location) if lake.on_s3 else None
    if cached and cached[0] == signature:
        return cached[1]
    entries = sorted((f["table"], f["path"]) for f in lake.committed(listing=listing) if f.get("table") in TABLES)
    if not lake.on_s3:
        return [(t, p, damage(Path(p))) for t, p in entries]
    present = {lake.storage.url(e.key) for t in {t for t, _ in entries} for e in lake.storage.list(f"{t}/")}
    checked = [(t, p, None if p in present else "missing: a manifest names it, but it is not in the lake")
               for t, p in entries]
    _S3_CHECKED[lake.location] = (signature, checked)
    return checked


def _readable_files(lake: Lake) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for table, path, why in _checked_files(lake):
        if not why:
            out.setdefault(table, []).append(path)
    return out


def damaged_files(lake: Lake) -> list[tuple[str, str]]:
    """Files committed manifests name that every view leaves out because they cannot be read: (path, why)."""
    return [(p, why) for _, p, why in _checked_files(lake) if why]


def reading_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise ReadOnlyError unless every statement in `sql` only reads (DuckDB's parser says which)."""
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise ValueError(f"SQL error: {str(e).splitlines()[0]}") from None
    for st in statements:
        kind = st.type.name
        if kind not in READING_STATEMENTS:
            raise ReadOnlyError(f"refused: {kind} statement; the lake is read-only here (SELECT, WITH, DESCRIBE, "
                                "SHOW, SUMMARIZE and EXPLAIN run)")


_READING: ContextVar[dict[str, duckdb.DuckDBPyConnection] | None] = ContextVar("lake_reading", default=None)


@contextmanager
def reading(lake: Lake) -> Iterator[None]:
    """Inside the block, every query of this lake shares one connection whose views are built once, over the
    lake as it is when the block starts (a summary, a report, `compare`). Nothing may write to the lake inside."""
    open_ = _READING.get() or {}
    if lake.location in open_:  # nested: the outer block's connection serves
        yield
        return
    con = connect(lake)
    token = _READING.set({**open_, lake.location: con})
    try:
        yield
    finally:
        _READING.reset(token)
        con.close()


def _run_read_only(lake: Lake, sql: str, run):
    shared = (_READING.get() or {}).get(lake.location)
    con = shared or connect(lake)
    try:
        reading_only(con, sql)
        return run(con)
    finally:
        if shared is None:
            con.close()


def query(lake: Lake, sql: str, params: dict | None = None) -> tuple[list[str], list[tuple]]:
    """Run `sql` over the lake's views; `params` bind `$name` placeholders (values never go into the SQL text)."""
    def rows(con):
        cur = con.execute(sql, params) if params else con.execute(sql)
        return [d[0] for d in cur.description] if cur.description else [], cur.fetchall()

    return _run_read_only(lake, sql, rows)


def query_arrow(lake: Lake, sql: str, params: dict | None = None):
    """`query`, returning a pyarrow Table (column types kept) for DataFrames and files."""
    return _run_read_only(lake, sql, lambda con: con.sql(sql, params=params).to_arrow_table())


def format_table(columns: list[str], rows: list[tuple], max_width: int = 60) -> str:
    cells = [[_cell(v, max_width) for v in r] for r in rows]
    widths = [max([len(c)] + [len(r[i]) for r in cells]) for i, c in enumerate(columns)]
    line = lambda vals: "  ".join(v.ljust(w) for v, w in zip(vals, widths))  # noqa: E731
    out = [line(columns), line(["-" * w for w in widths])] + [line(r) for r in cells]
    return "\n".join(out) + f"\n({len(rows)} row{'s' if len(rows) != 1 else ''})"


def _cell(v, width: int) -> str:
    s = "NULL" if v is None else (f"{v:.4g}" if isinstance(v, float) else str(v))
    s = s.replace("\n", "\\n")
    return s if len(s) <= width else s[: width - 1] + "…"


def run_state(lake: Lake, run_id: str) -> str:
    """completed, or what else the run is (failed at a stage and why, still running, interrupted)."""
    from selfimprove.warehouse.run_status import current, describe

    row = current(lake, run_id) or {}
    return describe(row) or (row.get("status") or "not recorded")


PER_DOMAIN_HEADER = ["domain", "seeds", "judged", "accepted", "accept rate", "accepted right (labelled)",
                     "held-out items", "pass@1 base", "pass@1 tuned"]


def per_domain(lake: Lake, run_id: str) -> list[tuple]:
    """Per seed domain: seeds, judged and accepted candidates, accept rate, the share of labelled accepted candidates
    the domain's scorer marks right (how far the judges' acceptances can be trusted there), and the held-out
    pass@1 of the base and the tuned model on that domain's items."""
    return query(lake, """
        WITH cand AS (
            SELECT s.domain, v.accepted, v.rejected_at_stage, l.correct
            FROM candidates c JOIN seeds s USING (run_id, seed_id) JOIN verdicts v USING (run_id, candidate_id)
            LEFT JOIN candidate_labels l USING (run_id, candidate_id) WHERE c.run_id = $run),
        judged AS (
            SELECT domain, count(*) FILTER (WHERE rejected_at_stage IS DISTINCT FROM 'not_judged') AS judged,
                   count(*) FILTER (WHERE accepted) AS accepted,
                   avg(CASE WHEN correct THEN 1.0 ELSE 0.0 END) FILTER (WHERE accepted AND correct IS NOT NULL) AS right
            FROM cand GROUP BY domain),
        seeds AS (SELECT domain, count(*) AS n FROM seeds WHERE run_id = $run GROUP BY domain),
        held AS (
            SELECT i.domain, count(DISTINCT i.item_id) AS items,
                   avg(CASE WHEN e.correct THEN 1.0 ELSE 0.0 END) FILTER (WHERE e.model = 'base' AND e.correct IS NOT NULL) AS base,
                   avg(CASE WHEN e.correct THEN 1.0 ELSE 0.0 END) FILTER (WHERE e.model = 'tuned' AND e.correct IS NOT NULL) AS tuned
            FROM eval_items i LEFT JOIN eval_samples e USING (run_id, dataset, item_id)
            WHERE i.run_id = $run GROUP BY i.domain)
        SELECT coalesce(s.domain, h.domain), coalesce(s.n, 0), coalesce(j.judged, 0), coalesce(j.accepted, 0),
               round(j.accepted / nullif(j.judged, 0), 3), round(j.right, 3), coalesce(h.items, 0),
               round(h.base, 3), round(h.tuned, 3)
        FROM seeds s FULL JOIN held h USING (domain) LEFT JOIN judged j ON j.domain = coalesce(s.domain, h.domain)
        ORDER BY 1""", {"run": run_id})[1]
