"""UQ-TTC, the SVD paper's test-time baseline: verify at answer time instead of training.

Per question: sample n candidates, run the judge cascade (the run's own, with first_valid
early exit) and answer with the first accepted candidate. When no candidate passes, the
answer falls back to `fallback`:
- `first_answer` (default): the first candidate that has a final answer, else the first;
- `majority`: the candidate whose final answer most candidates share (self-consistency);
- `greedy`: one more call, a greedy answer (measured better than `first_answer` on the
  default model: its T 0.8 samples are worse than its greedy answers).

Cost per question is recorded on its row: `calls` = n sampled sequences + the judge's
model calls for that question's candidates (strategies that call no model, like agreement, add
none), `n_tokens` = sampled tokens + tokens the judges generated. SVD itself answers with one call.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from selfimprove.inference.base import Backend, SamplingParams
from selfimprove.verification.cascade import CascadeConfig, run_cascade
from selfimprove.evaluation.heldout import EvalConfig, message, sample_rows
from selfimprove.generation.sampling import SamplingConfig, sample
from selfimprove.validation import AtLeast1

FALLBACKS = ("first_answer", "majority", "greedy")


@dataclass
class UQTTCConfig:
    """The test-time baseline; off unless enabled (it costs n samples plus judging per question)."""

    enabled: bool = False  # evaluate the UQ-TTC test-time baseline too (`run --uq-ttc`)
    n: AtLeast1 | None = None  # samples per question; None = the run's sampling.n (samples are drawn as training's are)
    fallback: str = "first_answer"  # first_answer | majority | greedy (see module docstring)

    def __post_init__(self) -> None:
        if self.fallback not in FALLBACKS:
            raise ValueError(f"uq_ttc.fallback must be one of {FALLBACKS}, got {self.fallback!r}")


def _choose(cands: list[dict], accepted: set[str], fallback: str) -> tuple[dict, str]:
    for c in cands:
        if c["candidate_id"] in accepted:
            return c, "accepted"
    with_answer = [c for c in cands if c["final_answer"] is not None]
    if fallback == "majority" and with_answer:
        top, _ = Counter(c["final_answer"] for c in with_answer).most_common(1)[0]
        return next(c for c in with_answer if c["final_answer"] == top), "fallback_majority"
    return (with_answer or cands)[0], "fallback_first_answer"


def answer_with_cascade(backend: Backend, items: list[dict], config: UQTTCConfig, sampling: SamplingConfig,
                        cascade: CascadeConfig, eval_config: EvalConfig, model_name: str, progress=None,
                        thinking: bool = False) -> list[dict]:
    """One eval_samples row per item, method 'uq_ttc:<accepted|fallback_…>', with its calls and tokens."""
    sampling = replace(sampling, n=config.n or sampling.n)

    seeds = [{"seed_id": it["item_id"], "domain": it["domain"], "question": it["question"]} for it in items]
    candidates = sample(backend, seeds, sampling, progress, messages=[message(it, eval_config.prompt) for it in items])
    cascade = CascadeConfig(stages=cascade.stages, selection="first_valid", seed=cascade.seed)
    judgments, verdicts = run_cascade(backend, seeds, candidates, cascade, thinking=thinking)
    accepted = {v["candidate_id"] for v in verdicts if v["accepted"]}
    calls: Counter = Counter()
    tokens: Counter = Counter()
    item_of = {c["candidate_id"]: c["seed_id"] for c in candidates}
    for j in judgments:
        if j["model_call"]:
            calls[item_of[j["candidate_id"]]] += 1
            tokens[item_of[j["candidate_id"]]] += j["n_tokens"]
    by_item: dict[str, list[dict]] = {}
    for c in candidates:
        by_item.setdefault(c["seed_id"], []).append(c)
    greedy = {}
    if config.fallback == "greedy":
        todo = [it for it in items if not any(c["candidate_id"] in accepted for c in by_item[it["item_id"]])]
        params = SamplingParams(temperature=0.0, max_new_tokens=eval_config.max_new_tokens, thinking=sampling.thinking)
        outs = backend.generate([message(it, eval_config.prompt) for it in todo], params) if todo else []
        greedy = {it["item_id"]: g[0] for it, g in zip(todo, outs)}
    outputs, methods = [], []
    for it in items:
        cands = by_item[it["item_id"]]
        cost_tokens, cost_calls = sum(c["n_tokens"] for c in cands) + tokens[it["item_id"]], len(cands) + calls[it["item_id"]]
        if it["item_id"] in greedy:
            g = greedy[it["item_id"]]
            outputs.append([(g.text, cost_tokens + g.n_tokens, cost_calls + 1)])
            methods.append("fallback_greedy")
            continue
        chosen, how = _choose(cands, accepted, config.fallback)
        outputs.append([(chosen["text"], cost_tokens, cost_calls)])
        methods.append(how)
    rows = sample_rows(items, outputs, eval_config, model_name, "uq_ttc")
    for r, how in zip(rows, methods):
        r["method"] = f"uq_ttc:{how}"
    return rows
