"""What every flow parameter means, said once: `documented` writes a flow's `Args:` section from it (and a method
package's run options from the package), and Prefect reads that section into the parameter descriptions of the
"Custom run" form."""
from __future__ import annotations

import inspect

DESCRIPTIONS = {
    "preset": "Budget preset: {presets}. Every value it sets can be overridden by config_file or overrides.",
    "config_file": "Path (on the worker) of a YAML or JSON file overriding the preset, e.g. a cascade from "
                   "`selfimprove calibrate`. Empty: the preset alone.",
    "lake": "Lake root: a folder on the worker or s3://BUCKET/PREFIX (S3 credentials come from the worker's AWS "
            "environment, never from here). Empty: $SELFIMPROVE_LAKE, else ./lake.",
    "overrides": "Config values over the preset and config_file, as a JSON object, e.g. "
                 '{{"sampling": {{"n": 4}}, "seeds": {{"size": 100}}}}. Unknown keys are refused by name.',
    "run_id": "Resume this earlier run: its finished stages are skipped and an interrupted stage continues "
              "from its finished shards. Empty: a new run.",
    "method": "Which of this flow's methods runs: {methods}.",
    "reuse": "Run id to copy stages from: each stage whose version (config, prompts, model, input data) matches "
             "that run's is copied instead of recomputed. With from_stage, the stages before from_stage are "
             "copied whatever their version. Empty: no run preferred (the cache may still copy).",
    "from_stage": "With reuse: the first stage to recompute (e.g. judge, select, train); the stages before it are "
                  "pinned to the reused run's output. Empty: every stage is checked by version.",
    "cache": "Copy a stage from any earlier run with the same version. Off: recompute every stage not in "
             "this run already.",
    "model": "'default' (the embedded model) or a checkpoint folder on the worker; several to compare them on "
             "the same items.",
    "data": "A held-out file (JSONL/CSV/Parquet with question and answer) scored by `scorer`. Empty: dataset.",
    "scorer": "How answers in `data` are graded: {scorers}. Empty: the preset's.",
    "dataset": "A built-in held-out set: {datasets}. Empty: the preset's.",
    "source_run": "The run whose stored evaluation outputs are rescored; nothing is regenerated.",
    "seeds_size": "How many generated seeds with ground truth the calibration judges.",
    "seed": "The seed generator's seed; keep it apart from the training seeds' (the default is).",
}


def documented(flow_name: str, **own: str):
    """A decorator appending an `Args:` section for the function's parameters (from DESCRIPTIONS, choices
    read from the registries; `own` for a parameter that means something else in this flow) to its docstring;
    apply it below `@flow` so Prefect sees the finished docstring."""
    def deco(fn):
        params = list(inspect.signature(fn).parameters)
        text = {**DESCRIPTIONS, **_options(flow_name), **own}
        missing = [n for n in params if n not in text]
        if missing:
            raise KeyError(f"flow {flow_name}: no description for parameters {missing}")
        args = "\n".join(f"    {n}: {text[n].format(**_choices(flow_name))}" for n in params)
        fn.__doc__ = f"{inspect.cleandoc(fn.__doc__ or '')}\n\nArgs:\n{args}\n"
        return fn
    return deco


def _options(flow_name: str) -> dict[str, str]:
    """The flow's run options, described by the method package that declares them."""
    from selfimprove.methods import options_of_flow

    return {o.name: f"{o.help}. Empty: the config's." for o in options_of_flow(flow_name)}


def _choices(flow_name: str) -> dict[str, str]:
    from selfimprove.config import PRESETS
    from selfimprove.data.datasets import BUILTIN
    from selfimprove.scoring.scorers import SCORERS
    from selfimprove.methods import methods_of_flow

    return {"presets": ", ".join(PRESETS), "datasets": ", ".join(BUILTIN), "scorers": ", ".join(SCORERS),
            "methods": ", ".join(methods_of_flow(flow_name)) or flow_name}
