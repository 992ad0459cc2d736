"""The `selfimprove` command: run flows, evaluate models, query the lake.

Each command is a function registered with `@command`: it adds its arguments to its own
parser and does its work when called; flows are imported only by the command that runs them.
Choices (flows, methods, presets, datasets, scorers, stages) are read from the registries.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Callable

import selfimprove.flows  # noqa: F401  (offline environment defaults, before anything reads them)
import selfimprove.methods  # noqa: F401  (every method package's tables, for the lake's views)

COMMANDS: dict[str, tuple[str, Callable, Callable]] = {}  # name → (help, add_arguments, run)


def command(name: str, help: str):
    """Register `run(args)`; the decorated function's `arguments` attribute fills its parser."""
    def deco(run):
        COMMANDS[name] = (help, getattr(run, "arguments", lambda p: None), run)
        return run
    return deco


def arguments(add: Callable[[argparse.ArgumentParser], None]):
    def deco(run):
        run.arguments = add
        return run
    return deco


def _run_arguments(p: argparse.ArgumentParser) -> None:
    from selfimprove.config import PRESETS
    from selfimprove.methods import METHODS, flows_of_command, methods_of_flow, packages

    flows = flows_of_command("run")
    p.add_argument("flow", choices=flows, help="; ".join(f"{f} ({', '.join(methods_of_flow(f))})" for f in flows))
    p.add_argument("--preset", default="quickstart", choices=sorted(PRESETS), help="budgets")
    run_methods = [m for f in flows for m in methods_of_flow(f)]
    p.add_argument("--method", choices=run_methods,
                   help=_literal("one of the flow's methods (default: the flow's own): " +
                                 "; ".join(f"{m}: {METHODS[m].help}" for m in run_methods)))
    p.add_argument("--config", help="YAML/JSON file overriding the preset")
    p.add_argument("--lake", help="lake root: a folder or s3://BUCKET/PREFIX (default ./lake or $SELFIMPROVE_LAKE)")
    p.add_argument("--resume", metavar="RUN_ID", help="continue this run: finished stages are skipped")
    p.add_argument("--reuse", metavar="RUN_ID", help="copy that run's stages wherever their version matches")
    for package in packages():  # each method package's run options (`run <its flow>` only)
        for option in package.options:
            p.add_argument(f"--{option.name.replace('_', '-')}", choices=option.choices,
                           help=_literal(f"{package.name} only: {option.help}"))
    p.add_argument("--from-stage", metavar="STAGE",
                   help="with --reuse: keep that run's earlier stages, recompute this one and the rest (a stage of "
                        "the flow after seeds, as the run summary lists them: candidates, judge, select, train, ...)")
    p.add_argument("--no-cache", action="store_true", help="recompute stages even if an earlier run has the same version")
    p.add_argument("--uq-ttc", action="store_true", help="also evaluate the UQ-TTC test-time baseline on the held-out set")
    p.add_argument("--tt-baselines", action="store_true",
                   help="also evaluate the base model's majority vote over sampling.n samples (maj@k) on the held-out "
                        "set, beside the tuned model's one call")
    p.add_argument("--allow-contamination", action="store_true",
                   help="train even if training text overlaps a held-out set (recorded in the run)")
    p.add_argument("--track", help="run on this track: start from its champion, take only new seeds, face the "
                                   "promotion gate (the config's `track:` section sets its policy)")
    p.add_argument("--rounds", type=int, metavar="K",
                   help="K rounds on the track, one after another, each from the champion the last one left")
    p.add_argument("--ray", nargs="?", const="", metavar="ADDRESS",
                   help="run the model stages' shards on Ray (ADDRESS: a cluster such as ray://head:10001 or auto; "
                        "none: a local cluster); the config's `executor:` section sets workers and resources")
    p.add_argument("--verbose", action="store_true", help="also print TRL's own progress bars and per-step loss dicts")


def _literal(text: str) -> str:
    """Help text from elsewhere (a method's description may say "10 %"), safe from argparse's %-formatting."""
    return text.replace("%", "%%")


RUN_FLAGS = {"run_id": "--resume", "reuse": "--reuse", "from_stage": "--from-stage"}


