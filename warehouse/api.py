"""The lake from Python (a notebook, a script): `selfimprove.open_lake(path_or_s3_url)`.

The same reader the CLI uses: DuckDB views over the parts that committed manifests name (a part a crashed stage
left behind is never read), on local disk or S3, read-only.

    lake = selfimprove.open_lake("lake")
    lake.runs()                                                  # one row per run
    lake.sql("SELECT stage, count(*) AS n FROM judgments WHERE run_id = $run GROUP BY 1", run=run_id)
    lake.table("train_examples", run=run_id)                     # a polars DataFrame
    con = lake.connection()                                      # DuckDB, every view, read-only
"""
from __future__ import annotations

import os

from selfimprove.validation import InputError
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.schemas import TABLES
from selfimprove.warehouse.views import connect, query_arrow


class LakeReader:
    """A read-only view of one lake; every result is a polars DataFrame."""

    def __init__(self, location: str | os.PathLike | None = None) -> None:
        self.lake = Lake(location)
        if not self.lake.exists():
            raise InputError(f"no lake at {self.lake.location}")

    def __repr__(self) -> str:
        return f"LakeReader({self.lake.location})"

    def sql(self, query: str, **params):
        """Run a read-only query; `$name` placeholders bind `params` (values never enter the SQL text)."""
        import polars as pl

        return pl.from_arrow(query_arrow(self.lake, query, params or None))

    def runs(self):
        return self.sql("SELECT run_id, flow, preset, status, stage, started_at, model, model_hash FROM runs "
                        "ORDER BY started_at")

    def table(self, name: str, run: str | None = None):
        """One table (or view: `accepted`, `rejected`), all runs or one."""
        if name not in TABLES and name not in ("accepted", "rejected"):
            raise InputError(f"table {name!r}: one of {', '.join([*TABLES, 'accepted', 'rejected'])}")
        if run is not None:
            self.lake.require_run(run, "run")
            return self.sql(f"SELECT * FROM {name} WHERE run_id = $run", run=run)
        return self.sql(f"SELECT * FROM {name}")

    def connection(self):
        """An in-memory DuckDB connection with one view per table; it reads the lake's committed parts and nothing
        else (external access off, configuration locked)."""
        return connect(self.lake)
