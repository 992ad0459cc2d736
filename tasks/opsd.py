"""The OPSD stages as Prefect tasks: each seed's privileged information, then the distillation that reads it.

The SFT warm start, where asked, is the shared `fine-tune` stage on the run's accepted examples.
"""
from __future__ import annotations

from prefect import task

from selfimprove.config import RunConfig
from selfimprove.inference import models
from selfimprove.methods.opsd.privileged import PrivilegedContext, privileged_rows, prompt_names
from selfimprove.verification import rewards
from selfimprove.tasks.common import MODEL_STAGE, StageContext, read, run_stage, section
from selfimprove.tasks.distill import distill_rows, split_by_phase
from selfimprove.tasks.ui import say


def _reward(cfg: RunConfig, seeds: list[dict], candidates: list[dict]) -> rewards.Reward:
    """Grades rollouts and the held-out checks. Self-verified labels come from the candidates (no answer read)."""
    o = cfg.opsd
    return rewards.build(o.reward_source, seeds, candidates, o.scorer, o.agreement_threshold, cfg.sampling.answer_format)


def _candidates(manifest: dict | None) -> list[dict]:
    return read(manifest, "candidates") if manifest else []  # a ground-truth reward reads none


def _pi_section(cfg: RunConfig) -> dict:
    o = section(cfg, "opsd")["opsd"]
    o.pop("distill")
    return {"opsd": o, "reward": cfg.opsd.reward_source, "prompt": cfg.sampling.prompt,
            "answer_format": cfg.sampling.answer_format, "val_size": cfg.opsd.distill.val_size}


@task(name="privileged-info")
def privileged_info(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, candidates_manifest: dict | None,
                    select_manifest: dict | None) -> dict:
    """Each seed's phase and PI (`privileged_info`): what the teacher, and only the teacher, will read."""
    o = cfg.opsd

    def body(lake, shards):
        seeds = read(seeds_manifest, "seeds")
        accepted = {e["seed_id"]: e for e in read(select_manifest, "train_examples")} if select_manifest else {}
        reward = _reward(cfg, seeds, _candidates(candidates_manifest))
        rows = privileged_rows(seeds, o.pi, accepted, o.rule, o.distill.val_size, reward.gradable)
        count = {p: sum(r["phase"] == p for r in rows) for p in ("distill", "distill_val", "no_pi")}
        say(f"[privileged] {o.pi} PI for {count['distill']} seeds; {count['distill_val']} held out for the reward "
            f"check ({reward.source}); {count['no_pi']} skipped with no PI"
            + (" (the cascade accepted no candidate)" if o.pi == "self_verified" else ""))
        return [lake.write("privileged_info", ctx.run_id, rows)], {**count, "pi_source": o.pi}

    inputs = [m for m in (seeds_manifest, candidates_manifest, select_manifest) if m]
    return run_stage(ctx, "privileged", _pi_section(cfg), inputs, body, prompt_names(o.pi, o.rule),
                     reads=("seeds", "candidates", "train_examples"))


@task(name="opsd-distill", **MODEL_STAGE)
def opsd_distill(ctx: StageContext, cfg: RunConfig, seeds_manifest: dict, candidates_manifest: dict | None,
                 privileged_manifest: dict, train_manifest: dict | None) -> dict:
    """On-policy distillation from the warm-start checkpoint (else the run's model), teacher reading the PI."""
    start = (train_manifest or {}).get("checkpoint") or cfg.model

    def body(lake, shards):
        seeds = read(seeds_manifest, "seeds")
        rows = read(privileged_manifest, "privileged_info")
        train_seeds, val_seeds = split_by_phase(seeds, rows)
        if not train_seeds:
            say("[distill] no seed has privileged information: nothing distilled, the starting model is the result")
            return [], {"skipped": "no seed with privileged information", "checkpoint": start}
        reward = _reward(cfg, seeds, _candidates(candidates_manifest))
        return distill_rows(ctx, lake, "opsd", start, train_seeds, val_seeds, reward, cfg.opsd.distill,
                            cfg.sampling.prompt, PrivilegedContext(rows), cfg.backend, f"OPSD ({cfg.opsd.pi} PI)")

    version = {"start": models.model_identity(models.resolve(start)), **_pi_section(cfg),
               "distill": section(cfg.opsd, "distill")["distill"]}
    inputs = [m for m in (seeds_manifest, candidates_manifest, privileged_manifest) if m]
    return run_stage(ctx, "distill", version, inputs, body,
                     (cfg.sampling.prompt, *prompt_names(cfg.opsd.pi, cfg.opsd.rule)),
                     reads=("seeds", "candidates", "privileged_info"))
