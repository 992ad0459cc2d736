"""Filtering: accepted candidates → training examples (prompt, completion)."""
from __future__ import annotations

from selfimprove.generation.sampling import SamplingConfig, seed_message


def select(seeds: list[dict], candidates: list[dict], verdicts: list[dict], mode: str, sampling: SamplingConfig) -> list[dict]:
    """`first_valid`: the earliest accepted candidate per seed; `all_valid`: every accepted one.

    The completion is the full sample (thinking included); the prompt is the sampler's own turn for the seed
    (its few-shot examples, if any, are left out: the model learns to answer without them).
    """
    accepted = {v["candidate_id"] for v in verdicts if v["accepted"]}
    seeds_by_id = {s["seed_id"]: s for s in seeds}
    rows, taken = [], set()
    for c in sorted(candidates, key=lambda c: (c["seed_id"], c["sample_index"])):
        if c["candidate_id"] not in accepted or (mode == "first_valid" and c["seed_id"] in taken):
            continue
        taken.add(c["seed_id"])
        rows.append({"candidate_id": c["candidate_id"], "seed_id": c["seed_id"],
                     "prompt": seed_message(seeds_by_id[c["seed_id"]], sampling)[-1]["content"],
                     "completion": c["text"]})
    return rows
