"""Which verifiers carry signal on a model: the calibration flow on fixed generated seeds.

    python bench/verifier_signal.py [--model default] [--seeds 48] [--lake bench-lake] [--reuse RUN_ID]

Samples n=8 candidates per seed (quickstart sampling), runs every verifier on every
candidate, and prints precision, recall, accept rate and AUROC with 95 % bootstrap
intervals per verifier, plus the cascade `calibrate` recommends.
"""
from __future__ import annotations

import argparse

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.flows.calibrate import calibrate


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", default="default")
    ap.add_argument("--seeds", type=int, default=48)
    ap.add_argument("--lake", default="bench-lake")
    ap.add_argument("--reuse")
    args = ap.parse_args()
    result = calibrate(model=args.model, seeds_size=args.seeds, lake=args.lake, reuse=args.reuse)
    print(result["summary"])


if __name__ == "__main__":
    main()
