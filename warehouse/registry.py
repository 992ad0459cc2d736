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


def rounds_of(lake: Lake, track: str, exclude: str | None = None) -> list[str]:
    """The track's completed runs (its rounds), oldest first; `exclude`: a run left out (the one resuming)."""
    _, rows = query(lake, "SELECT run_id FROM runs WHERE json_extract_string(config_json, '$.track.name') = $t "
                          "AND status = 'completed' AND run_id IS DISTINCT FROM $x ORDER BY started_at, run_id",
                    {"t": track, "x": exclude})
    return [r for (r,) in rows]


def questions_taken(lake: Lake, runs: list[str]) -> set[str]:
    """The `question_key` of every seed those runs took."""
    if not runs:
        return set()
    _, rows = query(lake, "SELECT DISTINCT question_key FROM seeds WHERE list_contains($r, run_id) "
                          "AND question_key IS NOT NULL", {"r": runs})
    return {k for (k,) in rows}


def examples_of(lake: Lake, runs: list[str]) -> list[dict]:
    """Each of those runs' own accepted examples (not the ones it carried over), oldest run first, as rows
    that name their run in `origin_run`."""
    if not runs:
        return []
    cols, rows = query(lake, "SELECT run_id AS origin_run, candidate_id, seed_id, prompt, completion, format, loss "
                             "FROM train_examples WHERE list_contains($r, run_id) AND origin_run IS NULL "
                             "ORDER BY list_position($r, run_id), candidate_id", {"r": runs})
    return [dict(zip(cols, r)) for r in rows]


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


def decisions(lake: Lake, runs: list[str]) -> list[dict]:
    """The gate's decision of each of those runs, in their order (a run without one is left out)."""
    cols, rows = query(lake, "SELECT * FROM promotions WHERE list_contains($r, run_id) AND NOT coalesce(manual, false) "
                             "ORDER BY list_position($r, run_id)", {"r": runs})
    return [dict(zip(cols, r)) for r in rows]


def rounds_table(lake: Lake, track: str) -> Table:
    """Per round of a track (every gate decision, oldest first): the challenger and the champion on the same
    held-out items, the paired delta and its interval, the guard set, diversity, the round's training data
    and its precision against the seeds' answers, the decision, and the round's wall time."""
    _, rows = query(lake, """
        SELECT p.round, p.run_id,
               CASE WHEN p.promoted THEN 'promoted' ELSE 'refused' END,
               round(p.challenger_pass1, 3), round(p.champion_pass1, 3),
               printf('%+.3f [%+.3f, %+.3f]', p.delta, p.ci_low, p.ci_high),
               printf('%.3f / %.3f', p.guard_pass1, p.champion_guard_pass1),
               printf('%.2f / %.2f', p.diversity, p.champion_diversity),
               printf('%.3f / %.3f', p.pass_k, p.champion_pass_k),
               p.new_examples || ' + ' || (p.examples - p.new_examples), round(p.precision, 3),
               p.train_on || ', ' || p.start_from,
               round(epoch(r.updated_at) - epoch(r.started_at)) AS seconds
        FROM promotions p LEFT JOIN runs r USING (run_id)
        WHERE p.track = $t AND NOT coalesce(p.manual, false) ORDER BY p.decided_at""", {"t": track})
    return Table(["round", "run", "decision", "challenger pass@1", "champion pass@1", "delta [95% CI]",
                  "guard pass@1 (chall / champ)", "distinct answers (chall / champ)", "pass@k (chall / champ)",
                  "examples (new + carried)", "precision", "data policy", "seconds"], rows, max_width=40)


def unfinished_round(lake: Lake, track: str, number: int) -> str | None:
    """The newest run of the track's round `number` that did not complete (failed or interrupted): resumed
    by the next round instead of starting that round over."""
    _, rows = query(lake, "SELECT run_id FROM runs WHERE json_extract_string(config_json, '$.track.name') = $t "
                          "AND CAST(json_extract(config_json, '$.track.round') AS BIGINT) = $n "
                          "AND status IS DISTINCT FROM 'completed' ORDER BY started_at DESC LIMIT 1", {"t": track, "n": number})
    return rows[0][0] if rows else None
