"""Iterated self-improvement on a track: K rounds of one method, one subflow per round.

Each round samples and judges with the track's current champion, trains per the track's data policy,
is evaluated, and faces the promotion gate; the next round starts from whoever is champion then.
`--rounds` stops early when a round's training examples fall under `track.min_precision` or after
`track.stop_after_refusals` refused rounds in a row. A round that did not finish (a crash) is resumed
by the next `rounds` call, not started again.
"""
from __future__ import annotations

import importlib

from prefect import flow

from selfimprove import config as configlib
from selfimprove.flows.parameters import documented
from selfimprove.methods import flow_module, get_method
from selfimprove.rounds.gate import stop_reason
from selfimprove.tasks.ui import markdown_artifact, say
from selfimprove.validation import InputError
from selfimprove.warehouse import registry
from selfimprove.warehouse.document import as_markdown, as_text
from selfimprove.warehouse.lake import Lake, lake_location


@flow(name="rounds")
@documented("rounds", rounds="How many rounds to run now (each one a run of its own, on the config's track).",
            method="The method every round runs: svd, ssd, rft, sdzero or one of their variants.")
def rounds(method: str = "svd", rounds: int = 3, preset: str = "quickstart", config_file: str | None = None,
           lake: str | None = None, overrides: dict | None = None, cache: bool = True) -> dict:
    """K rounds of `method` on the track its config names: sample and judge with the champion, train, evaluate,
    face the gate; stop early by the track's rules."""
    cfg = configlib.load(preset, config_file, overrides, method)
    track = cfg.track
    if not track.name:
        raise InputError("rounds run on a track: name one (--track T, or track.name in the config)", field="track.name")
    if rounds < 1:
        raise InputError(f"{rounds}: at least 1", field="rounds")
    flow_name = get_method(method).flow
    method_flow = getattr(importlib.import_module(flow_module(flow_name)), flow_name)
    lk = Lake(lake_location(lake))
    done: list[dict] = []
    stopped = None
    for _ in range(rounds):
        number = len(registry.rounds_of(lk, track.name)) + 1
        resume = registry.unfinished_round(lk, track.name, number)
        say(f"[rounds] track {track.name}: round {number}" + (f" (resuming run {resume})" if resume else ""))
        result = method_flow.with_options(flow_run_name=f"{track.name}-round-{number}")(
            preset=preset, config_file=config_file, lake=lake, overrides=overrides, run_id=resume, cache=cache, method=method)
        done += registry.decisions(lk, [result["run_id"]])
        stopped = stop_reason(done, track) if done else None
        if stopped:
            say(f"[rounds] stopped early: {stopped}")
            break
    table = registry.rounds_table(lk, track.name)
    current = registry.champion(lk, track.name)
    items = [f"# track {track.name}: {len(done)} round(s) this call", "", table,
             f"champion: {current['model_id'] if current else 'none yet (the track base)'}"]
    if stopped:
        items.append(f"stopped early: {stopped}")
    markdown_artifact("rounds", as_markdown(items), description=f"the rounds of track {track.name}")
    return {"runs": [d["run_id"] for d in done], "stopped": stopped, "summary": as_text(items)}
