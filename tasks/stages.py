"""The shared stages as Prefect tasks. Each reads inputs by manifest, calls the library, writes Parquet.

Every task takes the stage context and the run's typed config; a model stage opens its engine
for its own work only (`open_backend`) and names the engine's identity in its version.
"""
from __future__ import annotations

import json
from dataclasses import replace
from functools import partial
from datetime import datetime, timezone
from pathlib import Path

from prefect import task

from selfimprove import __version__
from selfimprove.verification import filters
from selfimprove.data import seeds as seedlib
from selfimprove.verification.cascade import run_cascade
from selfimprove.evaluation.contamination import ContaminationError, describe, find_overlaps
from selfimprove.data.datasets import builtin
from selfimprove.evaluation.heldout import EvalConfig, eval_prompts, evaluate, load_items, metrics
from selfimprove.verification.judges import prompts_used
from selfimprove.generation import few_shot
from selfimprove.generation.sampling import prompts_of, sample
from selfimprove.verification.selection import select
from selfimprove.verification.telemetry import label_candidates, stage_metrics
from selfimprove.training.sft import resolve_precision, train
from selfimprove.testtime.majority import answer_by_majority
from selfimprove.testtime.uq_ttc import answer_with_cascade
from selfimprove.config import RunConfig
from selfimprove.methods import TrainingText, package_training_text
from selfimprove.inference import models
from selfimprove.inference.prompt_format import describe as describe_format, thinks
from selfimprove.execution.base import ShardJob
from selfimprove.tasks.common import (MODEL_STAGE, StageContext, check_error_rate, engine, error_reason, open_backend,
                                      progress_bar, read, release_engines, run_shards, run_stage, section)
from selfimprove.tasks.rounds import round_seeds, taken_digest, taken_questions
from selfimprove.tasks.ui import StepProgress, say
from selfimprove.warehouse.run_status import RUNNING, here
from selfimprove.storage import checkpoints
from selfimprove.reporting.cards import checkpoint_card, model_card
from selfimprove.warehouse.lake import Lake, file_sha256


@task(name="register-run")
def register_run(ctx: StageContext, cfg: RunConfig, flow_name: str, preset: str, extra: dict | None = None) -> dict:
    """The run's row: which flow, preset, model (as given, its path and weight hash) and full resolved config
    (plus `extra`, e.g. the run a rescore came from)."""
    path = models.resolve(cfg.model)
    run = {"flow": flow_name, "preset": preset, "started_at": datetime.now(timezone.utc),
           "config_json": json.dumps({**cfg.to_dict(), **(extra or {})}, sort_keys=True), "model": cfg.model, "model_path": str(path),
           "model_hash": models.model_identity(path), "library_version": __version__,
           "reuse": ctx.reuse, "from_stage": ctx.from_stage, "flow_run_id": _flow_run_id(),
           "status": RUNNING, "updated_at": datetime.now(timezone.utc), **here()}
    return Lake(ctx.lake).write("runs", ctx.run_id, [run])


def _flow_run_id() -> str | None:
    """The Prefect flow run this run is (its page in the UI), when there is one."""
    from prefect.runtime import flow_run

    return str(flow_run.id) if flow_run.id else None


def _ingest_section(cfg: RunConfig) -> dict:
    out = section(cfg, "seeds", "evaluation")
    for key, path in (("seed_file_sha256", cfg.seeds.path), ("eval_file_sha256", cfg.evaluation.dataset)):
        if path and Path(path).is_file():  # a changed file is a new version even under the same name
            out[key] = file_sha256(path)
    if cfg.seeds.inbox:  # so is a file added to the inbox, or changed in it
        out["inbox_sha256"] = {str(f): file_sha256(f) for f in seedlib.inbox_files(cfg.seeds.inbox)}
    return out


@task(name="ingest-seeds")
def ingest_seeds(ctx: StageContext, cfg: RunConfig) -> dict:
    """Validate and store the training seeds and the held-out items (built-in sets skip the seeds' questions;
    on a track, the seeds skip the track's held-out items and every question an earlier round took)."""
    taken = taken_questions(ctx.lake, cfg, ctx.run_id)

    def body(lake, shards):
        train_rows, items = round_seeds(cfg, taken)
        train_rows = [{**r, "question_key": seedlib.question_key(r["question"])} for r in train_rows]
        files = [lake.write("seeds", ctx.run_id, train_rows), lake.write("eval_items", ctx.run_id, items)]
        return files, {k: v for k, v in ingest.items() if k.endswith("_sha256")}

    ingest = _ingest_section(cfg)
    if cfg.track.name:
        ingest["taken_by_earlier_rounds"] = taken_digest(taken)
    return run_stage(ctx, "seeds", ingest, [], body)


