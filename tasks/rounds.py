"""A run on a track: where it starts (the champion), which seeds it may take (none an earlier round took),
what it carries over (`train_on: accumulated`), and the promotion gate at its end.

The run sampled, judged and trained from the champion, so its `base` evaluations are the champion's on the
same items: the paired delta of `tuned` over `base` on the held-out set is the evidence, with the guard set
and diversity beside it. The decision, promoted or refused, lands in `promotions` with its reason;
rerunning the task (a resume) replaces it.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import replace

from prefect import task

from selfimprove.config import RunConfig
from selfimprove.data import seeds as seedlib
from selfimprove.evaluation.heldout import load_items, paired_difference
from selfimprove.rounds.evidence import guard_evaluation, precision, round_seed
from selfimprove.rounds.gate import Evidence, decide
from selfimprove.tasks.common import StageContext, read, run_stage, section
from selfimprove.tasks.report import best_evaluation
from selfimprove.tasks.ui import markdown_artifact, say
from selfimprove.validation import InputError
from selfimprove.warehouse import registry
from selfimprove.warehouse.lake import Lake, lake_location


def on_track(cfg: RunConfig, lake: str | None, run_id: str | None = None) -> RunConfig:
    """The config of this round: `model` resolved (`champion:<track>`, on a track also the default model →
    the champion's checkpoint, or the track's base while it has none), its round number, and for generated
    seeds the round's own generator seed. `run_id`: the run resuming, which is not one of its earlier rounds."""
    track = cfg.track.name
    if track and cfg.model not in ("default", registry.CHAMPION + track):
        raise InputError(f"{cfg.model!r}: a run on track {track!r} starts from its champion (model: champion:{track}); "
                         "a new track's first model is track.base", field="model")
    spec = registry.CHAMPION + track if track else cfg.model
    if not spec.startswith(registry.CHAMPION):
        return cfg
    lk = Lake(lake_location(lake))
    base = cfg.track.base if spec == registry.CHAMPION + str(track) else "default"
    cfg = replace(cfg, model=registry.resolve_model(lk, spec, base))
    if not track:
        return cfg
    if cfg.track.guard:
        guard_evaluation(cfg.track, cfg.evaluation)  # refused before anything runs
    number = len(registry.rounds_of(lk, track, exclude=run_id)) + 1
    seeds = cfg.seeds if cfg.seeds.path or cfg.seeds.inbox else replace(cfg.seeds, seed=round_seed(cfg.seeds.seed, number))
    return replace(cfg, seeds=seeds, track=replace(cfg.track, round=number))


def taken_questions(lake: str, cfg: RunConfig, run_id: str | None) -> set[str]:
    """The question keys the track's completed rounds (other than `run_id`) took; empty off a track."""
    if not cfg.track.name:
        return set()
    lk = Lake(lake)
    return registry.questions_taken(lk, registry.rounds_of(lk, cfg.track.name, exclude=run_id))


def round_seeds(cfg: RunConfig, taken: set[str]) -> tuple[list[dict], list[dict]]:
    """(training seeds, held-out items). On a track, or with `evaluation.fixed` (an experiment's repeats), the
    held-out set is the same whatever the seeds, and the seeds leave out every question it holds (and on a track
    every question an earlier round took); otherwise the held-out set leaves out the seeds' questions."""
    if not cfg.track.name and not cfg.evaluation.fixed:
        rows = seedlib.load(cfg.seeds)
        return rows, load_items(cfg.evaluation, exclude_questions={seedlib.question_key(r["question"]) for r in rows})
    items = load_items(cfg.evaluation)
    rows = seedlib.load(cfg.seeds, taken | {seedlib.question_key(i["question"]) for i in items})
    if not rows and cfg.track.name:
        where = cfg.seeds.inbox or cfg.seeds.path or "the generator"
        raise InputError(f"no new seed question for round {cfg.track.round} of track {cfg.track.name}: earlier rounds "
                         f"took all {len(taken)} of {where}'s" + (" (drop new files into the inbox)" if cfg.seeds.inbox else ""),
                         field="seeds")
    return rows, items


def _digest(data) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


def taken_digest(taken: set[str]) -> str:
    return _digest(sorted(taken))


@task(name="accumulate")
def accumulate_examples(ctx: StageContext, cfg: RunConfig, train_manifest: dict) -> dict:
    """`train_on: accumulated`: the accepted examples of the track's completed rounds, de-duplicated against
    this round's and each other by (prompt, completion), as this run's train_examples with `origin_run` set."""
    lake = Lake(ctx.lake)
    earlier = registry.rounds_of(lake, cfg.track.name, exclude=ctx.run_id)
    rows = registry.examples_of(lake, earlier)

    def body(lake, shards):
        seen = {(e["prompt"], e["completion"]) for e in read(train_manifest, "train_examples")}
        kept = []
        for r in rows:
            if (r["prompt"], r["completion"]) not in seen:
                seen.add((r["prompt"], r["completion"]))
                kept.append(r)
        say(f"[accumulate] {len(kept)} accepted examples of {len(earlier)} earlier round(s) carried over")
        return [lake.write("train_examples", ctx.run_id, kept, part="accumulated")], {"carried": len(kept), "from_runs": earlier}

    return run_stage(ctx, "accumulate", {"from_runs": earlier, "examples": _digest(rows)}, [train_manifest], body,
                     reads=("train_examples",))


@task(name="ingest-guard")
def ingest_guard(ctx: StageContext, cfg: RunConfig) -> dict:
    """The track's guard set, stored as eval_items of its own stage."""
    evaluation = guard_evaluation(cfg.track, cfg.evaluation)

    def body(lake, shards):
        return [lake.write("eval_items", ctx.run_id, load_items(evaluation), part="guard")], {}

    return run_stage(ctx, "guard-items", {"evaluation": section(replace(cfg, evaluation=evaluation), "evaluation")}, [], body)


