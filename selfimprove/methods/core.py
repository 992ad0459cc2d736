"""The methods of the shared stages (seeds → candidates → verdicts → selection → fine-tuning → evaluation):
SVD and its cascades, the no-filter and agreement baselines, SSD, RFT; and the calibrate and evaluate flows."""
from __future__ import annotations

from selfimprove.methods.registry import Method, register_method

_SVD_JUDGES = [
    {"strategy": "cycle_consistency", "votes": 5},
    {"strategy": "factuality", "votes": 5},
    {"strategy": "correctness", "votes": 5},
]

register_method(Method("svd", "svd", "the preset's own cascade", needs_gate=True))
register_method(Method("paper", "svd", "three sampled judges, 5 votes each, unanimous",
                       {"cascade": {"stages": _SVD_JUDGES}}, needs_gate=True))
register_method(Method("simple", "svd", "one correctness judge, 5 votes",
                       {"cascade": {"stages": [{"strategy": "simple", "votes": 5}]}}, needs_gate=True))
register_method(Method("no_filter", "svd", "train on each seed's first sample with a final answer",
                       {"cascade": {"stages": []}}))
# the placebo: as many rows as the reused run's filter kept, at random among format-valid candidates (one per
# seed), trained identically: what the filter's run gains over it is the filter's, not more fine-tuning's
register_method(Method("random_keep", "svd", "placebo: as many examples as the reused run kept, drawn at random",
                       {"cascade": {"stages": [], "selection": "first_valid"}, "filter": {"rule": "random_keep"}},
                       placebo=True))
register_method(Method("agreement", "svd", "self-consistency agreement >= 0.5 alone",
                       {"cascade": {"stages": [{"strategy": "agreement", "threshold": 0.5}]}}, needs_gate=True))
# SSD: one raw sample per prompt at a training temperature with truncation, no verification. The
# paper's Qwen3-4B-Instruct setting is T 1.6 / top_p 0.8 / top_k 20; for the 135M default we use its
# thinking-model setting T 1.1 / top_p 0.95 / top_k 20 (T 1.6 turns a 135M model's output to noise),
# then tune T_eval on a sweep for base and trained model alike (greedy is always evaluated).
register_method(Method("ssd", "ssd", "simple self-distillation: raw samples, shortest 10 % dropped, T_eval sweep",
                       {"sampling": {"n": 1, "temperature": 1.1, "top_p": 0.95, "top_k": 20},
                        "cascade": {"stages": [], "selection": "all_valid"}, "filter": {"rule": "ssd_length"},
                        "evaluation": {"temperature_sweep": [0.5, 1.0], "sweep_samples": 2}}))
register_method(Method("rft", "rft", "rejection-sampling fine-tuning: k samples, keep what the ground truth accepts",
                       {"sampling": {"n": 4}, "cascade": {"stages": [], "selection": "all_valid"},
                        "filter": {"rule": "ground_truth"}}, reads_answers=True))
register_method(Method("calibrate", "calibrate", "every verifier advisory on labelled seeds; recommends a cascade",
                       command="calibrate", on_track=False))
register_method(Method("evaluate", "evaluate", "a model on held-out items, no training", view="evaluate", command="eval",
                       on_track=False))
