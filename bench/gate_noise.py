"""How often each promotion-gate rule refuses a challenger that is not worse, on guard sets of the track's size.

    python bench/gate_noise.py --lake LAKE --run RUN [--size 100] [--draws 2000] [--tolerance 0.02] [--worse 0.1]

A null built from measured outcomes: the run's base and tuned models' per-item results on its held-out items
give the real share of items the two answer differently. Each draw takes `size` items at random (with
replacement) and swaps the two models' results on each item with probability 1/2, so the challenger is, by
construction, exactly as good as the champion, while the items disagree as often as two real models do. The old
rule refuses when the guard delta is below -tolerance; the paired rule when the delta's whole 95 % bootstrap
interval is. Reported: the share of draws each rule refuses (the first is a false refusal rate). `--worse W`
also draws challengers that really are W worse (each of its right answers turned wrong with the probability that
removes W of pass@1 in expectation), and reports how often each rule refuses those (its power).
"""
from __future__ import annotations

import argparse
import random

import selfimprove.flows  # noqa: F401  (offline environment defaults)
from selfimprove.evaluation.heldout import EvalConfig, paired_difference
from selfimprove.reporting.evidence import eval_rows
from selfimprove.rounds.config import TrackConfig
from selfimprove.rounds.gate import Evidence, decide
from selfimprove.warehouse import Lake


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--lake", required=True)
    parser.add_argument("--run", required=True)
    parser.add_argument("--size", type=int, default=100)
    parser.add_argument("--draws", type=int, default=2000)
    parser.add_argument("--tolerance", type=float, default=0.02)
    parser.add_argument("--worse", type=float, default=0.10)
    args = parser.parse_args()
    lake = Lake(args.lake)
    base = {r["item_id"]: r["correct"] for r in eval_rows(lake, args.run, "base")}
    tuned = {r["item_id"]: r["correct"] for r in eval_rows(lake, args.run, "tuned")}
    pairs = [(bool(base[i]), bool(tuned[i])) for i in sorted(set(base) & set(tuned))]
    discordant = sum(a != b for a, b in pairs) / len(pairs)
    track = TrackConfig(name="noise", margin=-1.0, guard_tolerance=args.tolerance)
    rng = random.Random(0)
    right = sum(a for a, _ in pairs) / len(pairs)
    worse = {"not worse": 0.0, f"{args.worse:.0%} worse": min(1.0, args.worse / right) if right else 0.0}
    refused = {(null, rule): 0 for null in worse for rule in ("point (old)", "paired interval (new)")}
    for null, flip in worse.items():
        for _ in range(args.draws):
            drawn = [rng.choice(pairs) for _ in range(args.size)]
            drawn = [(a, b) if rng.random() < 0.5 else (b, a) for a, b in drawn]
            drawn = [(a, b and rng.random() >= flip) for a, b in drawn]
            d = paired_difference(_rows([a for a, _ in drawn]), _rows([b for _, b in drawn]), EvalConfig(), "guard")
            held_out = dict(delta=0.1, ci_low=0.05, ci_high=0.15, n=200)  # the held-out evidence passes: the guard decides
            refused[(null, "point (old)")] += not decide(Evidence(**held_out, guard_delta=d["value"]), track)[0]
            refused[(null, "paired interval (new)")] += not decide(Evidence(
                **held_out, guard_delta=d["value"], guard_ci_low=d["ci_low"], guard_ci_high=d["ci_high"]), track)[0]
    print(f"run {args.run}: {len(pairs)} held-out items, base and tuned disagree on {discordant:.1%}; "
          f"{args.draws} null draws of {args.size} guard items (a challenger exactly as good), tolerance {args.tolerance}")
    for (null, rule), n in refused.items():
        print(f"{rule:<24} refuses {n / args.draws:6.1%} of challengers {null}")


def _rows(correct: list[bool]) -> list[dict]:
    return [{"dataset": "g", "item_id": str(i), "sample_index": 0, "correct": c} for i, c in enumerate(correct)]


if __name__ == "__main__":
    main()
