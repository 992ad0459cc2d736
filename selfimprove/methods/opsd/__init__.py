"""OPSD: on-policy self-distillation from the same model reading privileged information (arXiv 2601.18734).

The package registers its methods, its config section (`opsd`), its table, the `pi` run option and its
view; its stages are `tasks/opsd.py`, its flow `flows/opsd.py`, its view `reporting/views/opsd.py`.
"""
from __future__ import annotations

from selfimprove.methods.opsd.config import PI_SOURCES, OPSDConfig
from selfimprove.methods.opsd.tables import TABLES
from selfimprove.methods.registry import Method, MethodPackage, Option, TrainingText, register_method

PACKAGE = MethodPackage(
    "opsd", OPSDConfig, "the opsd flow: privileged information, distillation",
    # no run of 24 steps (checks every 6) beat its step-6 student, and without keep_best the students collapsed
    # after it (docs/guides/opsd.md), so 12 steps checked every 3
    presets={"quickstart": {"distill": {"steps": 12, "batch_size": 8, "eval_every": 3, "val_size": 32}},
             "full": {"distill": {"steps": 200, "batch_size": 16, "max_new_tokens": 128, "eval_every": 20,
                                  "val_size": 48}}},
    tables=TABLES,
    options=(Option("pi", ("opsd", "pi"), PI_SOURCES,
                    "OPSD's privileged information, read by the teacher only: ground_truth (the seed's answer and "
                    "solution), self_verified (the candidate the run's cascade accepted; no answer is read) or rule "
                    "(one shared instruction)"),),
    # the teacher reads a distill seed's PI, and the student learns its predictions: training text
    training_text={"privileged_info": TrainingText("pi_text", suffix=":pi", where={"phase": "distill"})},
    view="opsd")

# OPSD distils on every seed (minus the held-out-reward ones); it samples 8 candidates like SVD, so the
# candidates and, where it judges (self_verified PI, warm start), the cascade are shared with an SVD run's.
register_method(Method("opsd", "opsd", "OPSD, the teacher reads the seed's answer (and solution)",
                       {"opsd": {"pi": "ground_truth"}}, package=PACKAGE, reads_answers=True, on_track=False))
register_method(Method("opsd_self_verified", "opsd",
                       "OPSD, the teacher reads the candidate the cascade accepted (no answers)",
                       {"opsd": {"pi": "self_verified"}}, package=PACKAGE, when={"opsd": {"pi": "self_verified"}},
                       needs_gate=True, on_track=False))
register_method(Method("opsd_rule", "opsd", "OPSD, the teacher reads one shared instruction (no answers)",
                       {"opsd": {"pi": "rule"}}, package=PACKAGE, when={"opsd": {"pi": "rule"}}, on_track=False))
