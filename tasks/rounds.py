"""The promotion gate at the end of a run on a track: register the trained model, then make it the
track's champion only if it beat the champion it started from on the track's held-out items.

The run sampled, judged and trained from the champion, so its `base` evaluation is the champion's on
the same items: the paired delta of `tuned` over `base` is the evidence. The decision, promoted or
refused, lands in `promotions` with its reason; rerunning the task (a resume) replaces it.
"""
from __future__ import annotations

from dataclasses import replace

from prefect import task

from selfimprove.config import RunConfig
from selfimprove.evaluation.heldout import paired_difference
from selfimprove.rounds.gate import Evidence, decide
from selfimprove.tasks.common import StageContext, read
from selfimprove.tasks.report import best_evaluation
from selfimprove.tasks.ui import markdown_artifact, say
from selfimprove.validation import InputError
from selfimprove.warehouse import registry
from selfimprove.warehouse.lake import Lake, lake_location


def on_track(cfg: RunConfig, lake: str | None) -> RunConfig:
    """The config with `model` resolved: `champion:<track>` (on a track, also the default model) → the
    champion's checkpoint, or the track's base while it has none. A run on a track starts from its champion."""
    track = cfg.track.name
    if track and cfg.model not in ("default", registry.CHAMPION + track):
        raise InputError(f"{cfg.model!r}: a run on track {track!r} starts from its champion (model: champion:{track}); "
                         "a new track's first model is track.base", field="model")
    spec = registry.CHAMPION + track if track else cfg.model
    if not spec.startswith(registry.CHAMPION):
        return cfg
    base = cfg.track.base if spec == registry.CHAMPION + str(track) else "default"
    return replace(cfg, model=registry.resolve_model(Lake(lake_location(lake)), spec, base))


@task(name="promotion-gate")
def promotion_gate(ctx: StageContext, cfg: RunConfig, manifests: dict) -> dict:
    """Register the run's model on its track and apply the gate; returns the decision row."""
    lake, run_id, track = Lake(ctx.lake), ctx.run_id, cfg.track
    checkpoint = (manifests.get("train") or {}).get("checkpoint")
    base, tuned = best_evaluation(manifests, "base"), best_evaluation(manifests, "tuned")
    row = {"track": track.name, "previous_path": cfg.model, "manual": False, "margin": track.margin,
           "guard_tolerance": track.guard_tolerance, "diversity_floor": track.diversity_floor}
    if not checkpoint or not (base and tuned):
        why = (manifests.get("train") or {}).get("skipped") or "no evaluation of the trained model"
        row.update(promoted=False, reason=f"refused: the run trained no model to promote ({why})")
    else:
        delta = paired_difference(read(base[1], "eval_samples"), read(tuned[1], "eval_samples"), cfg.evaluation, tuned[0])
        pass1 = next(r for r in read(tuned[1], "eval_metrics") if r["metric"] == "pass@1")
        trained = read(manifests["train"], "checkpoints")[0]  # its id and weight hash, as fine-tuning recorded them
        model_id = trained["checkpoint_id"]
        registry.record_model(lake, run_id, {
            "track": track.name, "model_id": model_id, "path": checkpoint, "model_hash": trained["model_hash"],
            "parent": cfg.model, "method": cfg.method, "heldout_pass1": pass1["value"], "heldout_n": pass1["n"]})
        evidence = Evidence(delta=delta["value"], ci_low=delta["ci_low"], ci_high=delta["ci_high"], n=delta["n"])
        promoted, reason = decide(evidence, track)
        row.update(model_id=model_id, path=checkpoint, promoted=promoted, reason=reason, delta=evidence.delta,
                   ci_low=evidence.ci_low, ci_high=evidence.ci_high, n=evidence.n)
    registry.record_decision(lake, run_id, row, part="gate")
    say(f"[gate] track {track.name}: {row['reason']}")
    markdown_artifact("promotion", f"**Track {track.name}**: {row['reason']}",
                      description=f"the promotion gate's decision on track {track.name}")
    return row
