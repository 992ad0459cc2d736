"""The SVD stages as Prefect tasks. Each reads inputs by manifest, calls the library, writes Parquet."""
from __future__ import annotations

import hashlib
import json
from datetime import datetime, timezone
from pathlib import Path

from prefect import task

from selfimprove import __version__, models, seeds as seedlib
from selfimprove.cascade import run_cascade
from selfimprove.evaluation import evaluate, metrics
from selfimprove.judges import prompts_used
from selfimprove.sampling import sample
from selfimprove.selection import select
from selfimprove.telemetry import label_candidates, stage_metrics
from selfimprove.training import train
from warehouse import Lake

from .common import backend_for, config_of, progress_bar, read, run_stage


def _cfg(config: dict, *keys):
    return {k: config[k] for k in keys}


def _model_id(model: str | None) -> str | None:
    """Stage versions name models by their weights, not by the name they were given."""
    return None if model is None else models.model_identity(models.resolve(model))


@task(name="register-run")
def register_run(ctx: dict, config: dict, flow_name: str, preset: str) -> dict:
    """The run's row: which flow, preset, model and full resolved config."""
    run = {"flow": flow_name, "preset": preset, "started_at": datetime.now(timezone.utc),
           "config_json": json.dumps(config, sort_keys=True), "model": config["model"], "library_version": __version__}
    return Lake(ctx["lake"]).write("runs", ctx["run_id"], [run])


@task(name="ingest-seeds")
def ingest_seeds(ctx: dict, config: dict) -> dict:
    """Validate and store the training seeds and the held-out items (disjoint questions)."""
    cfg = config_of(config)

    def body(lake):
        train_rows = seedlib.load(cfg.seeds)
        heldout = seedlib.generate(cfg.evaluation.source, exclude_questions={r["question"] for r in train_rows})
        overlap = {r["question"] for r in train_rows} & {r["question"] for r in heldout}
        if overlap:  # generation excludes seed questions, so this is a bug, never bad input
            raise RuntimeError(f"held-out set shares {len(overlap)} questions with the seeds")
        items = [{"dataset": cfg.evaluation.dataset_name, "item_id": r["seed_id"], **r} for r in heldout]
        return [lake.write("seeds", ctx["run_id"], train_rows), lake.write("eval_items", ctx["run_id"], items)], {}

    section = _cfg(config, "seeds", "evaluation")
    if cfg.seeds.path:  # a changed seed file is a new version even under the same name
        section["seed_file_sha256"] = hashlib.sha256(Path(cfg.seeds.path).read_bytes()).hexdigest() \
            if Path(cfg.seeds.path).exists() else "missing"
    return run_stage(ctx, "seeds", section, [], body)


@task(name="sample-candidates")
def sample_candidates(ctx: dict, config: dict, seeds_manifest: dict) -> dict:
    cfg = config_of(config)

    def body(lake):
        seed_rows = read(seeds_manifest, "seeds")
        backend = backend_for(models.resolve(cfg.model), cfg.backend)
        bar, tick = progress_bar(len(seed_rows), "sampling")
        before = backend.counters.generated_tokens
        rows = sample(backend, seed_rows, cfg.sampling, progress=tick)
        bar.close()
        return [lake.write("candidates", ctx["run_id"], rows)], {"generated_tokens": backend.counters.generated_tokens - before}

    return run_stage(ctx, "candidates", {"model": _model_id(cfg.model), "sampling": config["sampling"]},
                     [seeds_manifest], body, (cfg.sampling.prompt,))


