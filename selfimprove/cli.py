"""The `selfimprove` command: run flows, evaluate models, query the lake."""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# offline and quiet by default: nothing here may reach a hub or phone home
for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
                   "DO_NOT_TRACK": "1", "PREFECT_SERVER_ANALYTICS_ENABLED": "false",
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120", "TOKENIZERS_PARALLELISM": "false",
                   "TRANSFORMERS_VERBOSITY": "error"}.items():
    os.environ.setdefault(key, value)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="selfimprove", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="run a method's flow end to end")
    run.add_argument("flow", choices=["svd", "ssd", "rft", "sdzero"],
                     help="svd (self-verified), ssd (raw samples), rft (ground-truth filter), sdzero (self-revision + "
                          "self-distillation)")
    run.add_argument("--preset", default="quickstart", help="budgets: quickstart | full")
    run.add_argument("--method", default="svd", help="svd flow only: svd (the preset's cascade) | paper | simple | no_filter | agreement")
    run.add_argument("--config", help="YAML/JSON file overriding the preset")
    run.add_argument("--lake", help="lake root (default ./lake or $SELFIMPROVE_LAKE)")
    run.add_argument("--resume", metavar="RUN_ID", help="continue this run: finished stages are skipped")
    run.add_argument("--reuse", metavar="RUN_ID", help="copy that run's stages wherever their version matches")
    run.add_argument("--reward", choices=["ground_truth", "self_verified"],
                     help="sdzero only: grade responses by the seeds' answers (default) or by the model's own agreement")
    run.add_argument("--from-stage", choices=["candidates", "judge", "revise", "select", "contamination", "train", "distill",
                                              "eval-base"],
                     help="with --reuse: keep that run's earlier stages, recompute this one and the rest")
    run.add_argument("--no-cache", action="store_true", help="recompute stages even if an earlier run has the same version")
    run.add_argument("--uq-ttc", action="store_true", help="also evaluate the UQ-TTC test-time baseline on the held-out set")
    run.add_argument("--allow-contamination", action="store_true",
                     help="train even if training text overlaps a held-out set (recorded in the run)")

    cmp_ = sub.add_parser("compare", help="side-by-side table of runs: method, data, cost, held-out pass@1")
    cmp_.add_argument("run_ids", nargs="+")
    cmp_.add_argument("--lake")

    sql = sub.add_parser("sql", help="query the lake with DuckDB")
    sql.add_argument("query")
    sql.add_argument("--lake")

    ev = sub.add_parser("eval", help="evaluate a model on a held-out set, or rescore a stored evaluation")
    ev.add_argument("--model", default="default", help="'default' or a local checkpoint folder")
    ev.add_argument("--data", help="JSONL/CSV/Parquet of items for --scorer (math/task/choice: question, answer; "
                                   "choice: + choices; code: question or prompt, tests, entry_point)")
    ev.add_argument("--scorer", choices=["math", "choice", "task", "code"], help="how --data is scored (default math)")
    ev.add_argument("--dataset", choices=["arithmetic", "syllogism", "humaneval"], help="a built-in held-out set (default arithmetic)")
    ev.add_argument("--method", default="greedy", choices=["greedy", "uq_ttc"],
                    help="uq_ttc: sample n, judge with the preset's cascade, answer with the first accepted")
    ev.add_argument("--rescore", metavar="RUN_ID", help="reapply the scorers to that run's stored outputs; no generation")
    ev.add_argument("--lake")

    rep = sub.add_parser("report", help="write a self-contained HTML report (and PNG figures) for one run")
    rep.add_argument("run_id")
    rep.add_argument("--out", help="folder for report.html and the figures (default <lake>/reports/RUN_ID)")
    rep.add_argument("--lake")

    cal = sub.add_parser("calibrate", help="measure which verifiers carry signal for a model; recommend a cascade")
    cal.add_argument("--model", default="default")
    cal.add_argument("--preset", default="quickstart")
    cal.add_argument("--seeds", type=int, default=48, help="generated seed questions to calibrate on")
    cal.add_argument("--reuse", metavar="RUN_ID", help="reuse that run's seeds and candidates if they match")
    cal.add_argument("--lake")

    args = parser.parse_args(argv)
    try:
        if args.command == "sql":
            from warehouse import Lake
            from warehouse.views import format_table, query

            cols, rows = query(Lake(args.lake), args.query)
            print(format_table(cols, rows))
        elif args.command == "compare":
            from warehouse import Lake
            from warehouse.views import compare_runs, format_table

            cols, rows = compare_runs(Lake(args.lake), args.run_ids)
            print(format_table(cols, rows, max_width=48))
        elif args.command == "report":
            from warehouse import Lake
            from warehouse.report import write_report

            lake = Lake(args.lake)
            path = write_report(lake, args.run_id, Path(args.out) if args.out else lake.root / "reports" / args.run_id)
            print(f"report: {path}")
        elif args.command == "run":
            from selfimprove import config as configlib
            from selfimprove.seeds import load as load_seeds

            if args.from_stage and not args.reuse:
                raise ValueError("--from-stage needs --reuse RUN_ID (the run whose earlier stages are kept)")
            if args.flow != "svd" and args.method != "svd":
                raise ValueError(f"--method picks the SVD cascade; `run {args.flow}` is its own method")
            if args.reward and args.flow != "sdzero":
                raise ValueError("--reward belongs to `run sdzero`")
            method = args.method if args.flow == "svd" else args.flow
            if args.flow == "sdzero" and args.reward == "self_verified":
                method = "sdzero_self_verified"
            overrides = {"sdzero": {"reward": args.reward}} if args.reward else {}
            cfg = configlib.load(args.preset, args.config, overrides, method=method)  # bad config fails here, named
            if cfg.seeds.path:
                seeds = load_seeds(cfg.seeds)  # bad seeds fail here, before any flow run exists
                needs_answers = args.flow == "rft" or (args.flow == "sdzero" and cfg.sdzero.reward == "ground_truth")
                if needs_answers and any(not s["answer"] for s in seeds):
                    row = next(i for i, s in enumerate(seeds, 1) if not s["answer"])
                    raise ValueError(f"{cfg.seeds.path}, row {row}, field 'answer': missing ({args.flow} grades by "
                                     "ground truth" + ("; use --reward self_verified" if args.flow == "sdzero" else "") + ")")
            if args.uq_ttc:
                overrides["uq_ttc"] = {"enabled": True}
            if args.allow_contamination:
                overrides["contamination"] = {"allow": True}
            common = dict(preset=args.preset, config_file=args.config, lake=args.lake, run_id=args.resume, reuse=args.reuse,
                          overrides=overrides or None, from_stage=args.from_stage, cache=not args.no_cache)
            if args.flow == "svd":
                from flows.svd import svd

                result = svd(method=args.method, **common)
            elif args.flow == "ssd":
                from flows.ssd import ssd

                result = ssd(**common)
            elif args.flow == "rft":
                from flows.rft import rft

                result = rft(**common)
            else:
                from flows.sdzero import sdzero

                result = sdzero(reward=args.reward, **common)
            print("\n" + result["summary"])
        elif args.command == "calibrate":
            from flows.calibrate import calibrate

            result = calibrate(model=args.model, preset=args.preset, seeds_size=args.seeds, lake=args.lake,
                               reuse=args.reuse)
            print("\n" + result["summary"])
        elif args.command == "eval":
            from flows.evaluate import evaluate_flow, rescore_flow
            from selfimprove.datasets import read_user_file

            if args.rescore:
                result = rescore_flow(source_run=args.rescore, lake=args.lake)
            else:
                if args.data:
                    read_user_file(args.data, args.scorer or "math")  # bad input fails here, before any flow run exists
                result = evaluate_flow(model=args.model, data=args.data, scorer=args.scorer, dataset=args.dataset,
                                       method=args.method, lake=args.lake)
            print("\n" + result["summary"])
    except (ValueError, FileNotFoundError, KeyError) as e:
        print(f"selfimprove: error: {e}", file=sys.stderr)
        return 2
    except Exception as e:
        import duckdb

        if isinstance(e, duckdb.Error):
            print(f"selfimprove: SQL error: {e}", file=sys.stderr)
            return 2
        raise
    return 0


if __name__ == "__main__":
    sys.exit(main())