@command("run", "run a method's flow end to end")
@arguments(_run_arguments)
def run_command(args) -> None:
    import importlib

    from selfimprove.flows.pipeline import prepare_run, with_options
    from selfimprove.methods import flow_module, methods_of_flow, packages

    if args.verbose:
        os.environ["SELFIMPROVE_VERBOSE"] = "1"
    if args.method and args.method not in methods_of_flow(args.flow):
        raise ValueError(f"--method {args.method} is not a method of `run {args.flow}`: {methods_of_flow(args.flow)}")
    options = {o.name: (package.name, getattr(args, o.name)) for package in packages() for o in package.options}
    for name, (flow, value) in options.items():
        if value is not None and flow != args.flow:
            raise ValueError(f"--{name.replace('_', '-')} belongs to `run {flow}`")
    overrides: dict = with_options(args.flow, args.method, None, {n: v for n, (_, v) in options.items()}) or {}
    if args.ray is not None:
        overrides["executor"] = {"kind": "ray", **({"address": args.ray} if args.ray else {})}
    if args.track:
        overrides["track"] = {"name": args.track}
    if args.rounds is not None and args.rounds < 1:
        raise ValueError(f"--rounds {args.rounds}: at least 1")
    if args.rounds is not None and (args.resume or args.reuse):
        raise ValueError("--rounds resumes an unfinished round by itself; --resume and --reuse belong to one run")
    if args.uq_ttc:
        overrides["uq_ttc"] = {"enabled": True}
    if args.tt_baselines:
        overrides["majority"] = {"enabled": True}
    if args.allow_contamination:
        overrides["contamination"] = {"allow": True}
    module = importlib.import_module(flow_module(args.flow))
    resume = args.resume if args.rounds is None else _first_round(args, overrides)
    # the one start, before any flow run exists: the flow run takes what was prepared here (the same config); with
    # --rounds, round 1's run does
    cfg, _ = prepare_run(args.flow, args.preset, args.config, overrides or None, args.method, args.lake, resume,
                         args.reuse, args.from_stage, RUN_FLAGS, keep=True, stages=module.STAGES)
    method = cfg.method
    if args.rounds is not None:
        if not cfg.track.name:
            raise ValueError("--rounds runs on a track: add --track NAME (or track.name in the config)")
        from selfimprove.flows.rounds import rounds

        print("\n" + rounds(method=method, rounds=args.rounds, preset=args.preset, config_file=args.config,
                              lake=args.lake, overrides=overrides or None, cache=not args.no_cache)["summary"])
        return
    common = dict(preset=args.preset, config_file=args.config, lake=args.lake, run_id=args.resume, reuse=args.reuse,
                  overrides=overrides or None, from_stage=args.from_stage, cache=not args.no_cache, method=method)
    print("\n" + getattr(module, args.flow)(**common)["summary"])


def _first_round(args, overrides: dict) -> str | None:
    """The run the first of --rounds resumes (a round that did not finish), as the rounds flow will find it."""
    from selfimprove import config as configlib
    from selfimprove.warehouse import registry
    from selfimprove.warehouse.lake import Lake, lake_location

    track = configlib.requested(args.preset, args.config, overrides or None).track.name
    if not track:
        return None
    lake = Lake(lake_location(args.lake))
    return registry.unfinished_round(lake, track, len(registry.rounds_of(lake, track)) + 1)


def _experiment_arguments(p: argparse.ArgumentParser) -> None:
    from selfimprove.config import PRESETS

    p.add_argument("methods", nargs="+", help="methods to compare, e.g. svd random_keep no_filter rft (a placebo "
                                              "runs after the method of its flow it controls, on its candidates)")
    p.add_argument("--repeats", type=int, default=3, help="runs per method, each on its own seeds (default 3)")
    p.add_argument("--preset", default="quickstart", choices=sorted(PRESETS), help="budgets")
    p.add_argument("--config", help="YAML/JSON file overriding the preset")
    p.add_argument("--lake", help="lake root: a folder or s3://BUCKET/PREFIX (default ./lake or $SELFIMPROVE_LAKE)")
    p.add_argument("--resume", metavar="EXPERIMENT_ID", help="continue this experiment: completed runs are kept")
    p.add_argument("--tt-baselines", action="store_true", help="also evaluate each run's base model's maj@k")
    p.add_argument("--no-cache", action="store_true", help="recompute stages even if an earlier run has the same version")


