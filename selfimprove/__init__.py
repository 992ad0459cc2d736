"""selfimprove: a language model improves itself from unlabeled questions, auditable end to end."""
__version__ = "0.1.0"


def open_lake(location=None):
    """A read-only reader of the lake at `location` (a folder or s3://BUCKET/PREFIX; default ./lake or
    $SELFIMPROVE_LAKE): `.sql(query, **params)`, `.runs()`, `.table(name, run=...)` give polars DataFrames,
    `.connection()` a DuckDB connection with every view. See `selfimprove.warehouse.api`."""
    import selfimprove.methods  # noqa: F401  (every method package's tables, for the views)
    from selfimprove.warehouse.api import LakeReader

    return LakeReader(location)
