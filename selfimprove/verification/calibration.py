"""Calibration: which verifiers carry signal for this model, and the cascade they suggest.

Every verifier runs advisory (`gate: false`) on every candidate of seeds with ground
truth; `telemetry.stage_metrics` gives precision, recall and AUROC with bootstrap
intervals. A verifier carries signal when its AUROC interval lies above 0.5. The
recommended cascade is built greedily: a verifier is kept only if it still carries signal
on the candidates that pass the verifiers kept before it; probability judges get the
threshold that maximises TPR − FPR on those candidates.
"""
from __future__ import annotations

import json

from selfimprove.verification.judges import StageConfig
from selfimprove.verification.telemetry import vote_score, with_intervals

SIGNAL_FLOOR = 0.5  # AUROC lower bound above which a verifier is said to carry signal
MIN_PER_CLASS = 5  # right and wrong survivors each needed before an AUROC interval means anything


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
              stages: list[StageConfig], resamples: int = 200) -> tuple[list[dict], list[str]]:
    """Greedy forward selection: (recommended stage configs as dicts, one line per verifier).

    Verifiers are tried strongest first (by AUROC over all candidates). A verifier joins the
    cascade only if it still separates right from wrong among the candidates that pass the
    gates chosen before it (AUROC interval above 0.5 on those survivors): a judge that is
    informative alone can be redundant after agreement.
    """
    overall = {m["stage"]: m for m in metrics if m["metric"] == "auroc"}
    per: dict[str, dict[str, list[dict]]] = {}
    for j in judgments:
        if j["decision"] and j["candidate_id"] in labels:
            per.setdefault(j["stage"], {}).setdefault(j["candidate_id"], []).append(j)
    order = sorted((s for s in stages if s.name in overall), key=lambda s: -overall[s.name]["value"])
    notes = [f"{s.name}: no labelled candidates, no verdict on signal" for s in stages if s.name not in overall]
    survivors = set(labels)
    chosen: list[dict] = []
    for stage in order:
        m = overall[stage.name]
        head = f"{stage.name}: AUROC {m['value']:.2f} [{_f(m.get('ci_low'))}, {_f(m.get('ci_high'))}] over all"
        ids = sorted(c for c in per.get(stage.name, {}) if c in survivors)
        scores = [vote_score(per[stage.name][c]) for c in ids]
        y = [labels[c] for c in ids]
        right, wrong = sum(y), len(y) - sum(y)
        if min(right, wrong) < MIN_PER_CLASS:
            notes.append(f"{head}; {right} right / {wrong} wrong survivors of the gates before it → left out "
                         f"(fewer than {MIN_PER_CLASS} of a class: nothing left to measure)")
            continue
        value, lo, hi = with_intervals([True] * len(ids), scores, y, resamples)["auroc"]
        where = f"{value:.2f} [{_f(lo)}, {_f(hi)}] on {len(ids)} survivors"
        if lo is None or lo <= SIGNAL_FLOOR or (stage.scoring == "sample" and stage.strategy != "agreement"):
            reason = "no signal beyond the gates before it" if lo is None or lo <= SIGNAL_FLOOR \
                else "sampled verdicts have no threshold to set"
            notes.append(f"{head}; {where} → left out ({reason})")
            continue
        if stage.strategy == "agreement":
            threshold = stage.threshold
            chosen.append({"strategy": "agreement", "threshold": threshold})
        else:
            threshold = round(best_threshold(scores, y), 4)
            chosen.append({"strategy": stage.strategy, "votes": stage.votes, "scoring": "probability",
                           "threshold": threshold, "max_new_tokens": stage.max_new_tokens})
        survivors = {c for c, sc in zip(ids, scores) if sc >= threshold}
        notes.append(f"{head}; {where} → kept (threshold {threshold})")
    return chosen, notes


def recommended_yaml(stages: list[dict]) -> str:
    """The cascade as a config snippet for `--config FILE`."""
    return "cascade:\n  stages:\n" + "".join(f"    - {json.dumps(s)}\n" for s in stages)


def _f(v) -> str:
    return "-" if v is None else f"{v:.2f}"


