"""Seconds per SD-Zero Phase-2 step (rollout + teacher + student forward/backward), float32 against
bfloat16 autocast, on the embedded model, in one run. Usage: python bench/distill_step.py [steps]"""
from __future__ import annotations

import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from selfimprove.inference import models  # noqa: E402
from selfimprove.data import seeds as seedlib
from selfimprove.verification.rewards import GroundTruthReward  # noqa: E402
from selfimprove.training.distill_config import DistillConfig  # noqa: E402
from selfimprove.methods.sdzero.teacher import RevisionContext  # noqa: E402
from selfimprove.training.self_distill import Distiller  # noqa: E402


def main(steps: int = 3) -> None:
    seeds = seedlib.generate(seedlib.SeedSource(size=8 * steps))
    reward, times = GroundTruthReward(), {}
    for autocast in ("float32", "bfloat16"):
        d = Distiller(models.resolve("default"), DistillConfig(autocast=autocast), "sample_math", RevisionContext(), device="cpu")
        d.step(seeds[:8], reward, seed=0)  # warm-up
        start, tokens = time.time(), 0
        for k in range(steps):
            metrics, _ = d.step(seeds[8 * k: 8 * k + 8], reward, seed=k)
            tokens += metrics["loss_tokens"]
        times[autocast] = (time.time() - start) / steps
        print(f"{autocast}: {times[autocast]:.2f} s/step, {tokens / steps:.0f} loss tokens/step")
    print(f"bfloat16 / float32 time ratio: {times['bfloat16'] / times['float32']:.3f}")


if __name__ == "__main__":
    main(int(sys.argv[1]) if len(sys.argv) > 1 else 3)
