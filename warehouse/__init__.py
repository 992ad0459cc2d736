"""The lake: Parquet tables by run, written atomically, queried through DuckDB views."""
from selfimprove.warehouse.lake import Lake, lake_root  # noqa: F401
