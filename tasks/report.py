"""The end of a run: the paired base-vs-tuned comparison, the printed summary, Prefect artifacts."""
from __future__ import annotations

from pathlib import Path

from prefect import task

from selfimprove.verification.calibration import recommended_yaml
from selfimprove.evaluation.heldout import paired_difference
from selfimprove.config import RunConfig
from selfimprove.methods import get_method
from selfimprove.tasks.common import StageContext, read, release_engines
from selfimprove.warehouse.lake import Lake, lake_location
from selfimprove.reporting.method_views import view_of
from selfimprove.warehouse.views import PER_DOMAIN_HEADER, per_domain, reading
from selfimprove.tasks.ui import markdown_artifact, table_artifact
from selfimprove.warehouse.document import Command, Item, Table, as_markdown, as_text
from selfimprove.warehouse.provenance import provenance, stages_table
from selfimprove.warehouse.run_status import RUNNING, set_status
from selfimprove.warehouse.views import EXAMPLE_QUERIES, query


@task(name="summarize-run")
def summarize_run(ctx: StageContext, cfg: RunConfig, manifests: dict) -> dict:
    release_engines()  # the run's model stages are over
    lake, run_id = Lake(ctx.lake), ctx.run_id
    set_status(lake, run_id, RUNNING, "summary")
    base = best_evaluation(manifests, "base")
    for model in get_method(cfg.method).trained:  # e.g. SD-Zero's Phase-1 model (srt) beside its final one
        other = best_evaluation(manifests, model)
        if base and other:  # with a T_eval sweep (SSD), each model at its own best temperature
            (b_label, b), (t_label, t) = base, other
            label = t_label if b_label == "base" else f"{t_label} vs {b_label}"
            delta = paired_difference(read(b, "eval_samples"), read(t, "eval_samples"), cfg.evaluation, label)
            lake.write("eval_metrics", run_id, [delta], part="delta" if model == "tuned" else f"delta-{model}")
    with reading(lake):  # one connection for the whole summary, its views built once
        items = summary_items(lake, run_id, closing=True)
        _artifacts(run_id, items, lake)
    return {"run_id": run_id, "summary": as_text(items)}


def best_evaluation(manifests: dict, model: str) -> tuple[str, dict] | None:
    """(label, manifest) of `model`'s evaluation with the highest pass@1 (one unless T_eval is swept)."""
    best = None
    for key, m in manifests.items():
        if key == f"eval-{model}" or key.startswith(f"eval-{model}@"):
            p1 = next(r["value"] for r in read(m, "eval_metrics") if r["metric"] == "pass@1")
            if best is None or p1 > best[0]:
                best = (p1, key.removeprefix("eval-"), m)
    return best and (best[1], best[2])


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


def _artifacts(run_id: str, items: list[Item], lake: Lake) -> None:
    """The summary (Markdown that wraps to the UI's width), verdicts, judge telemetry and SQL in the Prefect UI."""
    markdown_artifact("run-summary", as_markdown(items),
                      f"selfimprove run {run_id}: provenance, how each stage was made, results, next commands")
    cols, rows = query(lake, "SELECT coalesce(rejected_at_stage, 'ACCEPTED') AS outcome, reason, count(*) AS n "
                             "FROM verdicts WHERE run_id = $run GROUP BY 1, 2 ORDER BY n DESC LIMIT 50", {"run": run_id})
    if rows:
        table_artifact("verdicts-by-reason", [dict(zip(cols, r)) for r in rows],
                       f"Run {run_id}: candidates by where the cascade stopped them (ACCEPTED: passed every gating "
                       "stage) and the reason it gave, most frequent first")
    cols, rows = query(lake, "SELECT stage, metric, round(value, 4) AS value, n, round(ci_low, 4) AS ci_low, "
                             "round(ci_high, 4) AS ci_high FROM judge_metrics WHERE run_id = $run ORDER BY stage, metric",
                       {"run": run_id})
    if rows:
        table_artifact("judge-telemetry", [dict(zip(cols, r)) for r in rows],
                       f"Run {run_id}: each judge stage against the seeds' ground truth (measurement only; the cascade "
                       "never reads it): precision, recall, AUROC with 95% bootstrap intervals over n labelled candidates")
    stages = stages_table(lake, run_id)
    table_artifact("run-stages", [dict(zip(stages.columns, r)) for r in stages.rows],
                   f"Run {run_id}: every stage, computed / resumed from shards / copied from another run (and why), "
                   "its version, rows written, model calls, generated tokens and seconds")
    sql = "\n".join(f"-- {title}\n{q.format(run_id=run_id)};\n" for title, q in EXAMPLE_QUERIES.items())
    markdown_artifact("run-sql", f"Paste into `selfimprove sql` or DuckDB over the lake:\n```sql\n{sql}```",
                      f"SQL for run {run_id}")


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


def render_eval(lake_dir: str, run_id: str, note: str = "") -> str:
    """An evaluation run's table as text, and in the Prefect UI as the `eval-summary` artifact with its provenance."""
    lake = Lake(lake_dir)
    items: list[Item] = [f"evaluation run {run_id}", eval_table(lake, run_id)] + ([note] if note else [])
    markdown_artifact("eval-summary", as_markdown([f"# evaluation run {run_id}", *provenance(lake, run_id, closing=True),
                                                   "", *items[1:]]),
                      f"Evaluation run {run_id}: pass@k with 95% intervals, answer and error rates, cost per item")
    return as_text(items)


def render_calibration(lake_dir: str, run_id: str, rec: dict) -> str:
    """The calibration's telemetry and recommended cascade as text, and as the `calibration` artifact."""
    cols, rows = query(Lake(lake_dir), "SELECT stage, metric, round(value, 3) AS value, n, round(ci_low, 3) AS ci95_low, "
                                       "round(ci_high, 3) AS ci95_high FROM judge_metrics "
                                       "WHERE run_id = $run AND metric IN ('accept_rate','precision','recall',"
                                       "'auroc','base_precision','unparseable_rate') ORDER BY stage, metric", {"run": run_id})
    recommended = recommended_yaml(rec["stages"]) if rec["stages"] else "(no verifier carries signal: use no_filter)"
    items: list[Item] = [f"# calibration run {run_id}", Table(cols, rows), "", "## verifiers", *rec["notes"], "",
                         "## recommended cascade (use with --config FILE)"]
    markdown_artifact("calibration", as_markdown(items) + f"\n```yaml\n{recommended}\n```\n",
                      f"Calibration run {run_id}: each verifier against ground truth, and the cascade it recommends")
    return as_text(items + [recommended])
