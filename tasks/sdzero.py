"""The SD-Zero stages as Prefect tasks: Phase-1 revisions (+ SRT rows) and Phase-2 self-distillation.

SRT training itself is the shared `fine-tune` stage on the revision stage's training rows.
"""
from __future__ import annotations

from dataclasses import replace
from functools import partial

from prefect import task

from selfimprove.config import RunConfig
from selfimprove.inference import models
from selfimprove.verification import rewards
from selfimprove.methods.sdzero.revision import revise, training_rows
from selfimprove.methods.sdzero.config import CONTROL_PROMPTS, phases
from selfimprove.methods.sdzero.teacher import RevisionContext

from selfimprove.tasks.ui import say
from selfimprove.execution.base import ShardJob
from selfimprove.tasks.common import MODEL_STAGE, StageContext, engine, progress_bar, read, run_shards, run_stage, section
from selfimprove.tasks.distill import distill_rows, split_by_phase

_CONTROLS = tuple(CONTROL_PROMPTS.values())
PHASE_RULE = "hash+gradable/1"  # how seeds are assigned to phases (sdzero.phases); change it when that rule changes


def _reward(cfg, seeds: list[dict], candidates: list[dict]) -> rewards.Reward:
    """The run's reward. Self-verified labels come from every seed's candidates (ground truth is never read)."""
    return rewards.build(cfg.sdzero.reward, seeds, candidates, cfg.sdzero.scorer, cfg.sdzero.agreement_threshold,
                         cfg.sampling.answer_format)


def _reward_section(cfg: RunConfig) -> dict:
    sd = section(cfg, "sdzero")["sdzero"]
    sd.pop("distill")
    return {"sdzero": sd, "prompt": cfg.sampling.prompt, "answer_format": cfg.sampling.answer_format}


def revise_shard(reward, sd, prompt: str, answer_format: str, engine, chunk: list[dict], shard: int) -> dict:
    """One shard of Phase 1 (seeded by its index): the revision tuples and their SRT rows, rendered by the
    engine's own chat template wherever the shard runs."""
    seeds = [u["seed"] for u in chunk]
    rows = revise(engine, seeds, [c for u in chunk for c in u["candidates"]], reward, replace(sd, seed=sd.seed + 7919 * shard),
                  prompt, answer_format)
    return {"revisions": rows, "train_examples": training_rows(rows, seeds, engine.render, prompt)}


@task(name="revise-candidates", **MODEL_STAGE)
def revise_candidates(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, candidates_manifest: dict) -> dict:
    """Phase 1: grade y_init, append P_r inside the assistant turn, continue, grade the revision; SRT rows."""
    sd = cfg.sdzero

    def body(lake, shards):
        seeds = read(seeds_manifest, "seeds")
        cands = read(candidates_manifest, "candidates")
        reward = _reward(cfg, seeds, cands)
        of = phases(seeds, sd.distill_share, sd.distill.val_size, reward.gradable)
        phase1 = [s for s in seeds if of[s["seed_id"]] == "revise"]
        usage: dict = {}
        by_seed: dict[str, list[dict]] = {}
        for c in cands:
            by_seed.setdefault(c["seed_id"], []).append(c)
        bar, tick = progress_bar(len(phase1), "revising", "seed")
        job = ShardJob(fn=partial(revise_shard, reward, sd, cfg.sampling.prompt, cfg.sampling.answer_format),
                       model=cfg.model, backend=cfg.backend)
        out = run_shards(cfg.executor, shards, [{"seed": s, "candidates": by_seed.get(s["seed_id"], [])} for s in phase1],
                         cfg.shard_seeds, job, tick, usage)
        bar.close()
        rows, train = out.get("revisions", []), out.get("train_examples", [])
        kept = sum(r["kept"] for r in rows)
        say(f"[revise] {len(rows)} tuples from {len(phase1)} Phase-1 seeds ({reward.source} reward): {kept} kept, "
              f"{len(train)} SRT rows")
        files = [lake.write("seed_phases", ctx.run_id, [{"seed_id": k, "phase": v} for k, v in of.items()]),
                 lake.write("revisions", ctx.run_id, rows), lake.write("train_examples", ctx.run_id, train)]
        return files, {"kept": kept, "tuples": len(rows), **usage}

    return run_stage(ctx, "revise", {"engine": engine(cfg.model, cfg.backend), **_reward_section(cfg),
                                     "val_size": sd.distill.val_size,  # seed_phases names the Phase-2 held-out seeds
                                     "phase_rule": PHASE_RULE,
                                     **section(cfg, "sampling", "shard_seeds")},
                     [seeds_manifest, candidates_manifest], body, (cfg.sampling.prompt, *_CONTROLS),
                     reads=("seeds", "candidates"))


@task(name="self-distill", **MODEL_STAGE)
def self_distill(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, candidates_manifest: dict, revise_manifest: dict,
                 train_manifest: dict) -> dict:
    """Phase 2 from the SRT checkpoint (the base model when SRT was skipped), on the Phase-2 seeds."""
    start = train_manifest.get("checkpoint") or cfg.model

    def body(lake, shards):
        seeds = read(seeds_manifest, "seeds")
        train_seeds, val_seeds = split_by_phase(seeds, read(revise_manifest, "seed_phases"))
        reward = _reward(cfg, seeds, read(candidates_manifest, "candidates"))
        if not train_seeds:  # e.g. no Phase-2 seed has a self-verified label: SD-Zero is the SRT model
            say("[distill] no gradable Phase-2 seeds: Phase 2 skipped, the SRT model is the result")
            return [], {"skipped": "no gradable Phase-2 seeds", "checkpoint": start}
        return distill_rows(ctx, lake, "sdzero", start, train_seeds, val_seeds, reward, cfg.sdzero.distill,
                            cfg.sampling.prompt, RevisionContext(), cfg.backend, "SD-Zero Phase 2")

    version = {"start": models.model_identity(models.resolve(start)), **_reward_section(cfg),
               "distill": section(cfg.sdzero, "distill")["distill"]}
    return run_stage(ctx, "distill", version, [seeds_manifest, candidates_manifest, revise_manifest], body,
                     (cfg.sampling.prompt, *_CONTROLS), reads=("seeds", "candidates", "seed_phases"))