@task(name="ingest-heldout")
def ingest_heldout(ctx: StageContext, cfg: RunConfig) -> dict:
    """Validate and store the held-out items alone (evaluation runs without training seeds)."""
    def body(lake, shards):
        return [lake.write("eval_items", ctx.run_id, load_items(cfg.evaluation))], {}

    ingest = _ingest_section(cfg)
    ingest.pop("seeds")
    return run_stage(ctx, "seeds", ingest, [], body)


def sample_shard(sampling, engine, chunk: list[dict], shard: int) -> dict:
    """One shard of sampling (seeded by its index, so it draws the same wherever it runs); a failure
    becomes error rows, and the shard is tried again by the next attempt."""
    try:
        return {"candidates": sample(engine, chunk, replace(sampling, seed=sampling.seed + 7919 * shard))}
    except Exception as e:  # noqa: BLE001
        reason = error_reason(e)
        return {"_incomplete": True, "candidates": [
            {"candidate_id": f"{s['seed_id']}#{k}", "seed_id": s["seed_id"], "sample_index": k, "text": "",
             "final_answer": None, "n_tokens": 0, "error": reason} for s in chunk for k in range(sampling.n)]}


def judge_shard(cascade, thinking: bool, engine, chunk: list[dict], shard: int) -> dict:
    """One shard of the cascade: `chunk` holds each seed with its candidates; a failure becomes error rows."""
    seeds = [u["seed"] for u in chunk]
    mine = [c for u in chunk for c in u["candidates"]]
    try:
        judgments, verdicts = run_cascade(engine, seeds, mine, cascade, thinking=thinking)
    except Exception as e:  # noqa: BLE001
        reason = error_reason(e)
        return {"_incomplete": True, "judgments": [], "verdicts": [
            {"candidate_id": c["candidate_id"], "accepted": False, "rejected_at_stage": "error", "reason": reason}
            for c in mine]}
    return {"judgments": judgments, "verdicts": verdicts}


@task(name="sample-candidates", **MODEL_STAGE)
def sample_candidates(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict) -> dict:
    """n candidates per seed, checkpointed every `shard_seeds` seeds (each shard seeded by its index)."""
    def body(lake, shards):
        seed_rows = read(seeds_manifest, "seeds")
        usage: dict = {}
        bar, tick = progress_bar(len(seed_rows), "sampling")
        job = ShardJob(fn=partial(sample_shard, cfg.sampling), model=cfg.model, backend=cfg.backend)
        rows = run_shards(cfg.executor, shards, seed_rows, cfg.shard_seeds, job, tick, usage)["candidates"]
        bar.close()
        errors = check_error_rate("candidates", [r.get("error") for r in rows], cfg.max_error_rate)
        return [lake.write("candidates", ctx.run_id, rows)], {
            "generated_tokens": sum(b["counters"]["generated_tokens"] for b in usage.get("backends", [])),
            "error_rows": errors, **usage}

    return run_stage(ctx, "candidates", {"engine": engine(cfg.model, cfg.backend), **section(cfg, "sampling", "shard_seeds"),
                                         **few_shot.version(cfg.sampling.few_shot)},
                     [seeds_manifest], body, prompts_of(cfg.sampling), reads=("seeds",))


def policy_thinks(cfg: RunConfig, model: str | None = None) -> bool:
    """Whether the policy's samples open with a thought (`prompt_format.thinks`): the format pre-filter then
    requires it closed."""
    return thinks(models.resolve(model or cfg.model), cfg.sampling.thinking, cfg.backend.prompt_format)


def judge_model_of(cfg: RunConfig) -> str | None:
    """The model the cascade calls; None when no stage calls one (a rule filter, agreement alone)."""
    calls = cfg.filter.rule == "none" and any(s.calls_model for s in cfg.cascade.stages)
    return (cfg.judge_model or cfg.model) if calls else None


