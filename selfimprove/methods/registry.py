"""The method registry: every method, and every method package with what it adds to the shared house.

A `Method` is what `runs.config_json.method` records: the flow that runs it, the config changes it
makes on top of a preset (`overrides`: the cascade, sampling, a rule filter; the preset's budgets
stay, so baselines run on the same seeds) and the view that reports it.

A `MethodPackage` is a method family with stages of its own (SD-Zero, OPSD): its config section
(`RunConfig.<name>`, with its values in each preset), its lake tables, its flow's run options (a
CLI flag of `run <flow>` and the flow's Prefect parameter of the same name) and its view. Shared
code asks this registry; no shared module names a method.
"""
from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Any

from selfimprove.storage.tables import declare


@dataclass(frozen=True)
class Option:
    """A run option of a package's flow: `--<name>` on `run <flow>` and the flow's parameter `name`, setting the
    config field at `path`. A method of the flow that fixes that field itself contradicts a different value."""

    name: str
    path: tuple[str, ...]
    choices: tuple[str, ...]
    help: str  # what it means, for the CLI's help and the Prefect form

    def overrides(self, value: Any) -> dict:
        out: dict = value
        for key in reversed(self.path):
            out = {key: out}
        return out

    def check(self, method: str | None, value: Any) -> None:
        """A method that fixes this field to something else and this value contradict: refused, not overridden."""
        fixed: Any = get_method(method).overrides if method else {}
        for key in self.path:
            fixed = fixed.get(key, {}) if isinstance(fixed, dict) else {}
        if fixed not in ({}, value):
            from selfimprove.validation import InputError

            raise InputError(f"method {method} sets {'.'.join(self.path)} to {fixed}, not {value}; name one of them",
                             field=self.name)


@dataclass(frozen=True)
class TrainingText:
    """A table column a model trains on, which the contamination guard checks beside the row's seed question.
    `id`: the column naming the row (`suffix` appended); `where`: only rows with these values."""

    column: str
    id: str = "seed_id"
    suffix: str = ""
    where: dict = field(default_factory=dict)


@dataclass(frozen=True)
class MethodPackage:
    """What a method family with its own stages adds: everything here is read by shared code through the registry.

    Parameters:
        name: the package, its flow (`flows/<name>.py`) and its config section `RunConfig.<name>`.
        section: the section's dataclass (None: no section).
        doc: one line on the section, for the config reference.
        presets: preset name → the section's values in that preset.
        tables: lake table name → its Arrow schema (the package's `tables.py`; the warehouse adds them to its own).
        options: the flow's run options (`Option`).
        training_text: its tables' columns a model trains on (`TrainingText`), for the contamination guard.
        view: the reporting view (`selfimprove.reporting.views.<view>`) of its runs.
        flow_module: the module holding its flow (a function named like the package) and its `STAGES`; None:
            `selfimprove.flows.<name>`.
    """

    name: str
    section: type | None = None
    doc: str = ""
    presets: dict[str, dict] = field(default_factory=dict)
    tables: dict[str, Any] = field(default_factory=dict)
    options: tuple[Option, ...] = ()
    training_text: dict[str, TrainingText] = field(default_factory=dict)
    view: str = "cascade"
    flow_module: str | None = None


@dataclass(frozen=True)
class Method:
    name: str
    flow: str  # the flow that runs it: a flow of the shared stages (svd | ssd | rft), or a package's
    help: str
    overrides: dict = field(default_factory=dict)
    view: str | None = None  # the reporting view of its runs (None: its package's, else cascade)
    reads_answers: bool = False  # grades by the seeds' ground-truth answers (seed files must carry them)
    command: str = "run"  # the CLI command that starts its flow: run | calibrate | eval
    when: dict = field(default_factory=dict)  # config values that make it its flow's default (see default_method)
    needs_gate: bool = False  # its cascade must hold a gating stage, or every candidate would be accepted
    trained: tuple[str, ...] = ("tuned",)  # the evaluated models the summary compares with base (paired delta)
    on_track: bool = True  # its flow ends with the promotion gate, so its runs may be on a track
    placebo: bool = False  # a control: it reuses the run it controls (--reuse) and keeps as many examples at random
    package: MethodPackage | None = None

    def check(self, cfg, origin: str = "config") -> None:
        """Cross-field checks of a whole run config for this method (InputError names `origin` and the field)."""
        if self.needs_gate and not any(s.gate for s in cfg.cascade.stages):
            from selfimprove.validation import InputError

            raise InputError(f"no stage gates (each has gate: false), so {self.name} would accept every candidate; "
                             "set gate: true on one, or run --method no_filter", file=origin, field="cascade.stages")


METHODS: dict[str, Method] = {}
PACKAGES: dict[str, MethodPackage] = {}


def register_method(method: Method) -> Method:
    if method.package is not None:
        PACKAGES.setdefault(method.package.name, method.package)
        declare(method.package.tables)  # the warehouse reads them from the storage layer
    if method.view is None:
        method = replace(method, view=method.package.view if method.package else "cascade")
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


def packages() -> list[MethodPackage]:
    return list(PACKAGES.values())


def package_training_text() -> dict[str, TrainingText]:
    return {table: text for p in PACKAGES.values() for table, text in p.training_text.items()}


def flow_module(flow: str) -> str:
    """The module that holds the flow `flow` (a function of that name) and its stage order `STAGES`."""
    package = PACKAGES.get(flow)
    return (package.flow_module if package else None) or f"selfimprove.flows.{flow}"


def options_of_flow(flow: str) -> tuple[Option, ...]:
    return PACKAGES[flow].options if flow in PACKAGES else ()
