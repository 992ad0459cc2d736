"""SD-Zero: self-revision training (Phase 1) and on-policy self-distillation from a frozen teacher (Phase 2).

The package registers its methods, its config section (`sdzero`), its tables, the `reward` run option and
its view; its stages are `tasks/sdzero.py`, its flow `flows/sdzero.py`, its view `reporting/views/sdzero.py`.
"""
from __future__ import annotations

from selfimprove.methods.registry import Method, MethodPackage, Option, register_method
from selfimprove.methods.sdzero.config import SDZeroConfig
from selfimprove.methods.sdzero.tables import TABLES
from selfimprove.verification.rewards import SOURCES

PACKAGE = MethodPackage(
    "sdzero", SDZeroConfig, "the sdzero flow's two phases",
    presets={"quickstart": {"distill": {"steps": 24, "batch_size": 8, "eval_every": 6, "val_size": 32}},
             "full": {"revise_max_new_tokens": 128,
                      "distill": {"steps": 200, "batch_size": 16, "max_new_tokens": 128, "eval_every": 20,
                                  "val_size": 48}}},
    tables=TABLES,
    options=(Option("reward", ("sdzero", "reward"), tuple(SOURCES),
                    "SD-Zero's reward: ground_truth (the seeds' answers) or self_verified (the model's own agreement "
                    "across samples; no answer is read)"),),
    view="sdzero")

# SD-Zero: 4 samples per seed, the first init_per_seed of which are revised; SRT rows hold
# y_init + P_r + y_revised, hence the longer max_length. No judge cascade.
register_method(Method("sdzero", "sdzero", "SD-Zero graded by the seeds' answers",
                       {"sampling": {"n": 4}, "cascade": {"stages": []}, "training": {"max_length": 384, "epochs": 1}},
                       package=PACKAGE, reads_answers=True, trained=("tuned", "srt")))
# Self-verified rewards need 8 samples: measured on the quickstart seeds, an answer 2 of 4 samples
# agree on is right 35 % of the time (3 of 4: 69 %), while agreement >= 0.5 of 8 is right ~95 %.
register_method(Method("sdzero_self_verified", "sdzero", "SD-Zero graded by the model's own agreement (no answers)",
                       {"sampling": {"n": 8}, "cascade": {"stages": []}, "sdzero": {"reward": "self_verified"},
                        "training": {"max_length": 384, "epochs": 1}}, package=PACKAGE,
                       when={"sdzero": {"reward": "self_verified"}}, trained=("tuned", "srt")))
