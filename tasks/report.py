"""The end of a run: the paired base-vs-tuned comparison, the printed summary (`reporting/summary.py`) and the
Prefect artifacts."""
from __future__ import annotations

from prefect import task

from selfimprove.verification.calibration import recommended_yaml
from selfimprove.evaluation.heldout import paired_difference
from selfimprove.config import RunConfig
from selfimprove.methods import get_method
from selfimprove.tasks.common import StageContext, read, release_engines
from selfimprove.reporting.summary import eval_table, summary_items
from selfimprove.tasks.ui import markdown_artifact, table_artifact
from selfimprove.warehouse.document import Item, Table, as_markdown, as_text
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.provenance import provenance, stages_table
from selfimprove.warehouse.run_status import RUNNING, set_status
from selfimprove.warehouse.views import EXAMPLE_QUERIES, query, reading


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
