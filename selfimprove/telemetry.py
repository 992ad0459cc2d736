"""Judge telemetry: how well each stage separates right from wrong candidates.

Uses ground truth only when seeds carry it, and only to measure: the cascade never
reads it. One row per (stage, metric) with the number of candidates it is over.
"""
from __future__ import annotations

from .judges import StageConfig, combine
from .scorers import score


def label_candidates(seeds: list[dict], candidates: list[dict], answer_format: str) -> dict[str, bool]:
    """candidate_id → ground-truth correctness, for candidates whose seed has an answer."""
    seeds_by_id = {s["seed_id"]: s for s in seeds}
    labels = {}
    for c in candidates:
        seed = seeds_by_id[c["seed_id"]]
        if seed.get("answer") is None:
            continue
        labels[c["candidate_id"]] = score(c["text"], seed["answer"], "math", None, answer_format, seed["domain"]).correct
    return labels


def auroc(scores: list[float], labels: list[bool]) -> float | None:
    """Probability that a random correct item scores above a random wrong one (ties count half)."""
    pos = [s for s, y in zip(scores, labels) if y]
    neg = [s for s, y in zip(scores, labels) if not y]
    if not pos or not neg:
        return None
    wins = sum((p > n) + 0.5 * (p == n) for p in pos for n in neg)
    return wins / (len(pos) * len(neg))


def stage_metrics(judgments: list[dict], verdicts: list[dict], stages: list[StageConfig],
                  labels: dict[str, bool]) -> list[dict]:
    rows: list[dict] = []

    def add(stage, metric, value, n):
        if value is not None:
            rows.append({"stage": stage, "metric": metric, "value": float(value), "n": int(n)})

    for stage in stages:
        per_cand: dict[str, list[dict]] = {}
        for j in judgments:
            if j["stage"] == stage.name and j["decision"]:
                per_cand.setdefault(j["candidate_id"], []).append(j)
        if not per_cand:
            continue
        votes = [j for js in per_cand.values() for j in js]
        passed = {cid: combine([j["decision"] for j in js], stage) for cid, js in per_cand.items()}
        score_of = {cid: _vote_score(js) for cid, js in per_cand.items()}
        add(stage.name, "judged", len(per_cand), len(per_cand))
        add(stage.name, "accept_rate", sum(passed.values()) / len(passed), len(passed))
        add(stage.name, "vote_agreement", sum(len({j["decision"] for j in js}) == 1 for js in per_cand.values()) / len(per_cand), len(per_cand))
        add(stage.name, "unparseable_rate", sum(j["decision"] == "unparseable" for j in votes) / len(votes), len(votes))
        labelled = [cid for cid in per_cand if cid in labels]
        if labelled:
            tp = sum(passed[c] and labels[c] for c in labelled)
            acc = sum(passed[c] for c in labelled)
            pos = sum(labels[c] for c in labelled)
            add(stage.name, "base_precision", pos / len(labelled), len(labelled))
            add(stage.name, "precision", tp / acc if acc else None, acc)
            add(stage.name, "recall", tp / pos if pos else None, pos)
            add(stage.name, "auroc", auroc([score_of[c] for c in labelled], [labels[c] for c in labelled]), len(labelled))
    accepted = [v["candidate_id"] for v in verdicts if v["accepted"]]
    model_calls = sum(1 for j in judgments if j["call"] != "agreement")
    add("all", "accepted", len(accepted), len(verdicts))
    add("all", "judge_calls", model_calls, len(judgments))
    add("all", "judge_calls_per_accepted", model_calls / len(accepted) if accepted else None, len(accepted))
    acc_l = [c for c in accepted if c in labels]
    if acc_l:
        add("all", "precision", sum(labels[c] for c in acc_l) / len(acc_l), len(acc_l))
    if labels:
        add("all", "candidate_accuracy", sum(labels.values()) / len(labels), len(labels))
    return rows


def _vote_score(js: list[dict]) -> float:
    """A candidate's continuous stage score: mean P(Y) where read, else the share of Y votes."""
    ps = [j["p_yes"] for j in js if j.get("p_yes") is not None]
    if ps:
        return sum(ps) / len(ps)
    return sum(j["decision"] == "Y" for j in js) / len(js)