@command("experiment", "methods x repeats on fresh seeds: mean pass@1 with intervals, deltas vs base and placebo")
@arguments(_experiment_arguments)
def experiment_command(args) -> None:
    from selfimprove import config as configlib
    from selfimprove.flows.experiment import arms, experiment

    arms(args.methods)  # an unknown method or a placebo without its method: one line, before any flow run
    if args.repeats < 1:
        raise ValueError(f"--repeats {args.repeats}: at least 1")
    overrides = {"majority": {"enabled": True}} if args.tt_baselines else None
    configlib.requested(args.preset, args.config, overrides)  # a bad config file: one line, before any flow run
    if args.resume:
        from selfimprove.reporting.experiment import experiment_runs

        if not experiment_runs(_existing_lake(args.lake), args.resume):
            raise ValueError(f"--resume {args.resume}: no run of that experiment in the lake")
    result = experiment(methods=args.methods, repeats=args.repeats, preset=args.preset, config_file=args.config,
                        lake=args.lake, overrides=overrides, experiment_id=args.resume, cache=not args.no_cache)
    print("\n" + result["summary"] + f"\n\nexperiment {result['experiment_id']}: selfimprove compare --experiment "
          f"{result['experiment_id']}")


def _compare_arguments(p):
    p.add_argument("run_ids", nargs="*")
    p.add_argument("--track", help="a track's rounds instead: challenger and champion per round, on the same items")
    p.add_argument("--experiment", metavar="ID", help="an experiment's table instead: each method over its repeats")
    p.add_argument("--lake")


def _note_if_not_completed(lake, run: str, consequence: str) -> None:
    """One line on stderr when a run failed, is running or was interrupted (older runs record no status)."""
    from selfimprove.warehouse.views import run_state

    state = run_state(lake, run)
    if state not in ("completed", "not recorded"):
        print(f"note: run {run} is not completed ({state}); {consequence}", file=sys.stderr)


@command("compare", "side-by-side table of runs: method, data, cost, held-out pass@1")
@arguments(_compare_arguments)
def compare_command(args) -> None:
    from selfimprove.reporting.compare import compare_runs
    from selfimprove.warehouse.views import format_table

    lake = _existing_lake(args.lake)
    if args.experiment:
        from selfimprove.reporting.experiment import experiment_runs, experiment_table
        from selfimprove.warehouse.document import as_text

        if not experiment_runs(lake, args.experiment):
            raise ValueError(f"experiment {args.experiment!r} has no run in the lake at {lake.location}")
        print(as_text(experiment_table(lake, args.experiment)))
        return
    if args.track:
        from selfimprove.warehouse.document import as_text
        from selfimprove.warehouse.registry import rounds_table

        table = rounds_table(lake, args.track)
        if not table.rows:
            raise ValueError(f"track {args.track!r} has no round in the lake at {lake.location} yet")
        print(as_text([table]))
        return
    if not args.run_ids:
        raise ValueError("compare needs run ids, or --track T")
    from selfimprove.warehouse.views import PER_DOMAIN_HEADER, per_domain, reading

    with reading(lake):  # one connection for the whole table
        cols, rows, notes = compare_runs(lake, args.run_ids)
        print(format_table(cols, rows, max_width=48))
        for note in notes:
            print(note)
        for run in args.run_ids:  # a run over several domains: its numbers per domain
            domains = per_domain(lake, run)
            if len(domains) > 1:
                print(f"\n{run} per domain:\n" + format_table(PER_DOMAIN_HEADER, domains, max_width=48))
    for run in args.run_ids:
        _note_if_not_completed(lake, run, "its numbers are partial")
    _warn_damaged(lake)


SQL_FORMATS = ("table", "csv", "json", "parquet")


