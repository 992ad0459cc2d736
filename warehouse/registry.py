"""The champion registry in the lake: which model each track's champion is, since when, and why.

`models` holds every checkpoint a run on a track produced; `promotions` every decision of the gate
(and every manual promotion), refusals included, with its evidence. A track's champion is the model
of its latest promoted decision; a track with none has its configured base.
"""
from __future__ import annotations

from datetime import datetime, timezone

from selfimprove.warehouse.document import Table
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.views import query

CHAMPION = "champion:"


def champion(lake: Lake, track: str) -> dict | None:
    """The track's current champion ({model_id, path, run_id, decided_at}), or None while it has none."""
    _, rows = query(lake, "SELECT model_id, path, run_id, decided_at FROM promotions WHERE track = $t AND promoted "
                          "ORDER BY decided_at DESC LIMIT 1", {"t": track})
    return dict(zip(("model_id", "path", "run_id", "decided_at"), rows[0])) if rows else None


def resolve_model(lake: Lake, model: str, base: str) -> str:
    """`champion:<track>` → the track's champion's path (`base` while the track has none); else `model`."""
    if not model.startswith(CHAMPION):
        return model
    current = champion(lake, model.removeprefix(CHAMPION))
    return current["path"] if current else base


def record_model(lake: Lake, run_id: str, row: dict) -> dict:
    return lake.write("models", run_id, [{**row, "created_at": row.get("created_at") or _now()}], part="model")


def record_decision(lake: Lake, run_id: str, row: dict, part: str | None = None) -> dict:
    """One decision in a part of its own: the gate's (`part="gate"`, replaced when the run is resumed) or one
    per manual promotion, kept beside it."""
    at = row.get("decided_at") or _now()
    return lake.write("promotions", run_id, [{**row, "decided_at": at}], part=part or "manual-" + at.strftime("%Y%m%dT%H%M%S%f"))


def promote_by_hand(lake: Lake, run_id: str, track: str, reason: str = "promoted by hand") -> dict:
    """Make the run's trained checkpoint the track's champion, recorded as manual."""
    _, rows = query(lake, "SELECT checkpoint_id, path FROM checkpoints WHERE run_id = $r ORDER BY checkpoint_id DESC LIMIT 1",
                    {"r": run_id})
    if not rows:
        raise ValueError(f"run {run_id!r} trained no checkpoint: nothing to promote")
    model_id, path = rows[0]
    previous = champion(lake, track)
    row = {"track": track, "model_id": model_id, "path": path, "previous_path": previous and previous["path"],
           "promoted": True, "manual": True, "reason": reason}
    record_decision(lake, run_id, row)
    return row


def history(lake: Lake, track: str | None = None) -> Table:
    """Every decision on a track (or on all tracks), oldest first."""
    _, rows = query(lake, """
        SELECT p.track, strftime(p.decided_at, '%Y-%m-%d %H:%M:%S') AS decided, p.run_id, p.model_id,
               CASE WHEN p.promoted THEN (CASE WHEN p.manual THEN 'promoted (manual)' ELSE 'promoted' END)
                    ELSE 'refused' END AS decision,
               round(p.delta, 3) AS delta, round(p.ci_low, 3) AS ci_low, round(p.ci_high, 3) AS ci_high,
               round(p.guard_delta, 3) AS guard, p.reason
        FROM promotions p WHERE $t IS NULL OR p.track = $t ORDER BY p.track, p.decided_at""", {"t": track})
    return Table(["track", "decided", "run", "model", "decision", "delta", "ci low", "ci high", "guard", "reason"], rows,
                 max_width=60)


def _now() -> datetime:
    return datetime.now(timezone.utc)