@task(name="judge-candidates", **MODEL_STAGE)
def judge_candidates(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, candidates_manifest: dict) -> dict:
    """The cascade over every seed's candidates, checkpointed every `shard_seeds` seeds (or a method's rule filter)."""
    judge_model = judge_model_of(cfg)

    def body(lake, shards):
        seed_rows, cands = read(seeds_manifest, "seeds"), read(candidates_manifest, "candidates")
        by_seed: dict[str, list[dict]] = {}
        for c in cands:
            by_seed.setdefault(c["seed_id"], []).append(c)
        bar, tick = progress_bar(len(seed_rows), "judging", "seed")
        usage: dict = {}
        if cfg.filter.rule != "none":  # SSD / RFT: a rule decides; no model is loaded or called
            out = {"judgments": [], "verdicts": filters.apply(cfg.filter, seed_rows, cands, cfg.sampling.answer_format,
                                                              policy_thinks(cfg))}
            tick(len(seed_rows))
        else:  # judge_model None: only model-free strategies, no engine is loaded
            units = [{"seed": s, "candidates": by_seed.get(s["seed_id"], [])} for s in seed_rows]
            job = ShardJob(fn=partial(judge_shard, cfg.cascade, policy_thinks(cfg)), model=judge_model, backend=cfg.backend)
            out = run_shards(cfg.executor, shards, units, cfg.shard_seeds, job, tick, usage)
        bar.close()
        judgments, verdicts = out["judgments"], out["verdicts"]
        errors = check_error_rate("judge", [v["reason"] if v["rejected_at_stage"] == "error" else None for v in verdicts],
                                  cfg.max_error_rate)
        labels = label_candidates(seed_rows, cands, cfg.sampling.answer_format)
        telemetry = stage_metrics(judgments, verdicts, cfg.cascade.stages, labels)
        files = [lake.write("judgments", ctx.run_id, judgments), lake.write("verdicts", ctx.run_id, verdicts),
                 lake.write("candidate_labels", ctx.run_id, [{"candidate_id": k, "correct": v} for k, v in labels.items()]),
                 lake.write("judge_metrics", ctx.run_id, telemetry)]
        calls = sum(b["counters"]["generate_calls"] + b["counters"]["scored_prompts"] for b in usage.get("backends", []))
        return files, {"backend_prompts": calls, "error_rows": errors, **usage}

    used = tuple(name for stage in cfg.cascade.stages for name in prompts_used(stage))
    return run_stage(ctx, "judge", {"judge": engine(judge_model, cfg.backend), "advisory_stages": "after the rounds",
                                    **section(cfg, "cascade", "filter", "sampling", "shard_seeds")},
                     [seeds_manifest, candidates_manifest], body, used, reads=("seeds", "candidates"))


@task(name="select-examples")
def select_examples(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, candidates_manifest: dict,
                    judge_manifest: dict) -> dict:
    def body(lake, shards):
        rows = select(read(seeds_manifest, "seeds"), read(candidates_manifest, "candidates"),
                      read(judge_manifest, "verdicts"), cfg.cascade.selection, cfg.sampling)
        return [lake.write("train_examples", ctx.run_id, rows)], {}

    return run_stage(ctx, "select", {"selection": cfg.cascade.selection, "prompt": cfg.sampling.prompt,
                                     "domain_prompts": cfg.sampling.domain_prompts},
                     [seeds_manifest, candidates_manifest, judge_manifest], body, prompts_of(cfg.sampling),
                     reads=("seeds", "candidates", "verdicts"))


def checkpoint_row(checkpoint_id: str, path: str, base: str, example_ids: list[str], steps: int, final_loss: float,
                   method: str) -> dict:
    """A checkpoints row: where the weights are, what they started from and which training rows made them."""
    return {"checkpoint_id": checkpoint_id, "path": path, "base_model": base,
            "model_hash": models.model_identity(models.resolve(path)),
            "examples": len(example_ids), "example_ids": example_ids, "steps": steps, "final_loss": final_loss,
            "method": method}


