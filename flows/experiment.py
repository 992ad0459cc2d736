"""An experiment: methods x repeats, each repeat its own generator and sampling seeds on the same held-out items,
one subflow per run, resumable; its table says what each method gains over base, over the placebo and against
the base model's majority vote.

Within a repeat the methods run in the order given, except that a placebo (`random_keep`) runs after the method
it controls (the first non-placebo method of its flow) and reuses that run's seeds and candidates. Every run
carries its arm in its config (`experiment: <id>/<repeat>/<method>`); running the same experiment id again skips
the arms that completed and resumes the one that did not.
"""
from __future__ import annotations

import importlib
import uuid
from datetime import datetime, timezone

from prefect import flow

from selfimprove import config as configlib
from selfimprove.flows.parameters import documented
from selfimprove.methods import METHODS, flow_module, get_method
from selfimprove.reporting.experiment import experiment_runs, experiment_table
from selfimprove.tasks.ui import markdown_artifact, say
from selfimprove.validation import InputError
from selfimprove.warehouse.document import as_markdown, as_text
from selfimprove.warehouse.lake import Lake, lake_location

SEED_STRIDE = 1009  # repeat r takes generator seed base + 1009 r and sampling seed base + r


def arms(methods: list[str]) -> list[tuple[str, str | None]]:
    """(method, the method it controls) in run order: each placebo right after the method it controls."""
    unknown = [m for m in methods if m not in METHODS or get_method(m).command != "run"]
    if unknown:
        runnable = [m for m, d in METHODS.items() if d.command == "run"]
        raise InputError(f"{', '.join(unknown)}: not a method `run` starts; one of {', '.join(runnable)}", field="methods")
    if len(set(methods)) != len(methods):
        raise InputError("each method once", field="methods")
    placebo = lambda m: get_method(m).placebo  # noqa: E731
    missing = [p for p in methods if placebo(p) and _controlled(p, methods) is None]
    if missing:
        raise InputError(f"{', '.join(missing)} controls a method of its flow: add one (e.g. svd)", field="methods")
    order: list[tuple[str, str | None]] = []
    for m in (m for m in methods if not placebo(m)):
        order += [(m, None)] + [(p, m) for p in methods if placebo(p) and _controlled(p, methods) == m]
    return order


def _controlled(placebo: str, methods: list[str]) -> str | None:
    flow_name = get_method(placebo).flow
    return next((m for m in methods if not get_method(m).placebo and get_method(m).flow == flow_name), None)


def new_experiment_id() -> str:
    return f"exp-{datetime.now(timezone.utc):%Y%m%dT%H%M%S}-{uuid.uuid4().hex[:6]}"


@flow(name="experiment")
@documented("experiment", methods="The methods to compare, e.g. svd, random_keep, no_filter, rft (a placebo runs "
                                  "after the method of its flow it controls, reusing its candidates).",
            repeats="Repeats per method, each with its own generator and sampling seeds, on the same held-out items.",
            experiment_id="Resume this experiment: completed runs are kept, an unfinished one is resumed. Empty: a new "
                          "experiment.")
def experiment(methods: list[str], repeats: int = 3, preset: str = "quickstart", config_file: str | None = None,
               lake: str | None = None, overrides: dict | None = None, experiment_id: str | None = None,
               cache: bool = True) -> dict:
    """Each method `repeats` times on fresh seeds, and the table of what each gains, with intervals over repeats."""
    order = arms(list(methods))
    if repeats < 1:
        raise InputError(f"{repeats}: at least 1", field="repeats")
    exp = experiment_id or new_experiment_id()
    base = configlib.requested(preset, config_file, overrides)
    lk = Lake(lake_location(lake))
    done = {(r["repeat"], r["method"]): r for r in experiment_runs(lk, exp)}
    for repeat in range(1, repeats + 1):
        # the held-out set is fixed, and each repeat's seeds leave out its questions: every repeat scores the same items
        seeds = {"seeds": {"seed": base.seeds.seed + SEED_STRIDE * (repeat - 1)},
                 "sampling": {"seed": base.sampling.seed + repeat - 1}, "evaluation": {"fixed": True}}
        runs: dict[str, str] = {}
        for method, controls in order:
            arm = f"{exp}/{repeat}/{method}"
            found = done.get((repeat, method))
            if found and found["status"] == "completed":
                say(f"[experiment] {arm}: completed as run {found['run_id']}, kept")
                runs[method] = found["run_id"]
                continue
            say(f"[experiment] {arm}" + (f": resuming run {found['run_id']}" if found else ""))
            flow_name = get_method(method).flow
            method_flow = getattr(importlib.import_module(flow_module(flow_name)), flow_name)
            result = method_flow.with_options(flow_run_name=arm.replace("/", "-"))(
                preset=preset, config_file=config_file, lake=lake, cache=cache, method=method,
                overrides=configlib.merge(overrides or {}, {**seeds, "experiment": arm}),
                run_id=found["run_id"] if found else None, reuse=runs[controls] if controls else None)
            runs[method] = result["run_id"]
    items = experiment_table(lk, exp)
    markdown_artifact("experiment", as_markdown(items), description=f"experiment {exp}")
    return {"experiment_id": exp, "runs": [r["run_id"] for r in experiment_runs(lk, exp)], "summary": as_text(items)}

