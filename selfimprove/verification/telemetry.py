"""Judge telemetry: how well each stage separates right from wrong candidates.

Uses ground truth only when seeds carry it, and only to measure: the cascade never
reads it. One row per (stage, metric) with the number of candidates it is over.
"""
from __future__ import annotations

import random

from selfimprove.verification.judges import StageConfig
from selfimprove.verification.votes import combine
from selfimprove.scoring.scorers import get_scorer, scorer_for


def label_candidates(seeds: list[dict], candidates: list[dict], answer_format: str) -> dict[str, bool]:
    """candidate_id → ground-truth correctness by the seed's domain's scorer, for candidates whose seed has an
    answer (a code seed's answer is no test: code candidates are labelled only on held-out items with tests)."""
    seeds_by_id = {s["seed_id"]: s for s in seeds}
    labels = {}
    for c in candidates:
        seed = seeds_by_id[c["seed_id"]]
        if seed.get("answer") is None or seed["domain"] == "code":
            continue
        labels[c["candidate_id"]] = get_scorer(scorer_for(seed["domain"]), answer_format).score(c["text"], seed).correct
    return labels


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a random correct item scores above a random wrong one (ties count half)."""
    n_pos = sum(labels)
    n_neg = len(labels) - n_pos
    if not n_pos or not n_neg:
        return None
    order = sorted(range(len(scores)), key=lambda i: scores[i])
    ranks = [0.0] * len(scores)
    i = 0
    while i < len(order):  # average ranks over ties
        j = i
        while j + 1 < len(order) and scores[order[j + 1]] == scores[order[i]]:
            j += 1
        for k in range(i, j + 1):
            ranks[order[k]] = (i + j) / 2 + 1
        i = j + 1
    rank_sum = sum(r for r, y in zip(ranks, labels) if y)
    return (rank_sum - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg)


def _classifier_metrics(passed: list[bool], scores: list[float], labels: list[bool]) -> dict[str, float | None]:
    tp = sum(p and y for p, y in zip(passed, labels))
    acc, pos = sum(passed), sum(labels)
    return {"accept_rate": acc / len(passed), "precision": tp / acc if acc else None,
            "recall": tp / pos if pos else None, "auroc": auroc(scores, labels)}


def with_intervals(passed: list[bool], scores: list[float], labels: list[bool], resamples: int = 200,
                   seed: int = 0) -> dict[str, tuple[float | None, float | None, float | None]]:
    """Point estimate and 95 % bootstrap interval (resampling candidates) of each classifier metric."""
    point = _classifier_metrics(passed, scores, labels)
    rng = random.Random(seed)
    n = len(labels)
    draws: dict[str, list[float]] = {k: [] for k in point}
    for _ in range(resamples if n else 0):
        idx = [rng.randrange(n) for _ in range(n)]
        for k, v in _classifier_metrics([passed[i] for i in idx], [scores[i] for i in idx], [labels[i] for i in idx]).items():
            if v is not None:
                draws[k].append(v)
    out = {}
    for k, v in point.items():
        d = sorted(draws[k])
        out[k] = (v, d[int(0.025 * len(d))] if d else None, d[min(len(d) - 1, int(0.975 * len(d)))] if d else None)
    return out


def stage_metrics(judgments: list[dict], verdicts: list[dict], stages: list[StageConfig],
                  labels: dict[str, bool], resamples: int = 200) -> list[dict]:
    """judge_metrics rows; precision, recall, accept rate and AUROC carry 95 % bootstrap intervals."""
    rows: list[dict] = []

    def add(stage, metric, value, n, lo=None, hi=None):
        if value is not None:
            rows.append({"stage": stage, "metric": metric, "value": float(value), "n": int(n), "ci_low": lo, "ci_high": hi})

    for stage in stages:
        per_cand: dict[str, list[dict]] = {}
        for j in judgments:
            if j["stage"] == stage.name and j["decision"]:
                per_cand.setdefault(j["candidate_id"], []).append(j)
        if not per_cand:
            continue
        votes = [j for js in per_cand.values() for j in js]
        passed = {cid: combine([j["decision"] for j in js], stage) for cid, js in per_cand.items()}
        score_of = {cid: vote_score(js) for cid, js in per_cand.items()}
        labelled = [cid for cid in per_cand if cid in labels]
        add(stage.name, "judged", len(per_cand), len(per_cand))
        if len(labelled) < len(per_cand):  # else it comes with an interval below
            add(stage.name, "accept_rate", sum(passed.values()) / len(passed), len(passed))
        add(stage.name, "vote_agreement", sum(len({j["decision"] for j in js}) == 1 for js in per_cand.values()) / len(per_cand), len(per_cand))
        add(stage.name, "unparseable_rate", sum(j["decision"] == "unparseable" for j in votes) / len(votes), len(votes))
        if labelled:
            y = [labels[c] for c in labelled]
            stats = with_intervals([passed[c] for c in labelled], [score_of[c] for c in labelled], y, resamples)
            counts = {"accept_rate": len(y), "precision": sum(passed[c] for c in labelled), "recall": sum(y),
                      "auroc": len(y)}
            add(stage.name, "base_precision", sum(y) / len(y), len(y))
            for metric, (value, lo, hi) in stats.items():
                add(stage.name, metric, value, counts[metric], lo, hi)
    accepted = [v["candidate_id"] for v in verdicts if v["accepted"]]
    model_calls = sum(1 for j in judgments if j["model_call"])
    add("all", "accepted", len(accepted), len(verdicts))
    add("all", "judge_calls", model_calls, len(judgments))
    add("all", "judge_calls_per_accepted", model_calls / len(accepted) if accepted else None, len(accepted))
    acc_l = [c for c in accepted if c in labels]
    if acc_l:
        add("all", "precision", sum(labels[c] for c in acc_l) / len(acc_l), len(acc_l))
    if labels:
        add("all", "candidate_accuracy", sum(labels.values()) / len(labels), len(labels))
    return rows


def vote_score(js: list[dict]) -> float:
    """A candidate's continuous stage score: mean P(Y) where read, else the share of Y votes."""
    ps = [j["p_yes"] for j in js if j.get("p_yes") is not None]
    if ps:
        return sum(ps) / len(ps)
    return sum(j["decision"] == "Y" for j in js) / len(js)