def _sql_arguments(p):
    p.add_argument("query")
    p.add_argument("--lake")
    p.add_argument("--format", default="table", help=f"one of {', '.join(SQL_FORMATS)} (parquet needs --out)")
    p.add_argument("--out", metavar="FILE", help="write the result to FILE instead of printing it")


@command("sql", "query the lake with DuckDB (read-only); print the result or write it as CSV, JSON or Parquet")
@arguments(_sql_arguments)
def sql_command(args) -> None:
    from selfimprove.warehouse.views import format_table, query_arrow

    if args.format not in SQL_FORMATS:
        raise ValueError(f"--format {args.format!r}: one of {', '.join(SQL_FORMATS)}")
    if args.format == "parquet" and not args.out:
        raise ValueError("--format parquet writes a file: add --out FILE")
    lake = _existing_lake(args.lake)
    result = query_arrow(lake, args.query)
    if args.format == "table":
        text = format_table(result.column_names, [tuple(r.values()) for r in result.to_pylist()]) + "\n"
    else:
        import polars as pl

        frame = pl.from_arrow(result)
        text = frame.write_csv() if args.format == "csv" else frame.write_json() + "\n" if args.format == "json" else None
    if args.out:
        _write_result(Path(args.out), text, result)
        print(f"{result.num_rows} rows written to {args.out}")
    else:
        print(text, end="")
    _warn_damaged(lake)


def _write_result(path: Path, text: str | None, result) -> None:
    """The result as a file, whole or not at all (`text`, or Parquet when None)."""
    import pyarrow.parquet as pq

    from selfimprove.atomic import write_file

    write_file(path, lambda tmp: pq.write_table(result, tmp) if text is None else tmp.write_text(text, encoding="utf-8"))


def _export_arguments(p):
    p.add_argument("run_id", metavar="RUN")
    p.add_argument("--out", metavar="DIR", help="a new (or empty) folder for the data (or, with --model, the checkpoint)")
    p.add_argument("--eval-task", metavar="DIR", help="write the run's held-out set as an lm-evaluation-harness task "
                                                     "to this new folder instead (an independent check of its numbers)")
    p.add_argument("--format", default="hf", help="hf (Parquet per split + dataset card; the default), jsonl, "
                                                  "sharegpt, llamafactory (sharegpt + dataset_info.json)")
    p.add_argument("--pairs", action="store_true", help="add a `preference` split: per seed, an accepted sample "
                                                        "(chosen) against a rejected one (rejected), for DPO")
    p.add_argument("--model", action="store_true", help="export the run's fine-tuned checkpoint with its model card "
                                                        "instead of its data")
    p.add_argument("--push-to-hub", metavar="REPO", help="then upload the folder as one commit to this Hub repository "
                                                         "(token from HF_TOKEN)")
    p.add_argument("--lake")


@command("export", "write a run's curated data as a Hugging Face dataset folder (or jsonl, sharegpt, llamafactory)")
@arguments(_export_arguments)
def export_command(args) -> None:
    from selfimprove.reporting.export import export_model, export_run, push_to_hub

    if bool(args.out) == bool(args.eval_task):
        raise ValueError("export needs --out DIR (the data, or with --model the checkpoint) or --eval-task DIR")
    lake = _existing_lake(args.lake)
    if args.eval_task:
        from selfimprove.reporting.eval_task import export_eval_task

        names = export_eval_task(lake, args.run_id, args.eval_task)
        print(f"wrote lm-eval task(s) {', '.join(names)} to {args.eval_task}; run them with:\n  lm_eval --model hf "
              f"--model_args pretrained=MODEL,dtype=float32 --include_path {args.eval_task} --tasks {','.join(names)} "
              "--apply_chat_template --batch_size 1 --log_samples --output_path RESULTS")
        return
    if args.model:
        path = export_model(lake, args.run_id, args.out)
        print(f"exported the checkpoint of run {args.run_id} ({path}) with its model card to {args.out}")
    else:
        counts = export_run(lake, args.run_id, args.out, args.format, args.pairs)
        print(f"exported run {args.run_id} to {args.out} ({args.format}): "
              + ", ".join(f"{split} {n} rows" for split, n in counts.items()))
        if args.format == "hf":
            print(f'load it with: datasets.load_dataset("{args.out}")')
    if args.push_to_hub:
        print("pushed:", push_to_hub(Path(args.out), args.push_to_hub, "model" if args.model else "dataset"))


