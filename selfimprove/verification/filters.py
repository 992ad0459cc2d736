"""Rule filters of the sister methods: verdicts without a model judge.

- `ssd_length` (SSD): no verification; drop empty outputs and the shortest `drop_shortest`
  share of the rest by generated length; keep every other raw sample.
- `ground_truth` (RFT): keep the samples the ground-truth scorer marks correct against the
  seed's answer; seeds without an answer are an error, named.
- `random_keep` (the placebo): `keep` candidates drawn uniformly (seeded) from those that pass the
  cascade's format pre-filter, at most one per seed: the same number of training rows as the filter
  it controls kept, without its judgement, so a gain the filter's run shows over it is the filter's.
Verdict rows have the cascade's shape (accepted, rejected_at_stage, reason), so one SQL
query compares methods.
"""
from __future__ import annotations

import random
from dataclasses import dataclass

from selfimprove.scoring.answers import format_problem
from selfimprove.scoring.scorers import get_scorer, scorer_for
from selfimprove.validation import AtLeast0, Share

RULES = ("none", "ssd_length", "ground_truth", "random_keep")


@dataclass
class FilterConfig:
    """A rule that decides instead of the judge cascade (`none` = the cascade decides)."""

    rule: str = "none"  # none | ssd_length (SSD) | ground_truth (RFT) | random_keep (the placebo)
    drop_shortest: Share = 0.10  # ssd_length: share of non-empty samples dropped, shortest first (paper: 10 %)
    scorer: str = "math"  # ground_truth: how a math/science sample is checked (other domains: their own scorer)
    keep: AtLeast0 | None = None  # random_keep: candidates kept; None: as many as the reused run (--reuse) kept
    seed: int = 0  # random_keep: the seed of the draw

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"filter.rule must be one of {RULES}, got {self.rule!r}")
        if not 0 <= self.drop_shortest < 1:
            raise ValueError("filter.drop_shortest must be in [0, 1)")

    @property
    def sized_by_reuse(self) -> bool:
        """Whether the run's start must set `keep` from the run it reuses (the placebo of that run's filter)."""
        return self.rule == "random_keep" and self.keep is None


def _verdict(c: dict, accepted: bool, stage: str | None, reason: str) -> dict:
    return {"candidate_id": c["candidate_id"], "accepted": accepted, "rejected_at_stage": stage, "reason": reason}


def ssd_length(candidates: list[dict], config: FilterConfig) -> list[dict]:
    usable = [c for c in candidates if not c.get("error") and c["text"].strip()]
    ranked = sorted(usable, key=lambda c: (c["n_tokens"], c["candidate_id"]))
    dropped = {c["candidate_id"] for c in ranked[:int(len(ranked) * config.drop_shortest)]}
    cutoff = max((c["n_tokens"] for c in ranked if c["candidate_id"] in dropped), default=0)
    out = []
    for c in candidates:
        if c.get("error"):
            out.append(_verdict(c, False, "error", c["error"]))
        elif not c["text"].strip():
            out.append(_verdict(c, False, "empty", "empty output"))
        elif c["candidate_id"] in dropped:
            out.append(_verdict(c, False, "length", f"among the shortest {config.drop_shortest:.0%} ({c['n_tokens']} <= {cutoff} tokens)"))
        else:
            out.append(_verdict(c, True, None, "ssd: raw sample kept (no verification)"))
    return out


def ground_truth(seeds: list[dict], candidates: list[dict], config: FilterConfig, answer_format: str) -> list[dict]:
    missing = [s["seed_id"] for s in seeds if not s.get("answer")]
    if missing:
        raise ValueError(f"RFT needs a ground-truth answer for every seed; {len(missing)} of {len(seeds)} have none "
                         f"(first: {missing[0]!r}). Give seeds with an `answer` field, or use svd/ssd.")
    by_id = {s["seed_id"]: s for s in seeds}
    out = []
    for c in candidates:
        if c.get("error"):
            out.append(_verdict(c, False, "error", c["error"]))
            continue
        seed = by_id[c["seed_id"]]
        kind = config.scorer if seed["domain"] in ("math", "science") else scorer_for(seed["domain"])
        s = get_scorer(kind, answer_format).score(c["text"], seed)
        if s.correct:
            out.append(_verdict(c, True, None, f"ground truth: correct ({s.extracted})"))
        else:
            what = "no final answer" if s.extracted is None else f"{s.reason}: {s.extracted!r} vs {seed['answer']!r}"
            out.append(_verdict(c, False, "ground_truth", what))
    return out


def random_keep(candidates: list[dict], config: FilterConfig, thinking: bool = False) -> list[dict]:
    """`config.keep` seeds drawn uniformly (seeded) among those with a format-valid candidate, and one of each
    one's valid candidates drawn the same way; every other candidate is rejected, saying why."""
    if config.keep is None:
        raise ValueError("random_keep needs filter.keep (or --reuse RUN_ID: as many as that run kept)")
    problems = {c["candidate_id"]: "error" if c.get("error") else format_problem(c["text"], c["final_answer"], thinking)
                for c in candidates}
    valid: dict[str, list[dict]] = {}
    for c in sorted(candidates, key=lambda c: (c["seed_id"], c["sample_index"])):
        if not problems[c["candidate_id"]]:
            valid.setdefault(c["seed_id"], []).append(c)
    rng = random.Random(config.seed)
    drawn_seeds = sorted(valid)
    rng.shuffle(drawn_seeds)
    drawn_seeds = drawn_seeds[:config.keep]
    kept = {rng.choice(valid[s])["candidate_id"] for s in sorted(drawn_seeds)}
    out = []
    for c in candidates:
        problem = problems[c["candidate_id"]]
        if problem == "error":
            out.append(_verdict(c, False, "error", c["error"]))
        elif problem:
            out.append(_verdict(c, False, "format", problem))
        elif c["candidate_id"] in kept:
            out.append(_verdict(c, True, None, f"placebo: drawn at random ({len(kept)} of {len(valid)} seeds "
                                               "with a valid candidate)"))
        else:
            out.append(_verdict(c, False, "placebo", "not drawn"))
    return out


def apply(config: FilterConfig, seeds: list[dict], candidates: list[dict], answer_format: str,
          thinking: bool = False) -> list[dict]:
    """The rule's verdicts; `thinking`: the sampler thinks, so the format pre-filter wants a closed thought."""
    if config.rule == "ssd_length":
        return ssd_length(candidates, config)
    if config.rule == "ground_truth":
        return ground_truth(seeds, candidates, config, answer_format)
    if config.rule == "random_keep":
        return random_keep(candidates, config, thinking)
    raise ValueError("filter rule 'none' means the judge cascade decides")
