"""The one atomic writer: everything the project persists appears whole or not at all.

Write under a hidden temporary name in the target's folder, fsync it, rename it into place,
fsync the folder (so the rename itself survives a power cut). Readers globbing `*.parquet`
never see a `.tmp-…` name, so DuckDB never reads a half-written partition. Used by the lake,
the shard checkpoints, model checkpoints and the embedded model's conversion.
"""
from __future__ import annotations

import os
import shutil
import uuid
from pathlib import Path
from typing import Callable


def _fsync_dir(folder: Path) -> None:
    fd = os.open(folder, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_tree(path: Path) -> None:
    for p in [path, *path.rglob("*")] if path.is_dir() else [path]:
        if p.is_file():
            with open(p, "rb+") as f:
                os.fsync(f.fileno())
        elif p.is_dir():
            _fsync_dir(p)


def write_file(target: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """`fill(tmp)` writes the file at the temporary path `tmp`; it then replaces `target` atomically."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.partial"
    try:
        fill(tmp)
        _fsync_tree(tmp)
        os.replace(tmp, target)
    finally:
        if tmp.exists():
            tmp.unlink()
    _fsync_dir(target.parent)
    return target


def write_bytes(target: str | os.PathLike, data: bytes) -> Path:
    return write_file(target, lambda tmp: tmp.write_bytes(data))


def write_dir(target: str | os.PathLike, fill: Callable[[Path], None]) -> Path:
    """`fill(tmp)` fills a fresh temporary folder; it then replaces the folder `target` whole.

    An existing `target` is moved aside first and removed after the rename, so at every moment
    `target` is either the old folder or the new one, never a mix."""
    target = Path(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.partial"
    old = target.parent / f".tmp-{uuid.uuid4().hex}-{target.name}.old"
    try:
        tmp.mkdir()
        fill(tmp)
        _fsync_tree(tmp)
        if target.exists():
            os.replace(target, old)
        os.replace(tmp, target)
        _fsync_dir(target.parent)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
        shutil.rmtree(old, ignore_errors=True)
    return target
