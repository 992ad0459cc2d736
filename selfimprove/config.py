"""Run configuration: one dataclass per component, presets, and YAML/JSON round-trip.

A preset is a plain dict of overrides on `RunConfig()`; a config file (YAML or JSON)
is applied on top of the preset. Unknown keys are errors that name the key.
"""
from __future__ import annotations

import dataclasses
import difflib
import json
import typing
from dataclasses import dataclass, field
from pathlib import Path

from selfimprove.execution.base import ExecutorConfig
from selfimprove.inference.base import BackendConfig
from selfimprove.methods import METHODS, get_method, packages
from selfimprove.verification.cascade import CascadeConfig
from selfimprove.evaluation.contamination import ContaminationConfig
from selfimprove.evaluation.heldout import EvalConfig
from selfimprove.verification.filters import FilterConfig
from selfimprove.generation.sampling import SamplingConfig
from selfimprove.data.seeds import SeedSource
from selfimprove.rounds.config import TrackConfig
from selfimprove.training.sft import TrainConfig
from selfimprove.testtime.majority import MajorityConfig
from selfimprove.testtime.uq_ttc import UQTTCConfig
from selfimprove.validation import AtLeast1, InputError, Share, check_value, read_utf8


@dataclass
class SharedConfig:
    """Everything one run needs; each method package adds its own section (`RunConfig`)."""

    model: str = "default"  # default (the embedded model) | a .gguf file | a checkpoint folder | org/name | champion:<track>
    judge_model: str | None = None  # None = the policy model judges itself (pure SVD)
    method: str = "svd"  # a registered method (selfimprove.methods): recorded in runs.config_json
    seeds: SeedSource = field(default_factory=SeedSource)  # where seed questions come from (file, inbox, generator)
    sampling: SamplingConfig = field(default_factory=SamplingConfig)  # how candidates are drawn
    cascade: CascadeConfig = field(default_factory=CascadeConfig)  # judge stages; which accepted candidates are kept
    filter: FilterConfig = field(default_factory=FilterConfig)  # a rule instead of the cascade (SSD, RFT)
    training: TrainConfig = field(default_factory=TrainConfig)  # the SFT recipe
    evaluation: EvalConfig = field(default_factory=EvalConfig)  # the held-out set and how it is decoded and scored
    uq_ttc: UQTTCConfig = field(default_factory=UQTTCConfig)  # test-time baseline on the held-out set (off by default)
    majority: MajorityConfig = field(default_factory=MajorityConfig)  # maj@k test-time baseline (off by default)
    contamination: ContaminationConfig = field(default_factory=ContaminationConfig)  # guard before training
    backend: BackendConfig = field(default_factory=BackendConfig)  # the inference engine and its settings
    executor: ExecutorConfig = field(default_factory=ExecutorConfig)  # where model stages' shards run (local | ray)
    track: TrackConfig = field(default_factory=TrackConfig)  # a run on a track registers its model, faces the gate
    shard_seeds: AtLeast1 = 32  # seeds per checkpointed shard of sampling and judging (a crash loses at most one)
    max_error_rate: Share = 0.05  # a stage whose share of error rows (backend failures) exceeds this fails
    experiment: str | None = None  # set by `selfimprove experiment`: the arm this run is, <experiment>/<repeat>/<method>

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


# the shared sections, then one per method package (`MethodPackage.section`), documented by the package
RunConfig = dataclasses.make_dataclass(
    "RunConfig", [(p.name, p.section, field(default_factory=p.section, metadata={"doc": p.doc}))
                  for p in packages() if p.section], bases=(SharedConfig,),
    namespace={"__doc__": "Everything one run needs: the shared sections and each method package's.",
               "__module__": __name__})