@task(name="fine-tune", **MODEL_STAGE)
def fine_tune(ctx: StageContext, cfg: RunConfig, train_manifest: dict, carried: dict | None = None) -> dict:
    """Fine-tune on the run's training examples (and `carried`'s, earlier rounds' on a track) from the run's
    model, or on a track with `start_from: base`, from the track's base."""
    start = cfg.track.trains(cfg.model)
    inputs = [train_manifest] + ([carried] if carried else [])
    prompting = (cfg.backend.prompt_format, cfg.sampling.thinking)

    def body(lake, shards):
        examples = [e for m in inputs for e in read(m, "train_examples")]
        if len(examples) < cfg.training.min_examples:
            say(f"[train] {len(examples)} accepted examples < min_examples={cfg.training.min_examples}: skipped")
            return [], {"skipped": f"{len(examples)} training examples (< {cfg.training.min_examples})", "checkpoint": None}
        release_engines()  # no engine holds memory while the model trains
        base = models.resolve(start)
        checkpoint_id = f"{ctx.run_id}-{cfg.training.method}"
        if cfg.executor.kind == "ray" and cfg.executor.train_workers:
            from selfimprove.execution.ray_train import train_on_ray

            say(f"[train] on Ray Train: {cfg.executor.train_workers} worker(s)")
            result = train_on_ray(cfg.executor, base, examples, ctx.lake, checkpoint_id, cfg.training, prompting)
        else:
            out = checkpoints.staging_dir(ctx.lake, checkpoint_id)
            steps = StepProgress("fine-tuning")
            try:
                result = train(base, examples, out, cfg.training, steps, *prompting)
            finally:
                steps.close()
            result["path"] = checkpoints.publish(ctx.lake, out, checkpoint_id)
        row = checkpoint_row(checkpoint_id, result["path"], str(base), [e["candidate_id"] for e in examples],
                             result["steps"], result["final_loss"], cfg.training.method)
        log = [{"checkpoint_id": checkpoint_id, **r} for r in result["log"]]
        checkpoints.write_card(ctx.lake, result["path"], model_card(ctx.run_id, cfg.to_dict(), row, []))
        return [lake.write("checkpoints", ctx.run_id, [row]), lake.write("train_log", ctx.run_id, log)], \
            {"checkpoint": result["path"], "final_loss": result["final_loss"], "steps": result["steps"]}

    return run_stage(ctx, "train", {"model": models.model_identity(models.resolve(start)),
                                    "prompting": {**describe_format(models.resolve(start), prompting[0]),
                                                  "thinking": prompting[1]},
                                    "training": section(cfg, "training")["training"],
                                    "precision": resolve_precision(cfg.training.precision)},
                     inputs, body, reads=("train_examples",))


@task(name="guard-contamination")
def guard_contamination(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, train_manifest: dict,
                        also: dict | None = None) -> dict:
    """Stop before training if training text (training examples, or a method package's `training_text`, such as
    OPSD's privileged information) contains a registered held-out item (unless allowed). `also`: a second stage
    whose training text is checked too."""
    guard = cfg.contamination
    train_manifests = [train_manifest] + ([also] if also else [])

    def body(lake, shards):
        questions = {r["seed_id"]: r["question"] for r in read(seeds_manifest, "seeds")}
        train_texts = [t for m in train_manifests for t in _training_texts(m, questions)]
        heldout = read(seeds_manifest, "eval_items")
        for name in guard.builtin:  # the run's own set is already in, excluding the seed questions
            if name != cfg.evaluation.dataset:
                heldout += builtin(name, EvalConfig().source)
        flagged = find_overlaps(train_texts, heldout, guard)
        action = "allowed" if guard.allow else "stopped"
        files = [lake.write("contamination", ctx.run_id, [{**f, "action": action} for f in flagged])]
        if flagged and not guard.allow:
            raise ContaminationError(
                f"contamination guard: {len(flagged)} held-out item(s) appear in the training data of run "
                f"{ctx.run_id}:\n{describe(flagged)}\nRemove them from the seeds, or rerun with "
                "--allow-contamination (recorded in the run's config and the contamination table).")
        if flagged:
            say(f"[contamination] {len(flagged)} overlapping held-out items ALLOWED by override:\n{describe(flagged)}")
        return files, {"flagged": len(flagged), "action": action if flagged else "clean"}

    return run_stage(ctx, "contamination", section(cfg, "contamination", "evaluation"),
                     [seeds_manifest, *train_manifests], body,
                     reads=("seeds", "eval_items", *_training_text()))


def _training_text() -> dict[str, TrainingText]:
    """Every table column a model trains on: the training examples' completions, and each method package's."""
    return {"train_examples": TrainingText("completion", id="candidate_id"), **package_training_text()}


def _training_texts(manifest: dict, questions: dict[str, str]) -> list[tuple[str, str]]:
    """(id, text) of everything a model will train on: each row's seed question and its training text."""
    tables = {f["table"] for f in manifest["files"]}
    pairs = [(f"{r[text.id]}{text.suffix}", r["seed_id"], r[text.column])
             for table, text in _training_text().items() if table in tables for r in read(manifest, table)
             if all(r.get(k) == v for k, v in text.where.items())]
    return [(i, questions.get(seed, "")) for i, seed, _ in pairs] + [(i, text) for i, _, text in pairs]


