"""The local cache folder: converted models, checkpoints fetched from a lake, file hashes."""
from __future__ import annotations

import os
from pathlib import Path


def cache_dir() -> Path:
    """`$SELFIMPROVE_CACHE`, else ~/.cache/selfimprove."""
    root = os.environ.get("SELFIMPROVE_CACHE") or Path.home() / ".cache" / "selfimprove"
    return Path(root)
