"""The SD-Zero flow: self-revision training (SRT), then on-policy self-distillation from a frozen teacher.

seeds → candidates → revisions (Phase 1 on its share of the seeds) → contamination guard →
SRT fine-tuning → self-distillation (Phase 2 on the other, disjoint share) → held-out evaluation
of the base, SRT and SD-Zero models on the same items as every other method.
The reward is `ground_truth` (the seeds' answers) or `self_verified` (agreement labels; no
ground truth is read).
"""
from __future__ import annotations

from prefect import flow

from selfimprove.flows.parameters import documented

from selfimprove.tasks.report import summarize_run
from selfimprove.tasks.sdzero import revise_candidates, self_distill
from selfimprove.tasks.stages import fine_tune, guard_contamination, ingest_seeds, sample_candidates

from selfimprove.flows.pipeline import evaluate_models, evaluations, face_gate, prepare_run, start_run, with_options
from selfimprove.tasks.rounds import accumulate_examples

STAGES = ("seeds", "candidates", "revise", "contamination", "accumulate", "train", "distill",
          *evaluations("srt", "tuned"))


@flow(name="sdzero")
@documented("sdzero")
def sdzero(preset: str = "quickstart", config_file: str | None = None, lake: str | None = None,
           overrides: dict | None = None, run_id: str | None = None, reward: str | None = None,
           reuse: str | None = None, from_stage: str | None = None, cache: bool = True, method: str | None = None) -> dict:
    """SD-Zero: self-revision training (Phase 1), then on-policy self-distillation from a frozen teacher
    (Phase 2); `method` empty picks the one the reward needs (self_verified: 8 samples per seed)."""
    overrides = with_options("sdzero", method, overrides, {"reward": reward})
    cfg, prompting = prepare_run("sdzero", preset, config_file, overrides, method, lake, run_id, reuse, from_stage,
                                 stages=STAGES)
    with start_run("sdzero", cfg, preset, lake, run_id, reuse, from_stage, cache, prompting, STAGES) as ctx:
        m: dict[str, dict] = {}
        m["seeds"] = ingest_seeds(ctx, cfg)
        m["candidates"] = sample_candidates(ctx, cfg, m["seeds"])
        m["revise"] = revise_candidates(ctx, cfg, m["seeds"], m["candidates"])
        if cfg.contamination.enabled:
            m["contamination"] = guard_contamination(ctx, cfg, m["seeds"], m["revise"])
        if cfg.track.name and cfg.track.train_on == "accumulated":
            m["accumulate"] = accumulate_examples(ctx, cfg, m["revise"])
        m["train"] = fine_tune(ctx, cfg, m["revise"], m.get("accumulate"))
        m["distill"] = self_distill(ctx, cfg, m["seeds"], m["candidates"], m["revise"], m["train"])
        evaluate_models(ctx, cfg, m["seeds"], {"base": cfg.model, "srt": m["train"].get("checkpoint"),
                                               "tuned": m["distill"]["checkpoint"]}, m)
        if cfg.track.name:  # Phase 2's model against the champion the run started from
            face_gate(ctx, cfg, m, m["distill"])
        return summarize_run(ctx, cfg, m)
