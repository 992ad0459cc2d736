"""The OPSD flow: on-policy self-distillation from the same model reading privileged information (PI).

seeds → candidates (unless the PI and the reward are ground truth) → (verdicts → accepted examples, when
the PI quotes them or the student is warm-started on them) → privileged information → contamination
guard → (SFT warm start) → distillation on the student's own rollouts, the teacher reading the question
plus PI and the student the question alone → held-out evaluation of the base, warm-start and OPSD models
on the same items as every other method.
"""
from __future__ import annotations

from prefect import flow

from selfimprove.flows.parameters import documented

from selfimprove.tasks.opsd import opsd_distill, privileged_info
from selfimprove.tasks.report import summarize_run
from selfimprove.tasks.stages import (fine_tune, guard_contamination, ingest_seeds, judge_candidates, sample_candidates,
                                      select_examples)

from selfimprove.flows.pipeline import evaluate_models, evaluations, prepare_run, start_run, with_options

STAGES = ("seeds", "candidates", "judge", "select", "privileged", "contamination", "train", "distill",
          *evaluations("sft", "tuned"))


@flow(name="opsd")
@documented("opsd")
def opsd(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
         overrides: dict | None = None, run_id: str | None = None, pi: str | None = None, reuse: str | None = None,
         from_stage: str | None = None, cache: bool = True, method: str | None = None) -> dict:
    """OPSD: the student learns, on its own rollouts, what the same model predicts when it also reads privileged
    information; `method` empty picks the one the PI source needs."""
    overrides = with_options("opsd", method, overrides, {"pi": pi})
    cfg, prompting = prepare_run("opsd", preset, config_file, overrides, method, lake, run_id, reuse, from_stage,
                                 stages=STAGES)
    with start_run("opsd", cfg, preset, lake, run_id, reuse, from_stage, cache, prompting, STAGES) as ctx:
        m: dict[str, dict] = {}
        m["seeds"] = ingest_seeds(ctx, cfg)
        if cfg.opsd.needs_candidates:  # a ground-truth PI graded by ground truth reads no sample of its own
            m["candidates"] = sample_candidates(ctx, cfg, m["seeds"])
        if cfg.opsd.needs_accepted:
            m["judge"] = judge_candidates(ctx, cfg, m["seeds"], m["candidates"])
            m["select"] = select_examples(ctx, cfg, m["seeds"], m["candidates"], m["judge"])
        m["privileged"] = privileged_info(ctx, cfg, m["seeds"], m.get("candidates"), m.get("select"))
        if cfg.contamination.enabled:
            m["contamination"] = guard_contamination(ctx, cfg, m["seeds"], m["privileged"],
                                                     m["select"] if cfg.opsd.warm_start else None)
        if cfg.opsd.warm_start:
            m["train"] = fine_tune(ctx, cfg, m["select"])
        m["distill"] = opsd_distill(ctx, cfg, m["seeds"], m.get("candidates"), m["privileged"], m.get("train"))
        evaluate_models(ctx, cfg, m["seeds"], {"base": cfg.model, "sft": (m.get("train") or {}).get("checkpoint"),
                                               "tuned": m["distill"]["checkpoint"]}, m)
        return summarize_run(ctx, cfg, m)
