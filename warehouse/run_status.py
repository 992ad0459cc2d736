"""A run's status in its `runs` row: running (with the stage it is in), completed, or failed (with the
failing stage and the reason), kept current by rewriting that one-row part atomically.

A process killed outright cannot say it failed: its row stays `running`. `describe` tells such a run
apart on this machine (the process it names is gone) so `compare` and `report` never call it live.
"""
from __future__ import annotations

import os
import socket
from datetime import datetime, timezone

from selfimprove.warehouse.lake import Lake

RUNNING, COMPLETED, FAILED = "running", "completed", "failed"


def here() -> dict:
    """Which process runs a run: recorded so a stale `running` can be recognised."""
    return {"pid": os.getpid(), "host": socket.gethostname()}


def set_status(lake: Lake, run_id: str, status: str, stage: str | None = None, reason: str | None = None) -> bool:
    """Rewrite the run's row with a new status; False when the run has no row (a stage run on its own)."""
    row = current(lake, run_id)
    if row is None:
        return False
    row.update(status=status, stage=stage if stage is not None or status == COMPLETED else row.get("stage"),
               reason=reason, updated_at=datetime.now(timezone.utc), **here())
    Lake(lake.location).write("runs", run_id, [row])
    return True


def current(lake: Lake, run_id: str) -> dict | None:
    rows = lake.read("runs", run_id).get("data")
    if not rows:
        return None
    row = dict(rows[0])
    row.pop("run_id", None)
    return row


def one_line(error: BaseException) -> str:
    """The reason a run failed: the exception's type and first line."""
    text = str(error).strip().splitlines()
    return f"{type(error).__name__}: {text[0] if text else 'no message'}"[:300]


def describe(row: dict) -> str | None:
    """None for a completed run; else a sentence on its state (a run from before statuses: None)."""
    status = row.get("status")
    if status in (None, COMPLETED):
        return None
    if status == FAILED:
        return f"failed at stage {row.get('stage') or '?'}: {row.get('reason') or 'no reason recorded'}"
    at = f" in stage {row['stage']}" if row.get("stage") else ""
    if row.get("host") == socket.gethostname() and row.get("pid") and not _alive(int(row["pid"])):
        return f"interrupted{at}: marked running, but its process ({row['pid']}) is gone; --resume it to finish"
    return f"still running{at} (last update {row.get('updated_at')})"


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
