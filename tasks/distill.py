"""The body both on-policy distillation stages share (SD-Zero's Phase 2, OPSD): train, publish, write the rows.

`distill_rows` runs `selfimprove.training.self_distill.distill` with a method's teacher context and writes
the checkpoint, every step (`distill_log`), rollout (`distill_samples`) and sync (`teacher_syncs`), and the
Prefect artifacts; the stage tasks in `tasks/sdzero.py` and `tasks/opsd.py` choose seeds, reward and context.
"""
from __future__ import annotations

from selfimprove.inference import models
from selfimprove.inference.base import BackendConfig
from selfimprove.training.distill_config import DistillConfig
from selfimprove.training.self_distill import TeacherContext, distill
from selfimprove.storage import checkpoints
from selfimprove.tasks.common import StageContext, progress_bar, release_engines
from selfimprove.tasks.stages import checkpoint_row
from selfimprove.tasks.ui import table_artifact


def split_by_phase(seeds: list[dict], phase_rows: list[dict]) -> tuple[list[dict], list[dict]]:
    """(rolled-out seeds, held-out-reward seeds), in seed order, from rows of (seed_id, phase)."""
    of = {r["seed_id"]: r["phase"] for r in phase_rows}
    return ([s for s in seeds if of.get(s["seed_id"]) == "distill"],
            [s for s in seeds if of.get(s["seed_id"]) == "distill_val"])


def distill_rows(ctx: StageContext, lake, method: str, start: str, train_seeds: list[dict], val_seeds: list[dict],
                 reward, config: DistillConfig, prompt: str, teacher_context: TeacherContext, backend: BackendConfig,
                 title: str) -> tuple[list, dict]:
    """(files written, manifest fields) of one distillation from `start`; `title` names it in the artifacts."""
    release_engines()  # no engine holds memory while the student trains
    checkpoint_id = f"{ctx.run_id}-{method}"
    out = checkpoints.staging_dir(ctx.lake, checkpoint_id)
    bar, tick = progress_bar(config.steps, "self-distilling", "step")
    result = distill(models.resolve(start), train_seeds, val_seeds, reward, config, prompt, out, teacher_context,
                     progress=tick, device=_device(backend.device), prompt_format=backend.prompt_format)
    bar.close()
    result["path"] = checkpoints.publish(ctx.lake, out, checkpoint_id)
    trained = [s for s in result["steps"] if s.get("loss") is not None]
    final_loss = trained[-1]["loss"] if trained else float("nan")
    # the student trains on its own rollouts (distill_samples), not on train_examples rows
    row = checkpoint_row(checkpoint_id, result["path"], str(models.resolve(start)), [], len(trained), final_loss, method)
    row["examples"] = len(result["samples"])
    files = [lake.write("checkpoints", ctx.run_id, [row]), lake.write("distill_log", ctx.run_id, result["steps"]),
             lake.write("distill_samples", ctx.run_id, result["samples"]),
             lake.write("teacher_syncs", ctx.run_id, result["syncs"])]
    _artifact(ctx.run_id, method, title, result)
    return files, {"checkpoint": result["path"], "start": str(start), "syncs": len(result["syncs"]),
                   "final_loss": final_loss, "saved_step": result["saved_step"]}


def _device(device: str) -> str:
    return device if device in ("cpu", "cuda") or device.startswith("cuda:") else "auto"


def _artifact(run_id: str, method: str, title: str, result: dict) -> None:
    """Per-step training metrics and the syncs as Prefect table artifacts."""
    keys = ("step", "loss", "kl_reverse", "mean_reward", "response_tokens", "val_reward", "teacher_syncs", "seconds")
    table_artifact(f"{method}-distill-steps", [{k: s.get(k) for k in keys} for s in result["steps"]],
                   f"{title}, one row per optimiser step of run {run_id}: divergence loss, reverse KL, "
                   "rollout reward, response length, held-out reward (val_reward) and teacher syncs so far")
    table_artifact(f"{method}-teacher-syncs", result["syncs"] or [{"step": None, "reason": "no sync", "val_reward": None}],
                   f"When run {run_id}'s frozen teacher was replaced by the student, why, and at what held-out reward")
