"""Run configuration: one dataclass per component, presets, and YAML/JSON round-trip.

A preset is a plain dict of overrides on `RunConfig()`; a config file (YAML or JSON)
is applied on top of the preset. Unknown keys are errors that name the key.
"""
from __future__ import annotations

import dataclasses
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from selfimprove.inference.base import BackendConfig
from selfimprove.methods import METHODS, get_method
from selfimprove.verification.cascade import CascadeConfig
from selfimprove.evaluation.contamination import ContaminationConfig
from selfimprove.evaluation.heldout import EvalConfig
from selfimprove.verification.filters import FilterConfig
from selfimprove.generation.sampling import SamplingConfig
from selfimprove.methods.sdzero.config import SDZeroConfig
from selfimprove.data.seeds import SeedSource
from selfimprove.training.sft import TrainConfig
from selfimprove.evaluation.uq_ttc import UQTTCConfig


@dataclass
class RunConfig:
    """Everything one SVD run needs."""

    model: str = "default"  # 'default' = embedded SmolLM2-135M-Instruct, or a local checkpoint folder
    judge_model: str | None = None  # None = the policy model judges itself (pure SVD)
    method: str = "svd"  # a registered method (selfimprove.methods): recorded in runs.config_json
    seeds: SeedSource = field(default_factory=SeedSource)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)
    cascade: CascadeConfig = field(default_factory=CascadeConfig)
    filter: FilterConfig = field(default_factory=FilterConfig)  # a rule instead of the cascade (SSD, RFT)
    training: TrainConfig = field(default_factory=TrainConfig)
    evaluation: EvalConfig = field(default_factory=EvalConfig)
    uq_ttc: UQTTCConfig = field(default_factory=UQTTCConfig)  # test-time baseline on the held-out set (off by default)
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)  # guard before training
    sdzero: SDZeroConfig = field(default_factory=SDZeroConfig)  # the sdzero flow's two phases
    backend: BackendConfig = field(default_factory=BackendConfig)
    shard_seeds: int = 32  # seeds per checkpointed shard of sampling and judging (a crash loses at most one)
    max_error_rate: float = 0.05  # a stage whose share of error rows (backend failures) exceeds this fails

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


def _build(cls, data: dict, where: str):
    """`cls(**data)`, nested dataclasses (and lists of them) built from their type hints; errors name the key."""
    if not isinstance(data, dict):
        raise ValueError(f"config {where}: expected a mapping, got {type(data).__name__}")
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls)
    kwargs = {}
    for key, value in data.items():
        if key not in fields:
            raise ValueError(f"config {where}: unknown key {key!r}; known: {sorted(fields)}")
        hint = hints[key]
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list and typing.get_args(hint) else None
        if dataclasses.is_dataclass(hint) and isinstance(value, dict):
            value = _build(hint, value, f"{where}.{key}")
        elif dataclasses.is_dataclass(item) and isinstance(value, list):
            value = [_build(item, s, f"{where}.{key}[{i}]") if isinstance(s, dict) else s for i, s in enumerate(value)]
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise ValueError(f"config {where}: {e}") from None


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(data: dict) -> RunConfig:
    return _build(RunConfig, data, "run")


# The quickstart gates on self-consistency agreement, the cascade `selfimprove calibrate`
# recommends for the 135M default model (README has the measurement), and runs the paper's
# three judges as advisory probability judges: their votes land in the lake and the telemetry
# without rejecting anything.
PRESETS: dict[str, dict] = {
    "quickstart": {
        "seeds": {"size": 240},
        "sampling": {"n": 8, "max_new_tokens": 64, "answer_format": "boxed_or_last_number"},
        "cascade": {"stages": [
            {"strategy": "agreement", "threshold": 0.5},
            {"strategy": "cycle_consistency", "votes": 2, "scoring": "probability", "gate": False, "max_new_tokens": 48},
            {"strategy": "factuality", "votes": 1, "scoring": "probability", "gate": False},
            {"strategy": "correctness", "votes": 1, "scoring": "probability", "gate": False},
        ]},
        "training": {"epochs": 2, "batch_size": 8, "learning_rate": 2e-5},
        "evaluation": {"source": {"size": 200, "seed": 777}},
        "sdzero": {"distill": {"steps": 24, "batch_size": 8, "eval_every": 6, "val_size": 32}},
    },
    "full": {
        "seeds": {"size": 480, "tasks": ["basic_arithmetic", "simple_equations"]},
        "sampling": {"n": 8, "max_new_tokens": 128, "answer_format": "boxed_or_last_number"},
        "cascade": {"stages": [{"strategy": "agreement", "threshold": 0.5}] + METHODS["paper"].overrides["cascade"]["stages"]},
        "training": {"epochs": 2},
        "evaluation": {"source": {"size": 500, "seed": 777, "tasks": ["basic_arithmetic", "simple_equations"]},
                       "max_new_tokens": 128},
        "sdzero": {"revise_max_new_tokens": 128,
                   "distill": {"steps": 200, "batch_size": 16, "max_new_tokens": 128, "eval_every": 20, "val_size": 48}},
    },
}

def requested(preset: str = "quickstart", path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """The preset with the file and the overrides on top, before any method's changes."""
    data = merge({}, PRESETS[preset]) if preset in PRESETS else {}
    if path:
        data = merge(data, read_file(Path(path)))
    return from_dict(merge(data, overrides or {}))


def load(preset: str = "quickstart", path: str | Path | None = None, overrides: dict | None = None,
         method: str = "svd") -> RunConfig:
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; known: {sorted(PRESETS)}")
    chosen = get_method(method)
    data = merge({}, PRESETS[preset])
    if path:
        data = merge(data, read_file(Path(path)))
    if overrides:
        data = merge(data, overrides)
    # an explicitly chosen method's cascade wins over the preset's and the file's
    return from_dict(merge(data, {"method": method, **chosen.overrides}))


def read_file(path: Path) -> dict:
    if not path.exists():
        raise FileNotFoundError(f"config file {path} not found")
    text = path.read_text()
    try:
        if path.suffix == ".json":
            data = json.loads(text)
        else:
            import yaml

            data = yaml.safe_load(text) or {}
    except Exception as e:
        raise ValueError(f"config file {path}: not valid {'JSON' if path.suffix == '.json' else 'YAML'} ({e})") from None
    if not isinstance(data, dict):
        raise ValueError(f"config file {path}: top level must be a mapping")
    return data