def _eval_stage(ctx: StageContext, cfg: RunConfig, items_manifest: dict, model: str, label: str, stage: str,
                extra: dict, produce, prompt_names: tuple[str, ...]) -> dict:
    """An evaluation stage: `produce(engine, items, shard, progress=None)` (picklable) → {"eval_samples": rows}
    for `label`; metrics follow. Locally all items go to one engine in one call; on a cluster the items are
    split into checkpointed shards of `shard_seeds` across the workers. Every row names the model it scored
    by path and weight hash."""
    path = models.resolve(model)

    def body(lake, shards):
        items = read(items_manifest, "eval_items")
        usage: dict = {}
        bar, tick = progress_bar(len(items), f"eval {label}")
        if cfg.executor.kind == "local":
            with open_backend(model, cfg.backend, usage) as backend:
                rows = produce(backend, items, 0, progress=tick)["eval_samples"]
        else:
            rows = run_shards(cfg.executor, shards, items, cfg.shard_seeds, ShardJob(fn=produce, model=model, backend=cfg.backend),
                              tick, usage)["eval_samples"]
        bar.close()
        where = model if str(model).startswith("s3://") else str(path)  # a lake checkpoint by its url, as checkpoints names it
        rows = [{**r, "model_path": where, "model_hash": models.model_identity(path)} for r in rows]
        measured = metrics(rows, cfg.evaluation)
        if label == "tuned":  # the run's own checkpoint: its model card gets the held-out results
            card = checkpoint_card(Lake(ctx.lake), ctx.run_id, where, measured)
            if card:
                checkpoints.write_card(ctx.lake, where, card)
        return [lake.write("eval_samples", ctx.run_id, rows, part=label),
                lake.write("eval_metrics", ctx.run_id, measured, part=label)], {"model": model, **usage}

    return run_stage(ctx, stage, {**extra, **section(cfg, "evaluation"), "engine": engine(model, cfg.backend),
                                  "thinking": cfg.sampling.thinking},
                     [items_manifest], body, prompt_names, reads=("eval_items",))


def evaluate_shard(evaluation, thinking: str, label: str, engine, items: list[dict], shard: int, progress=None) -> dict:
    return {"eval_samples": evaluate(engine, items, evaluation, label, progress=progress, thinking=thinking)}


def uq_ttc_shard(cfg: RunConfig, thinks_: bool, label: str, engine, items: list[dict], shard: int, progress=None) -> dict:
    return {"eval_samples": answer_with_cascade(engine, items, cfg.uq_ttc, cfg.sampling, cfg.cascade, cfg.evaluation,
                                                label, progress=progress, thinking=thinks_)}


def majority_shard(cfg: RunConfig, k: int, label: str, engine, items: list[dict], shard: int, progress=None) -> dict:
    return {"eval_samples": answer_by_majority(engine, items, k, cfg.sampling, cfg.evaluation, label, progress=progress)}


@task(name="evaluate-model", **MODEL_STAGE)
def evaluate_model(ctx: StageContext, cfg: RunConfig, items_manifest: dict, model: str, label: str) -> dict:
    """Score `model` ('default' or a checkpoint path) on the run's held-out items, stored under `label`."""
    return _eval_stage(ctx, cfg, items_manifest, model, label, f"eval-{label}", {},
                       partial(evaluate_shard, cfg.evaluation, cfg.sampling.thinking, label), eval_prompts(cfg.evaluation))


@task(name="evaluate-majority", **MODEL_STAGE)
def evaluate_majority(ctx: StageContext, cfg: RunConfig, items_manifest: dict, model: str, label: str = "base+majority",
                      k: int | None = None) -> dict:
    """The majority-vote baseline (maj@k): k samples per held-out item drawn as the sampler draws them (k: the
    config's `majority.k`, else `sampling.n`), the most frequent answer scored; stage `eval-<label>`."""
    k = k or cfg.majority.k or cfg.sampling.n
    return _eval_stage(ctx, cfg, items_manifest, model, label, f"eval-{label}", {"k": k, **section(cfg, "sampling")},
                       partial(majority_shard, cfg, k, label), eval_prompts(cfg.evaluation))


@task(name="evaluate-uq-ttc", **MODEL_STAGE)
def evaluate_uq_ttc(ctx: StageContext, cfg: RunConfig, items_manifest: dict, model: str, label: str = "base+uq_ttc",
                    stage: str = "eval-uq_ttc") -> dict:
    """The test-time baseline: n samples per held-out item, judged by the run's cascade, first accepted answers
    (`stage`: one per model where several are scored)."""
    used = eval_prompts(cfg.evaluation) + tuple(name for stage in cfg.cascade.stages for name in prompts_used(stage))
    return _eval_stage(ctx, cfg, items_manifest, model, label, stage, section(cfg, "uq_ttc", "sampling", "cascade"),
                       partial(uq_ttc_shard, cfg, policy_thinks(cfg, model), label), used)