def _build(cls, data: dict, where: str = "", source: str | None = None):
    """`cls(**data)`, nested dataclasses (and lists of them) built from their type hints. Every value is
    held to its hint (type and `Range`) first; errors name `source` (the file) and the field's path."""
    if not isinstance(data, dict):
        raise InputError(f"must be a mapping, got {type(data).__name__}", file=source, field=where or None)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    hints = typing.get_type_hints(cls, include_extras=True)
    kwargs = {}
    for key, value in data.items():
        path = f"{where}.{key}" if where else str(key)
        if key not in fields and key in getattr(cls, "MOVED", {}):
            raise InputError(f"moved: set {where + '.' if where else ''}{cls.MOVED[key]}", file=source, field=path)
        if key not in fields:
            close = difflib.get_close_matches(str(key), fields, n=1)
            hint = f"did you mean {close[0]!r}?" if close else f"known: {', '.join(sorted(fields))}"
            raise InputError(f"unknown key ({hint})", file=source, field=path)
        hint = _bare(hints[key])
        item = typing.get_args(hint)[0] if typing.get_origin(hint) is list and typing.get_args(hint) else None
        if dataclasses.is_dataclass(hint):
            value = _build(hint, value, path, source)
        elif dataclasses.is_dataclass(item) and isinstance(value, list):
            value = [_build(item, v, f"{path}[{i}]", source) if isinstance(v, dict) else v for i, v in enumerate(value)]
        else:
            try:
                check_value(value, hints[key], path)
            except InputError as e:
                raise InputError(e.reason, file=source, field=path) from None
        kwargs[key] = value
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as e:
        raise InputError(getattr(e, "reason", str(e)), file=source, field=where or None) from None


def _bare(hint):
    return typing.get_args(hint)[0] if typing.get_origin(hint) is typing.Annotated else hint


def merge(base: dict, override: dict) -> dict:
    out = dict(base)
    for k, v in override.items():
        out[k] = merge(out[k], v) if isinstance(v, dict) and isinstance(out.get(k), dict) else v
    return out


def from_dict(data: dict, source: str | None = "config") -> RunConfig:
    return _build(RunConfig, data, "", source)


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
    },
    "full": {
        "seeds": {"size": 480, "tasks": ["basic_arithmetic", "simple_equations"]},
        "sampling": {"n": 8, "max_new_tokens": 128, "answer_format": "boxed_or_last_number"},
        "cascade": {"stages": [{"strategy": "agreement", "threshold": 0.5}] + METHODS["paper"].overrides["cascade"]["stages"]},
        "training": {"epochs": 2},
        "evaluation": {"source": {"size": 500, "seed": 777, "tasks": ["basic_arithmetic", "simple_equations"]},
                       "max_new_tokens": 128},
    },
}
for _package in packages():  # each package's section in each preset
    for _preset, _values in _package.presets.items():
        PRESETS[_preset][_package.name] = _values

def requested(preset: str = "quickstart", path: str | Path | None = None, overrides: dict | None = None) -> RunConfig:
    """The preset with the file and the overrides on top, before any method's changes."""
    return from_dict(_layers(preset, path, overrides))


def load(preset: str = "quickstart", path: str | Path | None = None, overrides: dict | None = None,
         method: str = "svd") -> RunConfig:
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; known: {', '.join(sorted(PRESETS))}")
    chosen = get_method(method)
    origin = " + ".join([f"preset {preset}"] + ([str(path)] if path else []) + (["overrides"] if overrides else []))
    # an explicitly chosen method's cascade wins over the preset's and the file's
    cfg = from_dict(merge(_layers(preset, path, overrides), {"method": method, **chosen.overrides}), origin)
    chosen.check(cfg, origin)
    return cfg


def _layers(preset: str, path: str | Path | None, overrides: dict | None) -> dict:
    """Preset, then file, then overrides, merged; the file and the overrides are each checked on their
    own first, so a bad value is named with the place it came from."""
    data = merge({}, PRESETS.get(preset, {}))
    if path:
        layer = read_file(Path(path))
        from_dict(layer, str(path))
        data = merge(data, layer)
    if overrides:
        from_dict(overrides, "overrides")
        data = merge(data, overrides)
    return data


def read_file(path: Path) -> dict:
    name = str(path)
    if not path.is_file():
        raise InputError("config file not found" if not path.exists() else "not a file", file=name)
    text = read_utf8(path)
    if path.suffix == ".json":
        try:
            data = json.loads(text)
        except json.JSONDecodeError as e:
            raise InputError(f"not valid JSON: {e.msg}", file=name, line=e.lineno, column=e.colno) from None
    else:
        import yaml

        try:
            data = yaml.safe_load(text)
        except yaml.MarkedYAMLError as e:
            mark = e.problem_mark or e.context_mark
            raise InputError(f"not valid YAML: {e.problem or e.context}", file=name,
                             line=mark.line + 1 if mark else None, column=mark.column + 1 if mark else None) from None
        except yaml.YAMLError as e:
            raise InputError(f"not valid YAML: {e}", file=name) from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise InputError(f"the top level must be a mapping of settings, got {type(data).__name__}", file=name)
    return data
