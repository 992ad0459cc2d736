"""Held-out evaluation: generate, score, and summarise with bootstrap intervals.

Every sample is a row with its extracted answer, the scorer's reason, and what it cost
(model calls and generated tokens), so methods can be compared at equal test-time cost.
Metrics, per model and dataset:
- pass@1 = the mean over k samples per item (avg@k; k=1 greedy by default);
- pass@k for each k in `pass_k` (≤ samples), the unbiased estimator 1 − C(n−c, k)/C(n, k);
- no_answer_rate, error_rate (samples the scorer could not decide: excluded, never wrong);
- calls_per_item, tokens_per_item (test-time compute).
Intervals resample items, so a paired comparison of two models on the same items is exact
about which items moved.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field

from selfimprove import prompts
from selfimprove.inference.base import Backend, SamplingParams
from selfimprove.data.datasets import BUILTIN, PROMPT_FOR_SCORER, builtin, read_user_file
from selfimprove.scoring.sandbox import SandboxConfig
from selfimprove.scoring.scorers import LETTERS, score_items
from selfimprove.data.seeds import SeedSource
from selfimprove.validation import AtLeast0, AtLeast1, NonNegative, OpenShare

# how an evaluation answers: one greedy call, the UQ-TTC baseline, or the majority of k samples (maj@k)
EVAL_METHODS = ("greedy", "uq_ttc", "majority")


@dataclass
class EvalConfig:
    """The held-out set, how it is decoded and how it is scored."""

    dataset: str = "arithmetic"  # built-in: arithmetic | syllogism | humaneval; or a JSONL/CSV/Parquet file
    source: SeedSource = field(default_factory=lambda: SeedSource(size=200, seed=777))  # size and seed of built-ins; seed disjoint from training
    scorer: str | None = None  # None = the dataset's own (built-ins) / each row's domain's (files: math by default)
    prompt: str | None = None  # None = by scorer: sample_math, sample_choice or sample_code
    samples: AtLeast1 = 1  # k samples per item; pass@1 = mean over them
    pass_k: list[AtLeast1] = field(default_factory=lambda: [1])  # pass@k reported for each k <= samples
    temperature: NonNegative = 0.0  # 0 = greedy (then samples must be 1)
    top_p: OpenShare = 1.0  # nucleus share when temperature > 0
    max_new_tokens: AtLeast1 = 64  # tokens an answer may generate
    answer_format: str = "boxed_or_last_number"  # how math answers are read: boxed | boxed_or_last_number
    bootstrap: AtLeast0 = 1000  # resamples for confidence intervals
    seed: int = 0  # the sampling seed when temperature > 0
    sandbox: SandboxConfig = field(default_factory=SandboxConfig)  # limits for code items
    temperature_sweep: list[NonNegative] = field(default_factory=list)  # SSD: evaluate base and tuned at each T_eval too
    sweep_samples: AtLeast1 = 2  # samples per item at each swept T > 0 (pass@1 = their mean)
    fixed: bool = False  # the held-out set ignores the seeds and the seeds leave out its questions (experiments, tracks)

    def __post_init__(self) -> None:
        if isinstance(self.sandbox, dict):
            self.sandbox = SandboxConfig(**self.sandbox)
        if self.samples > 1 and self.temperature <= 0:
            raise ValueError("evaluation.samples > 1 needs temperature > 0 (greedy decoding gives one answer)")


def load_items(config: EvalConfig, exclude_questions: set[str] | frozenset = frozenset()) -> list[dict]:
    """The configured held-out items; built-in sets skip `exclude_questions` (the training
    seeds' `question_key`s)."""
    if config.dataset in BUILTIN:
        return builtin(config.dataset, config.source, exclude_questions)
    return read_user_file(config.dataset, config.scorer)


def eval_prompts(config: EvalConfig) -> tuple[str, ...]:
    """Every prompt file an evaluation may ask in (each scorer's, and the configured one): found, not listed, so
    editing any of them changes the evaluation stage's version."""
    return tuple(sorted(set(PROMPT_FOR_SCORER.values()) | ({config.prompt} if config.prompt else set())))


def message(item: dict, prompt_name: str | None = None) -> list[dict]:
    """The chat message that asks `item`: its question, and for multiple choice its lettered options."""
    name = prompt_name or PROMPT_FOR_SCORER[item.get("scorer") or "math"]
    options = "\n".join(f"{LETTERS[i]}. {c}" for i, c in enumerate(item.get("choices") or []))
    return [{"role": "user", "content": prompts.load(name).render(question=item["question"], options=options)}]


def sample_rows(items: list[dict], outputs: list[list[tuple[str, int, int]]], config: EvalConfig, model: str,
                method: str) -> list[dict]:
    """Score `outputs[i]` = [(text, generated tokens, model calls), ...] for items[i] into eval_samples rows."""
    flat = [(it, k, o) for it, outs in zip(items, outputs) for k, o in enumerate(outs)]
    scores = score_items([o[0] for _, _, o in flat], [it for it, _, _ in flat], config.answer_format, config.sandbox)
    return [{"model": model, "dataset": it["dataset"], "item_id": it["item_id"], "sample_index": k, "method": method,
             "output": text, "extracted": s.extracted, "correct": s.correct, "reason": s.reason,
             "n_tokens": tokens, "calls": calls}
            for (it, k, (text, tokens, calls)), s in zip(flat, scores)]


def evaluate(backend: Backend, items: list[dict], config: EvalConfig, model_name: str, progress=None,
             thinking: str = "auto") -> list[dict]:
    """One row per (item, sample): output, extracted answer, scorer's reason, tokens, calls (1). `thinking`: the
    sampler's setting, so a model is scored as it samples."""
    params = SamplingParams(temperature=config.temperature, top_p=config.top_p, max_new_tokens=config.max_new_tokens,
                            n=config.samples, seed=config.seed, thinking=thinking)
    gens = backend.generate([message(it, config.prompt) for it in items], params, progress=progress)
    method = "greedy" if config.temperature <= 0 else f"sampled@T{config.temperature}"
    return sample_rows(items, [[(g.text, g.n_tokens, 1) for g in gs] for gs in gens], config, model_name, method)


def rescore(rows: list[dict], items: list[dict], config: EvalConfig) -> list[dict]:
    """Reapply the scorers to stored outputs (eval_samples rows) without generating anything."""
    by_id = {(it["dataset"], it["item_id"]): it for it in items}
    missing = [r["item_id"] for r in rows if (r["dataset"], r["item_id"]) not in by_id]
    if missing:
        raise ValueError(f"{len(missing)} stored samples have no stored item (first: {missing[0]!r})")
    todo = [by_id[(r["dataset"], r["item_id"])] for r in rows]
    scores = score_items([r["output"] for r in rows], todo, config.answer_format, config.sandbox)
    return [{**r, "extracted": s.extracted, "correct": s.correct, "reason": s.reason} for r, s in zip(rows, scores)]


def pass_at_k(n: int, c: int, k: int) -> float:
    """Unbiased pass@k from n samples of which c are correct (Chen et al. 2021)."""
    if n - c < k:
        return 1.0
    prob_all_wrong = 1.0
    for i in range(n - c + 1, n + 1):
        prob_all_wrong *= 1.0 - k / i
    return 1.0 - prob_all_wrong


def _by_item(rows: list[dict]) -> dict[str, list[dict]]:
    out: dict[str, list[dict]] = {}
    for r in rows:
        out.setdefault(r["item_id"], []).append(r)
    return out


def per_item_accuracy(rows: list[dict]) -> dict[str, float]:
    """Mean correctness per item over its decided samples; items with none decided are left out."""
    acc = {}
    for item, rs in _by_item(rows).items():
        decided = [bool(r["correct"]) for r in rs if r["correct"] is not None]
        if decided:
            acc[item] = sum(decided) / len(decided)
    return acc


def bootstrap_ci(values: list[float], resamples: int, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    if not values or resamples < 1:  # no resamples asked (bootstrap: 0): no interval
        return float("nan"), float("nan")
    rng = random.Random(seed)
    n = len(values)
    means = sorted(sum(values[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    lo = means[int((1 - level) / 2 * resamples)]
    hi = means[min(resamples - 1, int((1 + level) / 2 * resamples))]
    return lo, hi


def _metric(model, dataset, name, values, config, with_ci=True) -> dict:
    lo, hi = bootstrap_ci(values, config.bootstrap, config.seed) if with_ci else (None, None)
    return {"model": model, "dataset": dataset, "metric": name, "value": sum(values) / len(values) if values else float("nan"),
            "n": len(values), "ci_low": lo, "ci_high": hi}


def metrics(rows: list[dict], config: EvalConfig) -> list[dict]:
    if not rows:
        return []
    model, dataset = rows[0]["model"], rows[0]["dataset"]
    items = _by_item(rows)
    out = [_metric(model, dataset, "pass@1", list(per_item_accuracy(rows).values()), config)]
    for k in sorted(set(config.pass_k) - {1}):
        per_item = []
        for rs in items.values():
            decided = [r for r in rs if r["correct"] is not None]
            if len(decided) >= k:
                per_item.append(pass_at_k(len(decided), sum(bool(r["correct"]) for r in decided), k))
        if per_item:
            out.append(_metric(model, dataset, f"pass@{k}", per_item, config))
    if any(len(rs) > 1 for rs in items.values()):  # several samples per item: how many different answers
        out.append(_metric(model, dataset, "distinct_answers",
                           [float(len({r.get("extracted") for r in rs} - {None})) for rs in items.values()],
                           config))
    out += [_metric(model, dataset, "no_answer_rate", [float(r["reason"] == "no_answer") for r in rows], config, False),
            _metric(model, dataset, "error_rate", [float(r["correct"] is None) for r in rows], config, False),
            _metric(model, dataset, "calls_per_item", [float(sum(r.get("calls") or 0 for r in rs)) for rs in items.values()], config, False),
            _metric(model, dataset, "tokens_per_item", [float(sum(r.get("n_tokens") or 0 for r in rs)) for rs in items.values()], config, False)]
    return out


def paired_difference(base: list[dict], tuned: list[dict], config: EvalConfig, label: str) -> dict:
    """pass@1(tuned) − pass@1(base) on the items both were scored on, with a paired bootstrap interval."""
    a, b = per_item_accuracy(base), per_item_accuracy(tuned)
    common = sorted(set(a) & set(b))
    diffs = [b[i] - a[i] for i in common]
    row = _metric(label, base[0]["dataset"] if base else "", "pass@1_delta_vs_base", diffs, config)
    return row