@task(name="judge-candidates")
def judge_candidates(ctx: dict, config: dict, seeds_manifest: dict, candidates_manifest: dict) -> dict:
    cfg = config_of(config)

    def body(lake):
        seed_rows, cands = read(seeds_manifest, "seeds"), read(candidates_manifest, "candidates")
        backend = backend_for(models.resolve(cfg.judge_model or cfg.model), cfg.backend)
        bar, tick = progress_bar(len(cands), "judging", "candidate")
        calls_before = backend.counters.generate_calls + backend.counters.scored_prompts
        judgments, verdicts = run_cascade(backend, seed_rows, cands, cfg.cascade, progress=tick)
        bar.close()
        labels = label_candidates(seed_rows, cands, cfg.sampling.answer_format)
        telemetry = stage_metrics(judgments, verdicts, cfg.cascade.stages, labels)
        files = [lake.write("judgments", ctx["run_id"], judgments), lake.write("verdicts", ctx["run_id"], verdicts),
                 lake.write("candidate_labels", ctx["run_id"], [{"candidate_id": k, "correct": v} for k, v in labels.items()]),
                 lake.write("judge_metrics", ctx["run_id"], telemetry)]
        calls = backend.counters.generate_calls + backend.counters.scored_prompts - calls_before
        return files, {"backend_prompts": calls}

    used = tuple(name for stage in cfg.cascade.stages for name in prompts_used(stage))
    return run_stage(ctx, "judge", {"judge": _model_id(cfg.judge_model or cfg.model), **_cfg(config, "cascade", "sampling")},
                     [seeds_manifest, candidates_manifest], body, used)


@task(name="select-examples")
def select_examples(ctx: dict, config: dict, seeds_manifest: dict, candidates_manifest: dict,
                    judge_manifest: dict) -> dict:
    cfg = config_of(config)

    def body(lake):
        rows = select(read(seeds_manifest, "seeds"), read(candidates_manifest, "candidates"),
                      read(judge_manifest, "verdicts"), cfg.cascade.selection, cfg.sampling.prompt)
        return [lake.write("train_examples", ctx["run_id"], rows)], {}

    return run_stage(ctx, "select", {"selection": cfg.cascade.selection, "prompt": cfg.sampling.prompt},
                     [candidates_manifest, judge_manifest], body, (cfg.sampling.prompt,))


@task(name="fine-tune")
def fine_tune(ctx: dict, config: dict, train_manifest: dict) -> dict:
    cfg = config_of(config)

    def body(lake):
        examples = read(train_manifest, "train_examples")
        if len(examples) < cfg.training.min_examples:
            print(f"[fine-tune] {len(examples)} accepted examples < min_examples={cfg.training.min_examples}: skipped")
            return [], {"skipped": f"{len(examples)} training examples (< {cfg.training.min_examples})", "checkpoint": None}
        base = models.resolve(cfg.model)
        checkpoint_id = f"{ctx['run_id']}-{cfg.training.method}"
        out = lake.root / "checkpoints_store" / checkpoint_id
        result = train(base, examples, out, cfg.training)
        row = {"checkpoint_id": checkpoint_id, "path": result["path"], "base_model": str(base),
               "examples": result["examples"], "steps": result["steps"], "final_loss": result["final_loss"],
               "method": cfg.training.method}
        log = [{"checkpoint_id": checkpoint_id, **r} for r in result["log"]]
        return [lake.write("checkpoints", ctx["run_id"], [row]), lake.write("train_log", ctx["run_id"], log)], \
            {"checkpoint": result["path"], "final_loss": result["final_loss"], "steps": result["steps"]}

    return run_stage(ctx, "train", {"model": _model_id(cfg.model), "training": config["training"]},
                     [train_manifest], body)


@task(name="evaluate-model")
def evaluate_model(ctx: dict, config: dict, items_manifest: dict, model: str, label: str) -> dict:
    """Score `model` ('default' or a checkpoint path) on the run's held-out items, stored under `label`."""
    cfg = config_of(config)

    def body(lake):
        items = [{"seed_id": r["item_id"], **r} for r in read(items_manifest, "eval_items")]
        backend = backend_for(models.resolve(model), cfg.backend)
        bar, tick = progress_bar(len(items), f"eval {label}")
        rows = evaluate(backend, items, cfg.evaluation, label, progress=tick)
        bar.close()
        return [lake.write("eval_samples", ctx["run_id"], rows, part=label),
                lake.write("eval_metrics", ctx["run_id"], metrics(rows, cfg.evaluation), part=label)], {"model": model}

    return run_stage(ctx, f"eval-{label}", {"evaluation": config["evaluation"], "model": _model_id(model)},
                     [items_manifest], body, (cfg.evaluation.prompt,))

