"""Rule filters of the sister methods: verdicts without a model judge.

- `ssd_length` (SSD): no verification; drop empty outputs and the shortest `drop_shortest`
  share of the rest by generated length; keep every other raw sample.
- `ground_truth` (RFT): keep the samples the ground-truth scorer marks correct against the
  seed's answer; seeds without an answer are an error, named.
Verdict rows have the cascade's shape (accepted, rejected_at_stage, reason), so one SQL
query compares methods.
"""
from __future__ import annotations

from dataclasses import dataclass

from selfimprove.scoring.scorers import get_scorer, scorer_for
from selfimprove.validation import Share

RULES = ("none", "ssd_length", "ground_truth")


@dataclass
class FilterConfig:
    """A rule that decides instead of the judge cascade (`none` = the cascade decides)."""

    rule: str = "none"  # none | ssd_length (SSD) | ground_truth (RFT)
    drop_shortest: Share = 0.10  # ssd_length: share of non-empty samples dropped, shortest first (paper: 10 %)
    scorer: str = "math"  # ground_truth: how a math/science sample is checked (other domains: their own scorer)

    def __post_init__(self) -> None:
        if self.rule not in RULES:
            raise ValueError(f"filter.rule must be one of {RULES}, got {self.rule!r}")
        if not 0 <= self.drop_shortest < 1:
            raise ValueError("filter.drop_shortest must be in [0, 1)")


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


def apply(config: FilterConfig, seeds: list[dict], candidates: list[dict], answer_format: str) -> list[dict]:
    if config.rule == "ssd_length":
        return ssd_length(candidates, config)
    if config.rule == "ground_truth":
        return ground_truth(seeds, candidates, config, answer_format)
    raise ValueError("filter rule 'none' means the judge cascade decides")
