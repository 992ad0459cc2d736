"""Calibration: which verifiers carry signal for this model, and the cascade they suggest.

Every verifier runs advisory (`gate: false`) on every candidate of seeds with ground
truth; `telemetry.stage_metrics` gives precision, recall and AUROC with bootstrap
intervals. A verifier carries signal when its AUROC interval lies above 0.5. The
recommended cascade keeps those verifiers, in cost order, as gates; probability judges
get the threshold that maximises TPR − FPR on the calibration candidates.
"""
from __future__ import annotations

from .judges import StageConfig, combine
from .telemetry import _vote_score

SIGNAL_FLOOR = 0.5  # AUROC lower bound above which a verifier is said to carry signal


def calibration_stages(agreement_threshold: float = 0.5, votes: int = 2) -> list[StageConfig]:
    """Every verifier, advisory, cheapest first."""
    return [
        StageConfig("agreement", threshold=agreement_threshold, gate=False),
        StageConfig("correctness", scoring="probability", gate=False),
        StageConfig("factuality", scoring="probability", gate=False),
        StageConfig("cycle_consistency", votes=votes, scoring="probability", gate=False, max_new_tokens=48),
        StageConfig("correctness", name="correctness_sampled", votes=votes, scoring="sample", gate=False,
                    max_new_tokens=48),
    ]


def best_threshold(scores: list[float], labels: list[bool]) -> float:
    """The score cut that maximises TPR − FPR (Youden's J)."""
    pos, neg = sum(labels), len(labels) - sum(labels)
    best, best_j = 0.5, -1.0
    for t in sorted(set(scores)):
        tpr = sum(s >= t and y for s, y in zip(scores, labels)) / pos if pos else 0.0
        fpr = sum(s >= t and not y for s, y in zip(scores, labels)) / neg if neg else 0.0
        if tpr - fpr > best_j:
            best, best_j = t, tpr - fpr
    return best


def recommend(metrics: list[dict], judgments: list[dict], labels: dict[str, bool],
              stages: list[StageConfig]) -> tuple[list[dict], list[str]]:
    """(recommended stage configs as dicts, one line of reasoning per verifier)."""
    auroc = {m["stage"]: m for m in metrics if m["metric"] == "auroc"}
    chosen, notes = [], []
    for stage in stages:
        m = auroc.get(stage.name)
        if m is None:
            notes.append(f"{stage.name}: no labelled candidates, no verdict on signal")
            continue
        lo = m.get("ci_low")
        carries = lo is not None and lo > SIGNAL_FLOOR
        notes.append(f"{stage.name}: AUROC {m['value']:.2f} [{_f(lo)}, {_f(m.get('ci_high'))}] → "
                     + ("carries signal" if carries else "indistinguishable from chance: left out"))
        if not carries:
            continue
        if stage.strategy == "agreement":
            chosen.append({"strategy": "agreement", "threshold": stage.threshold})
        elif stage.scoring == "probability":
            per: dict[str, list[dict]] = {}
            for j in judgments:
                if j["stage"] == stage.name and j["decision"] and j["candidate_id"] in labels:
                    per.setdefault(j["candidate_id"], []).append(j)
            ids = list(per)
            t = best_threshold([_vote_score(per[c]) for c in ids], [labels[c] for c in ids])
            chosen.append({"strategy": stage.strategy, "votes": stage.votes, "scoring": "probability",
                           "threshold": round(t, 4), "max_new_tokens": stage.max_new_tokens})
        else:
            chosen.append({"strategy": stage.strategy, "votes": stage.votes, "scoring": stage.scoring,
                           "rule": "majority", "max_new_tokens": stage.max_new_tokens})
    seen = set()
    unique = [c for c in chosen if not (c["strategy"] in seen or seen.add(c["strategy"]))]
    return unique, notes


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


__all__ = ["calibration_stages", "recommend", "best_threshold", "combine"]
