"""Held-out evaluation: generate, score, and summarise with bootstrap intervals.

pass@1 is the mean over k samples per item (avg@k; k=1 greedy by default). Intervals
resample items, so a paired comparison of two models on the same items is exact
about which items moved.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from .backends import Backend, SamplingParams
from .sampling import user_message
from .scorers import score
from .seeds import SeedSource


@dataclass
class EvalConfig:
    """The held-out set and how it is decoded and scored."""

    source: SeedSource = field(default_factory=lambda: SeedSource(size=200, seed=777))  # disjoint seed from training
    dataset_name: str = "arithmetic-heldout"
    samples: int = 1  # k samples per item; pass@1 = mean over them
    temperature: float = 0.0  # 0 = greedy
    max_new_tokens: int = 64
    scorer: str = "math"  # math | task
    prompt: str = "sample_math"
    answer_format: str = "boxed_or_last_number"
    bootstrap: int = 1000  # resamples for confidence intervals
    seed: int = 0


def evaluate(backend: Backend, items: list[dict], config: EvalConfig, model_name: str, progress=None) -> list[dict]:
    """One row per (item, sample) with the output, the extracted answer and the scorer's reason."""
    params = SamplingParams(temperature=config.temperature, max_new_tokens=config.max_new_tokens,
                            n=config.samples, seed=config.seed)
    outputs = backend.generate([user_message(it["question"], config.prompt) for it in items], params, progress=progress)
    rows = []
    for it, gens in zip(items, outputs):
        for k, g in enumerate(gens):
            s = score(g.text, it["answer"], config.scorer, it.get("task"), config.answer_format, it.get("domain", "math"))
            rows.append({"model": model_name, "dataset": config.dataset_name, "item_id": it["seed_id"], "sample_index": k,
                         "output": g.text, "extracted": s.extracted, "correct": s.correct, "reason": s.reason,
                         "n_tokens": g.n_tokens})
    return rows


def per_item_accuracy(rows: list[dict]) -> dict[str, float]:
    by_item: dict[str, list[bool]] = {}
    for r in rows:
        by_item.setdefault(r["item_id"], []).append(bool(r["correct"]))
    return {k: sum(v) / len(v) for k, v in by_item.items()}


def bootstrap_ci(values: list[float], resamples: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    if not values:
        return float("nan"), float("nan")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = means[int((1 - level) / 2 * resamples)]
    hi = means[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return lo, hi


def metrics(rows: list[dict], config: EvalConfig) -> list[dict]:
    acc = list(per_item_accuracy(rows).values())
    if not acc:
        return []
    lo, hi = bootstrap_ci(acc, config.bootstrap, config.seed)
    model = rows[0]["model"]
    no_answer = sum(r["reason"] == "no_answer" for r in rows) / len(rows)
    return [
        {"model": model, "dataset": config.dataset_name, "metric": "pass@1", "value": sum(acc) / len(acc),
         "n": len(acc), "ci_low": lo, "ci_high": hi},
        {"model": model, "dataset": config.dataset_name, "metric": "no_answer_rate", "value": no_answer,
         "n": len(rows), "ci_low": None, "ci_high": None},
    ]


def paired_difference(base: list[dict], tuned: list[dict], config: EvalConfig, label: str) -> dict:
    """pass@1(tuned) − pass@1(base) on the items both were scored on, with a paired bootstrap interval."""
    a, b = per_item_accuracy(base), per_item_accuracy(tuned)
    common = sorted(set(a) & set(b))
    diffs = [b[i] - a[i] for i in common]
    lo, hi = bootstrap_ci(diffs, config.bootstrap, config.seed)
    return {"model": label, "dataset": config.dataset_name, "metric": "pass@1_delta_vs_base",
            "value": sum(diffs) / len(diffs) if diffs else float("nan"), "n": len(common), "ci_low": lo, "ci_high": hi}