def _metric(manifest: dict | None, name: str) -> float | None:
    if not manifest:
        return None
    return next((r["value"] for r in read(manifest, "eval_metrics") if r["metric"] == name), None)


def _paired(champion: dict | None, challenger: dict | None, cfg: RunConfig, label: str) -> dict:
    """The challenger's paired pass@1 delta over the champion on the same items, with its interval (None: not run)."""
    if not champion or not challenger:
        return {"value": None, "ci_low": None, "ci_high": None}
    return paired_difference(read(champion, "eval_samples"), read(challenger, "eval_samples"), cfg.evaluation, label)


def _interval(manifest: dict | None, name: str) -> tuple[float | None, float | None]:
    if not manifest:
        return None, None
    row = next((r for r in read(manifest, "eval_metrics") if r["metric"] == name), None)
    return (row["ci_low"], row["ci_high"]) if row else (None, None)


def _round_precision(manifests: dict) -> tuple[int, float | None]:
    """(the round's own training examples, the share of them right by the seeds' answers); the examples carried
    over from earlier rounds (`origin_run`) are not its own."""
    own = [e["candidate_id"] for m in manifests.values() if any(f["table"] == "train_examples" for f in m.get("files", []))
           for e in read(m, "train_examples") if not e.get("origin_run")]
    labelled = next((m for m in manifests.values() if any(f["table"] == "candidate_labels" for f in m.get("files", []))), None)
    labels = {r["candidate_id"]: r["correct"] for r in read(labelled, "candidate_labels")} if labelled else {}
    return len(own), precision(own, labels)


@task(name="promotion-gate")
def promotion_gate(ctx: StageContext, cfg: RunConfig, manifests: dict, trained: dict) -> dict:
    """Register the run's model (the checkpoint of the `trained` stage's manifest) on its track and apply the gate;
    returns the decision row."""
    lake, run_id, track = Lake(ctx.lake), ctx.run_id, cfg.track
    checkpoint = trained.get("checkpoint")
    base, tuned = best_evaluation(manifests, "base"), best_evaluation(manifests, "tuned")
    examples, right = _round_precision(manifests)
    carried = (manifests.get("accumulate") or {}).get("carried", 0)
    row = {"track": track.name, "round": track.round, "previous_path": cfg.model, "manual": False, "margin": track.margin,
           "guard_tolerance": track.guard_tolerance, "diversity_floor": track.diversity_floor, "train_on": track.train_on,
           "start_from": track.start_from, "examples": examples + carried, "new_examples": examples, "precision": right}
    if not checkpoint or trained.get("skipped") or not (base and tuned):
        why = trained.get("skipped") or "no evaluation of the trained model"
        row.update(promoted=False, reason=f"refused: the run trained no model to promote ({why})")
    else:
        delta = paired_difference(read(base[1], "eval_samples"), read(tuned[1], "eval_samples"), cfg.evaluation, tuned[0])
        made = read(trained, "checkpoints")[0]  # its id and weight hash, as fine-tuning recorded them
        model_id = made["checkpoint_id"]
        measured = {"challenger_pass1": _metric(tuned[1], "pass@1"), "champion_pass1": _metric(base[1], "pass@1"),
                    "guard_pass1": _metric(manifests.get("guard-tuned"), "pass@1"),
                    "champion_guard_pass1": _metric(manifests.get("guard-base"), "pass@1"),
                    "diversity": _metric(manifests.get("diversity-tuned"), "distinct_answers"),
                    "champion_diversity": _metric(manifests.get("diversity-base"), "distinct_answers"),
                    "pass_k": _metric(manifests.get("diversity-tuned"), f"pass@{track.diversity_k}"),
                    "champion_pass_k": _metric(manifests.get("diversity-base"), f"pass@{track.diversity_k}")}
        registry.record_model(lake, run_id, {
            "track": track.name, "round": track.round, "model_id": model_id, "path": checkpoint,
            "model_hash": made["model_hash"], "parent": made["base_model"], "sampled_by": cfg.model, "method": cfg.method,
            "heldout_pass1": measured["challenger_pass1"], "heldout_n": delta["n"]})
        guard = _paired(manifests.get("guard-base"), manifests.get("guard-tuned"), cfg, "guard")
        diversity = _interval(manifests.get("diversity-tuned"), "distinct_answers")
        evidence = Evidence(delta=delta["value"], ci_low=delta["ci_low"], ci_high=delta["ci_high"], n=delta["n"],
                            guard_delta=guard["value"], guard_ci_low=guard["ci_low"], guard_ci_high=guard["ci_high"],
                            diversity=measured["diversity"], diversity_ci_low=diversity[0], diversity_ci_high=diversity[1])
        promoted, reason = decide(evidence, track)
        row.update(model_id=model_id, path=checkpoint, promoted=promoted, reason=reason, delta=evidence.delta,
                   ci_low=evidence.ci_low, ci_high=evidence.ci_high, n=evidence.n, guard_delta=evidence.guard_delta,
                   guard_ci_low=evidence.guard_ci_low, guard_ci_high=evidence.guard_ci_high,
                   diversity_ci_low=diversity[0], diversity_ci_high=diversity[1], pass_k_at=track.diversity_k or None,
                   **measured)
    registry.record_decision(lake, run_id, row, part="gate")
    say(f"[gate] track {track.name}, round {track.round}: {row['reason']}")
    markdown_artifact("promotion", f"**Track {track.name}, round {track.round}**: {row['reason']}",
                      description=f"the promotion gate's decision on track {track.name}")
    return row
