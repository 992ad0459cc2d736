"""Majority vote at test time (self-consistency, maj@k): the standard test-time baseline a trained model must beat.

Per question: k samples drawn as the run's sampler draws them; the answer is the one most samples reach
(answers grouped as the agreement judge groups them: math-verify equivalence, else normalised text); a tie
goes to the answer reached first. The row's output is the first sample with that answer. A question whose
samples hold no answer keeps its first sample (scored wrong unless the scorer finds one). Cost per question
is recorded on its row: `calls` = k sampled sequences, `n_tokens` = their tokens.
"""
from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, replace

from selfimprove.evaluation.heldout import EvalConfig, message, sample_rows
from selfimprove.generation.sampling import SamplingConfig, sample
from selfimprove.inference.base import Backend
from selfimprove.validation import AtLeast1
from selfimprove.verification.agreement import group_answers


@dataclass
class MajorityConfig:
    """maj@k on the held-out set beside pass@1 (`run --tt-baselines`; `eval --method majority --k K`)."""

    enabled: bool = False  # evaluate the base model's majority vote too (`run --tt-baselines`)
    k: AtLeast1 | None = None  # samples per question; None = the run's sampling.n (drawn as training's are)


def majority_index(answers: list[str | None], domain: str = "math") -> int:
    """The index of the first sample whose answer most samples share (ties: the answer reached first); 0 when
    no sample has an answer."""
    groups = group_answers(answers, domain)
    counts = Counter(g for g in groups if g is not None)
    if not counts:
        return 0
    top = max(counts.values())
    winner = next(g for g in groups if g is not None and counts[g] == top)
    return groups.index(winner)


def answer_by_majority(backend: Backend, items: list[dict], k: int, sampling: SamplingConfig, eval_config: EvalConfig,
                       model_name: str, progress=None) -> list[dict]:
    """One eval_samples row per item, method `majority@k`, with its calls and tokens."""
    sampling = replace(sampling, n=k)
    seeds = [{"seed_id": it["item_id"], "domain": it["domain"], "question": it["question"], "choices": it.get("choices")}
             for it in items]
    candidates = sample(backend, seeds, sampling, progress, messages=[message(it, eval_config.prompt) for it in items])
    by_item: dict[str, list[dict]] = {}
    for c in candidates:
        by_item.setdefault(c["seed_id"], []).append(c)
    outputs = []
    for it in items:
        cands = sorted(by_item[it["item_id"]], key=lambda c: c["sample_index"])
        chosen = cands[majority_index([c["final_answer"] for c in cands], it["domain"])]
        outputs.append([(chosen["text"], sum(c["n_tokens"] for c in cands), len(cands))])
    return sample_rows(items, outputs, eval_config, model_name, f"majority@{k}")
