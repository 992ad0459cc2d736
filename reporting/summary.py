"""A run's summary as document items: provenance and stages, counts, the method's own section (its view), the
numbers per domain, training, held-out evaluation and what to run next. The run's last task prints it and puts
it in the Prefect UI (`tasks/report.py`); `compare`, the report and the rounds summary reuse its parts."""
from __future__ import annotations

from pathlib import Path

from selfimprove.reporting.evidence import evidence_items
from selfimprove.reporting.method_views import view_of
from selfimprove.warehouse.document import Command, Item, Table
from selfimprove.warehouse.lake import Lake, lake_location
from selfimprove.warehouse.provenance import provenance
from selfimprove.warehouse.views import EXAMPLE_QUERIES, PER_DOMAIN_HEADER, per_domain, query


def summary_items(lake: Lake, run_id: str, closing: bool = False) -> list[Item]:
    """Provenance and stages, counts, the method's own section (its view), training, held-out evaluation,
    what to run next (`closing`: rendered by the run's own last step)."""
    p = {"run": run_id}
    out: list[Item] = [f"# selfimprove run {run_id}", "", *provenance(lake, run_id, closing), ""]
    (_, [(n_seeds,)]) = query(lake, "SELECT count(*) FROM seeds WHERE run_id = $run", p)
    (_, [(n_cand, toks)]) = query(lake, "SELECT count(*), coalesce(sum(n_tokens), 0) FROM candidates WHERE run_id = $run", p)
    out.append(f"seeds: {n_seeds}   candidates: {n_cand} ({toks} generated tokens)")
    out += view_of(lake, run_id).summary(lake, run_id)
    out += domain_items(lake, run_id)
    return out + _training_and_eval(lake, run_id)


def domain_items(lake: Lake, run_id: str) -> list[Item]:
    """The per-domain table, for a run whose seeds or held-out items span more than one domain."""
    rows = per_domain(lake, run_id)
    if len(rows) < 2:
        return []
    return ["", "per domain (each scored by its own rules):", Table(PER_DOMAIN_HEADER, rows)]


def _training_and_eval(lake: Lake, run_id: str) -> list[Item]:
    (_, [(n_train,)]) = query(lake, "SELECT count(*) FROM train_examples WHERE run_id = $run", {"run": run_id})
    train = lake.read_manifest(run_id, "train") or {}
    if train.get("skipped"):
        out: list[Item] = ["", f"training: skipped ({train['skipped']})"]
    elif train:
        out = ["", f"training: {n_train} examples, {train.get('steps')} steps, final loss {train.get('final_loss', float('nan')):.4f}"]
    else:
        out = []
    _, checkpoints = query(lake, "SELECT checkpoint_id, path FROM checkpoints WHERE run_id = $run ORDER BY checkpoint_id",
                           {"run": run_id})
    out += [f"checkpoint {cid}: {path}" for cid, path in checkpoints]
    _, decisions = query(lake, "SELECT track, reason, round FROM promotions WHERE run_id = $run ORDER BY decided_at",
                         {"run": run_id})
    out += [f"track {track}" + (f", round {n}" if n else "") + f": {reason}" for track, reason, n in decisions]
    out += ["", "## held-out evaluation (accuracy against test-time cost)", eval_table(lake, run_id)]
    controls = evidence_items(lake, run_id)
    if controls:
        out += ["", "## the gain against its controls", *controls]
    cli = command()
    at = "" if lake.location == lake_location() else f" --lake {lake.location}"  # the commands reach this lake
    if checkpoints:
        out += ["", "## next: evaluate the fine-tuned model on other items",
                Command(f"{cli} eval --model {checkpoints[-1][1]} --model default --dataset arithmetic{at}")]
    out += ["", "## next: ask the lake", *(Command(f"{cli} sql \"{q.format(run_id=run_id)}\"{at}", title)
                                          for title, q in EXAMPLE_QUERIES.items())]
    for track in sorted({t for t, *_ in decisions}):
        out += ["", f"## next: the rounds of track {track}",
                Command(f"{cli} compare --track {track}{at}", "each round's challenger and champion on the same items"),
                Command(f"{cli} run {_flow_of(lake, run_id)} --track {track}{at}", "one more round, from the champion"),
                Command(f"{cli} models --track {track}{at}", "which model was champion when, and why")]
    return out


def _flow_of(lake: Lake, run_id: str) -> str:
    (_, [(flow,)]) = query(lake, "SELECT flow FROM runs WHERE run_id = $run", {"run": run_id})
    return flow


def command() -> str:
    """How to call the CLI from here: `selfimprove` when it is on PATH, else the interpreter's own copy."""
    import shutil
    import sys

    found = shutil.which("selfimprove")
    own = Path(sys.executable).with_name("selfimprove")
    if found and Path(found).resolve() == own.resolve():
        return "selfimprove"
    return str(own) if own.exists() else "selfimprove"


def eval_table(lake: Lake, run_id: str) -> Table:
    """One row per model and dataset: pass@k with intervals, answer/error rates, calls and tokens per item."""
    cols, rows = query(lake, """
        SELECT model, dataset,
               string_agg(metric || ' ' || round(value, 3) || coalesce(' [' || round(ci_low, 3) || ', ' || round(ci_high, 3) || ']', ''), '; '
                          ORDER BY metric) FILTER (WHERE metric LIKE 'pass@%') AS "pass@k [95% CI]",
               max(n) FILTER (WHERE metric LIKE 'pass@%') AS items,
               round(max(value) FILTER (WHERE metric = 'no_answer_rate'), 3) AS no_answer,
               round(max(value) FILTER (WHERE metric = 'error_rate'), 3) AS errors,
               round(max(value) FILTER (WHERE metric = 'calls_per_item'), 2) AS calls_per_item,
               round(max(value) FILTER (WHERE metric = 'tokens_per_item'), 1) AS tokens_per_item
        FROM eval_metrics WHERE run_id = $run GROUP BY model, dataset ORDER BY model""", {"run": run_id})
    return Table(cols, rows, max_width=90)
