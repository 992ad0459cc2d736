"""The lake: Parquet tables by run, written atomically, queried through DuckDB views."""
from .lake import Lake, lake_root  # noqa: F401
