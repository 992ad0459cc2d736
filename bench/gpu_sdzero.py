"""Prove SD-Zero's CUDA paths on the tiny model (run on a GPU machine; see README "GPU").

bf16 batched generation on the GPU (sampling and Phase-1 revisions), SRT training through TRL
on the GPU, Phase-2 steps with student and teacher on the GPU under bf16 autocast, and a sync.
Prints one JSON line of what ran where. Usage: python bench/gpu_sdzero.py [out.json]
"""
from __future__ import annotations

import json
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfimprove.inference.base import BackendConfig
from selfimprove.inference.transformers_backend import TransformersBackend  # noqa: E402
from selfimprove.verification.rewards import Reward  # noqa: E402
from selfimprove.methods.sdzero.revision import revise, training_rows  # noqa: E402
from selfimprove.generation.sampling import SamplingConfig, sample  # noqa: E402
from selfimprove.methods.sdzero.config import SDZeroConfig  # noqa: E402
from selfimprove.training.distill_config import DistillConfig  # noqa: E402
from selfimprove.methods.sdzero.teacher import RevisionContext  # noqa: E402
from selfimprove.training.self_distill import Distiller  # noqa: E402
from selfimprove.training.sft import TrainConfig, train  # noqa: E402
from tests.tiny_model import build_tiny_model  # noqa: E402


class EvenLength(Reward):
    """A grader with both outcomes for a random-weight model (it cannot answer arithmetic)."""

    source = "even_length"

    def grade(self, seeds, texts):
        return [len(t) % 2 == 0 for t in texts]


def main() -> dict:
    assert torch.cuda.is_available(), "this check needs a GPU"
    work = Path(tempfile.mkdtemp())
    model = build_tiny_model(work / "tiny")
    seeds = [{"seed_id": f"s{i}", "domain": "math", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(32)]
    report: dict = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__}

    backend = TransformersBackend(model, BackendConfig(device="auto", dtype="bfloat16", batch_size=64))
    p = next(backend.model.parameters())
    report["backend"] = {"device": str(p.device), "dtype": str(p.dtype)}
    t = time.time()
    cands = sample(backend, seeds, SamplingConfig(n=4, max_new_tokens=24))
    rows = revise(backend, seeds, cands, EvenLength(), SDZeroConfig(init_per_seed=2, revise_max_new_tokens=24),
                  "sample_math", "boxed_or_last_number")
    report["phase1"] = {"candidates": len(cands), "tuples": len(rows), "kept": sum(r["kept"] for r in rows),
                        "generate_calls": backend.counters.generate_calls, "seconds": round(time.time() - t, 2)}

    train_rows = training_rows(rows, seeds, backend.render, "sample_math")
    t = time.time()
    srt = train(model, train_rows, work / "srt", TrainConfig(epochs=1, batch_size=8, max_length=256))
    report["srt"] = {"rows": len(train_rows), "steps": srt["steps"], "final_loss": srt["final_loss"],
                     "seconds": round(time.time() - t, 2)}

    d = Distiller(work / "srt", DistillConfig(batch_size=8, max_new_tokens=24, top_k=64), "sample_math", RevisionContext(),
                  device="auto")
    steps = []
    t = time.time()
    for k in range(4):
        metrics, _ = d.step(seeds[8 * k: 8 * k + 8], EvenLength(), seed=k)
        steps.append(metrics)
    d.sync()
    same = all(torch.equal(a, b) for a, b in zip(d.teacher.parameters(), d.student.parameters()))
    report["phase2"] = {"student_device": str(next(d.student.parameters()).device),
                        "teacher_device": str(next(d.teacher.parameters()).device),
                        "autocast": "bf16" if d.device == "cuda" else "none",
                        "losses": [round(s["loss"], 5) for s in steps], "graded": [s["graded"] for s in steps],
                        "synced_teacher_equals_student": same, "seconds": round(time.time() - t, 2),
                        "max_memory_mib": round(torch.cuda.max_memory_allocated() / 2**20, 1)}
    assert all(s["loss"] is not None and s["loss"] == s["loss"] for s in steps) and same
    return report


if __name__ == "__main__":
    out = main()
    print(json.dumps(out))
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_text(json.dumps(out, indent=1))