def _warn_damaged(lake) -> None:
    from selfimprove.warehouse.views import damaged_files

    for path, why in damaged_files(lake):
        print(f"selfimprove: warning: {path} is damaged ({why}); every view leaves it out", file=sys.stderr)


def _existing_lake(path: str | None):
    """The lake at `path`; a missing or empty one is an error that names the path read."""
    from selfimprove.warehouse.lake import Lake

    lake = Lake(path)
    if not lake.exists():
        raise ValueError(f"no lake at {lake.location} (pass --lake PATH or s3://BUCKET/PREFIX, or set "
                         "$SELFIMPROVE_LAKE; a run creates it)")
    if lake.is_empty():
        raise ValueError(f"the lake at {lake.location} is empty: no table has been written there yet")
    return lake


def _eval_arguments(p):
    from selfimprove.data.datasets import BUILTIN
    from selfimprove.scoring.scorers import SCORERS
    from selfimprove.evaluation.heldout import EVAL_METHODS

    p.add_argument("--model", action="append", help="'default' or a local checkpoint folder; repeat it to score several "
                                                    "models on the same items (paired deltas against the first)")
    p.add_argument("--data", help="JSONL/CSV/Parquet of items for --scorer (math/task/choice: question, answer; "
                                  "choice: + choices; code: question or prompt, tests, entry_point)")
    p.add_argument("--scorer", choices=sorted(SCORERS), help="how --data is scored (default math)")
    p.add_argument("--dataset", choices=sorted(BUILTIN), help="a built-in held-out set (default arithmetic)")
    p.add_argument("--method", default="greedy", choices=EVAL_METHODS,
                   help="uq_ttc: sample n, judge with the preset's cascade, answer with the first accepted; majority: "
                        "sample k, answer with the most frequent answer (maj@k, ties to the first reached)")
    p.add_argument("--k", type=int, metavar="K", help="majority: samples per item (default: the preset's sampling.n)")
    p.add_argument("--rescore", metavar="RUN_ID", help="reapply the scorers to that run's stored outputs; no generation")
    p.add_argument("--lake")


@command("eval", "evaluate models on a held-out set, or rescore a stored evaluation")
@arguments(_eval_arguments)
def eval_command(args) -> None:
    from selfimprove.data.datasets import read_user_file
    from selfimprove.flows.evaluate import evaluate_flow, rescore_flow
    from selfimprove.inference.models import resolve

    if args.rescore:
        _existing_lake(args.lake).require_run(args.rescore, "--rescore")  # before any flow run exists
        result = rescore_flow(source_run=args.rescore, lake=args.lake)
    else:
        names = args.model or ["default"]
        for name in names:
            resolve(name)  # a wrong model path fails here, before any flow run exists
        if args.data:
            read_user_file(args.data, args.scorer or "math")  # bad input fails here, before any flow run exists
        if args.k is not None and (args.method != "majority" or args.k < 1):
            raise ValueError(f"--k {args.k}: the samples of --method majority, at least 1")
        result = evaluate_flow(model=names, data=args.data, scorer=args.scorer, dataset=args.dataset,
                               method=args.method, lake=args.lake, k=args.k)
    print("\n" + result["summary"])


def _report_arguments(p):
    p.add_argument("run_id")
    p.add_argument("--out", help="folder for report.html and the figures (default <lake>/reports/RUN_ID; "
                                 "for an S3 lake ./reports/RUN_ID)")
    p.add_argument("--lake")


@command("report", "write a self-contained HTML report (and PNG figures) for one run")
@arguments(_report_arguments)
def report_command(args) -> None:
    from selfimprove.reporting.report import write_report

    lake = _existing_lake(args.lake)
    default = Path("reports") if lake.on_s3 else lake.root / "reports"
    print(f"report: {write_report(lake, args.run_id, Path(args.out) if args.out else default / args.run_id)}")
    _note_if_not_completed(lake, args.run_id, "the report shows what it has so far")
    _warn_damaged(lake)


