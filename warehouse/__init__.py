"""The lake: Parquet tables by run, written atomically, queried through DuckDB views."""
from selfimprove.warehouse.lake import Lake, lake_location  # noqa: F401
