"""Methods: each one a registered entry naming its flow, its config on top of a preset, and its view.

A method is what `runs.config_json.method` records. `flow` is the DAG that runs it; `overrides`
swap what the method changes (the cascade, sampling, a rule filter) and keep the preset's
budgets, so baselines run on the same seeds; `view` names the report view (in
`selfimprove.reporting.method_views`) that contributes its summary section, compare columns and
report figures. The CLI's choices and the flows read this registry; nothing else lists methods.
"""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Method:
    name: str
    flow: str  # svd | ssd | rft | sdzero | opsd | calibrate | evaluate
    help: str
    overrides: dict = field(default_factory=dict)
    view: str = "cascade"  # cascade | sdzero | opsd | evaluate
    reads_answers: bool = False  # grades by the seeds' ground-truth answers (seed files must carry them)
    command: str = "run"  # the CLI command that starts its flow: run | calibrate | eval
    when: dict = field(default_factory=dict)  # config values that make it its flow's default (see default_method)
    needs_gate: bool = False  # its cascade must hold a gating stage, or every candidate would be accepted
    trained: tuple[str, ...] = ("tuned",)  # the evaluated models the summary compares with base (paired delta)
    on_track: bool = True  # its flow ends with the promotion gate, so its runs may be on a track

    def check(self, cfg, origin: str = "config") -> None:
        """Cross-field checks of a whole run config for this method (InputError names `origin` and the field)."""
        if self.needs_gate and not any(s.gate for s in cfg.cascade.stages):
            from selfimprove.validation import InputError

            raise InputError(f"no stage gates (each has gate: false), so {self.name} would accept every candidate; "
                             "set gate: true on one, or run --method no_filter", file=origin, field="cascade.stages")


METHODS: dict[str, Method] = {}


def register_method(method: Method) -> Method:
    METHODS[method.name] = method
    return method


def get_method(name: str) -> Method:
    if name not in METHODS:
        raise ValueError(f"unknown method {name!r}; known: {sorted(METHODS)}")
    return METHODS[name]


def methods_of_flow(flow: str) -> list[str]:
    return [m.name for m in METHODS.values() if m.flow == flow]


def default_method(flow: str, config: dict) -> str:
    """The method a flow runs when none is named: the first of its methods whose `when` the (preset +
    file + overrides) config matches, else the method named like the flow."""
    def matches(want: dict, have: dict) -> bool:
        return all(matches(v, have.get(k) or {}) if isinstance(v, dict) else have.get(k) == v for k, v in want.items())

    return next((m.name for m in METHODS.values() if m.flow == flow and m.when and matches(m.when, config)), flow)


def tracked_flows() -> list[str]:
    """The flows whose runs may be on a track (every method of theirs ends with the promotion gate)."""
    flows = dict.fromkeys(m.flow for m in METHODS.values())
    return [f for f in flows if all(m.on_track for m in METHODS.values() if m.flow == f)]


def flows_of_command(command: str) -> list[str]:
    """The flows a CLI command starts, in registration order."""
    return list(dict.fromkeys(m.flow for m in METHODS.values() if m.command == command))


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
# SD-Zero: 4 samples per seed, the first init_per_seed of which are revised; SRT rows hold
# y_init + P_r + y_revised, hence the longer max_length. No judge cascade.
register_method(Method("sdzero", "sdzero", "SD-Zero graded by the seeds' answers",
                       {"sampling": {"n": 4}, "cascade": {"stages": []}, "training": {"max_length": 384, "epochs": 1}},
                       view="sdzero", reads_answers=True, trained=("tuned", "srt")))
# Self-verified rewards need 8 samples: measured on the quickstart seeds, an answer 2 of 4 samples
# agree on is right 35 % of the time (3 of 4: 69 %), while agreement >= 0.5 of 8 is right ~95 %.
register_method(Method("sdzero_self_verified", "sdzero", "SD-Zero graded by the model's own agreement (no answers)",
                       {"sampling": {"n": 8}, "cascade": {"stages": []}, "sdzero": {"reward": "self_verified"},
                        "training": {"max_length": 384, "epochs": 1}}, view="sdzero",
                       when={"sdzero": {"reward": "self_verified"}}, trained=("tuned", "srt")))
# OPSD distils on every seed (minus the held-out-reward ones); it samples 8 candidates like SVD, so the
# candidates and, where it judges (self_verified PI, warm start), the cascade are shared with an SVD run's.
register_method(Method("opsd", "opsd", "OPSD, the teacher reads the seed's answer (and solution)",
                       {"opsd": {"pi": "ground_truth"}}, view="opsd", reads_answers=True, on_track=False))
register_method(Method("opsd_self_verified", "opsd",
                       "OPSD, the teacher reads the candidate the cascade accepted (no answers)",
                       {"opsd": {"pi": "self_verified"}}, view="opsd", when={"opsd": {"pi": "self_verified"}},
                       needs_gate=True, on_track=False))
register_method(Method("opsd_rule", "opsd", "OPSD, the teacher reads one shared instruction (no answers)",
                       {"opsd": {"pi": "rule"}}, view="opsd", when={"opsd": {"pi": "rule"}}, on_track=False))
register_method(Method("calibrate", "calibrate", "every verifier advisory on labelled seeds; recommends a cascade",
                       command="calibrate", on_track=False))
register_method(Method("evaluate", "evaluate", "a model on held-out items, no training", view="evaluate", command="eval",
                       on_track=False))