def _calibrate_arguments(p):
    from selfimprove.config import PRESETS

    p.add_argument("--model", default="default")
    p.add_argument("--preset", default="quickstart", choices=sorted(PRESETS))
    p.add_argument("--seeds", type=int, default=48, help="generated seed questions to calibrate on")
    p.add_argument("--reuse", metavar="RUN_ID", help="reuse that run's seeds and candidates if they match")
    p.add_argument("--lake")


@command("calibrate", "measure which verifiers carry signal for a model; recommend a cascade")
@arguments(_calibrate_arguments)
def calibrate_command(args) -> None:
    from selfimprove.flows.calibrate import calibrate

    result = calibrate(model=args.model, preset=args.preset, seeds_size=args.seeds, lake=args.lake, reuse=args.reuse)
    print("\n" + result["summary"])


def _models_arguments(p):
    p.add_argument("--track", help="one track (default: every track)")
    p.add_argument("--lake")


@command("models", "a track's champions and every promotion decision, with its evidence")
@arguments(_models_arguments)
def models_command(args) -> None:
    from selfimprove.warehouse.document import as_text
    from selfimprove.warehouse.registry import champion, history

    lake = _existing_lake(args.lake)
    table = history(lake, args.track)
    if args.track and not table.rows:
        raise ValueError(f"track {args.track!r} has no decision in the lake at {lake.location} yet")
    print(as_text([table]))
    for track in sorted({r[0] for r in table.rows}):
        current = champion(lake, track)
        print(f"champion of {track}: " + (f"{current['model_id']} ({current['path']}), since {current['decided_at']}"
                                          if current else "none yet (runs start from the track's base)"))


def _promote_arguments(p):
    p.add_argument("run_id")
    p.add_argument("--track", required=True)
    p.add_argument("--reason", default="promoted by hand")
    p.add_argument("--lake")


@command("promote", "make a run's trained model its track's champion by hand (recorded as manual)")
@arguments(_promote_arguments)
def promote_command(args) -> None:
    from selfimprove.rounds.config import TrackConfig
    from selfimprove.warehouse.registry import promote_by_hand

    TrackConfig(name=args.track)  # a bad track name is refused by name
    lake = _existing_lake(args.lake)
    lake.require_run(args.run_id, "promote")
    row = promote_by_hand(lake, args.run_id, args.track, args.reason)
    print(f"champion of {args.track}: {row['model_id']} ({row['path']}), promoted by hand"
          + (f" over {row['previous_path']}" if row["previous_path"] else ""))


def build_parser() -> tuple[argparse.ArgumentParser, dict[str, argparse.ArgumentParser]]:
    """The CLI's parser and each command's own (the CLI reference in docs/ is generated from them)."""
    parser = argparse.ArgumentParser(prog="selfimprove", description=__doc__.splitlines()[0])
    parser.add_argument("--debug", action="store_true", help="show the full traceback of an error")
    sub = parser.add_subparsers(dest="command", required=True)
    commands = {}
    for name, (help_text, add, _) in COMMANDS.items():
        commands[name] = sub.add_parser(name, help=help_text, description=help_text)
        add(commands[name])
    return parser, commands


def main(argv: list[str] | None = None) -> int:
    """Exit 0 on success; 2 for a user's mistake (bad input, config, SQL, unknown run), 1 for a failure
    the user did not cause. Either is one line on stderr; `--debug` re-raises for the traceback."""
    args = build_parser()[0].parse_args(argv)
    try:
        COMMANDS[args.command][2](args)
    except Exception as e:
        if args.debug:
            raise
        code, line = _one_line(e)
        print(f"selfimprove: {line}", file=sys.stderr)
        return code
    return 0


def _one_line(e: Exception) -> tuple[int, str]:
    import duckdb

    if isinstance(e, duckdb.Error):
        return 2, "SQL error: " + str(e).splitlines()[0]
    if isinstance(e, (ValueError, FileNotFoundError, KeyError)):
        return 2, f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}"
    first = str(e).splitlines()[0] if str(e) else ""
    return 1, f"failed: {type(e).__name__}: {first} (rerun with --debug for the traceback)"


if __name__ == "__main__":
    sys.exit(main())
