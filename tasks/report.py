"""The end of a run: the paired base-vs-tuned comparison, the printed summary, Prefect artifacts."""
from __future__ import annotations

from prefect import task

from selfimprove.calibration import recommended_yaml
from selfimprove.evaluation import paired_difference
from warehouse import Lake
from warehouse.views import EXAMPLE_QUERIES, format_table, query

from .common import config_of, read


@task(name="summarize-run")
def summarize_run(ctx: dict, config: dict, manifests: dict) -> dict:
    cfg = config_of(config)
    lake, run_id = Lake(ctx["lake"]), ctx["run_id"]
    base = _best(manifests, "base")
    for model in ("tuned", "srt"):  # srt: SD-Zero's Phase-1 model, beside its final one
        other = _best(manifests, model)
        if base and other:  # with a T_eval sweep (SSD), each model at its own best temperature
            (b_label, b), (t_label, t) = base, other
            label = t_label if b_label == "base" else f"{t_label} vs {b_label}"
            delta = paired_difference(read(b, "eval_samples"), read(t, "eval_samples"), cfg.evaluation, label)
            lake.write("eval_metrics", run_id, [delta], part="delta" if model == "tuned" else f"delta-{model}")
    text = render_summary(lake, run_id, manifests, [st.name for st in cfg.cascade.stages])
    _artifacts(run_id, text, lake)
    return {"run_id": run_id, "summary": text}


def _best(manifests: dict, model: str) -> tuple[str, dict] | None:
    """(label, manifest) of `model`'s evaluation with the highest pass@1 (one unless T_eval is swept)."""
    best = None
    for key, m in manifests.items():
        if key == f"eval-{model}" or key.startswith(f"eval-{model}@"):
            p1 = next(r["value"] for r in read(m, "eval_metrics") if r["metric"] == "pass@1")
            if best is None or p1 > best[0]:
                best = (p1, key.removeprefix("eval-"), m)
    return best and (best[1], best[2])


def render_summary(lake: Lake, run_id: str, manifests: dict, stage_order: list[str]) -> str:
    r = f"'{run_id}'"
    out = [f"# selfimprove run {run_id}", ""]
    (_, [(n_seeds,)]) = query(lake, f"SELECT count(*) FROM seeds WHERE run_id = {r}")
    (_, [(n_cand, toks)]) = query(lake, f"SELECT count(*), coalesce(sum(n_tokens), 0) FROM candidates WHERE run_id = {r}")
    out.append(f"seeds: {n_seeds}   candidates: {n_cand} ({toks} generated tokens)")
    cols, rows = query(lake, "SELECT coalesce(rejected_at_stage, 'ACCEPTED') AS outcome, count(*) AS candidates "
                          f"FROM verdicts WHERE run_id = {r} GROUP BY 1 ORDER BY 2 DESC")
    if not rows:  # SD-Zero judges nothing: its section replaces the verdicts and judges
        out += sdzero_section(lake, run_id)
        return "\n".join(out + _training_and_eval(lake, run_id, manifests))
    out += ["", "## verdicts (where each candidate stopped)", format_table(cols, rows)]
    cols, rows = query(lake, "SELECT stage, count(DISTINCT candidate_id) AS judged, "
                          "count(*) FILTER (WHERE decision <> '') AS votes, "
                          "round(avg(CASE WHEN decision = 'Y' THEN 1 ELSE 0 END) FILTER (WHERE decision <> ''), 3) AS yes_rate, "
                          "count(*) FILTER (WHERE decision = 'unparseable') AS unparseable "
                          f"FROM judgments WHERE run_id = {r} GROUP BY stage ORDER BY list_position({stage_order!r}, stage)")
    out += ["", "## judge stages", format_table(cols, rows)]
    cols, rows = query(lake, "SELECT stage, metric, round(value, 3) AS value, n, round(ci_low, 3) AS ci95_low, "
                          f"round(ci_high, 3) AS ci95_high FROM judge_metrics WHERE run_id = {r} AND metric IN "
                          "('accept_rate','precision','recall','auroc','base_precision','judge_calls',"
                          "'judge_calls_per_accepted','candidate_accuracy') "
                          f"ORDER BY list_position({stage_order + ['all']!r}, stage), metric")
    out += ["", "## judge telemetry against ground truth (measurement only; the cascade never reads it)",
            format_table(cols, rows)]
    warnings = _chance_warnings(lake, run_id)
    if warnings:
        out += [""] + warnings
    return "\n".join(out + _training_and_eval(lake, run_id, manifests))


def _training_and_eval(lake: Lake, run_id: str, manifests: dict) -> list[str]:
    (_, [(n_train,)]) = query(lake, f"SELECT count(*) FROM train_examples WHERE run_id = '{run_id}'")
    train = manifests.get("train") or {}
    if train.get("skipped"):
        out = ["", f"training: skipped ({train['skipped']})"]
    else:
        out = ["", f"training: {n_train} examples, {train.get('steps')} steps, final loss {train.get('final_loss', float('nan')):.4f}"]
    out += ["", "## held-out evaluation (accuracy against test-time cost)", eval_table(lake, run_id)]
    out += ["", "## next: ask the lake", *(f"selfimprove sql \"{q.format(run_id=run_id)}\"  # {title}"
                                          for title, q in EXAMPLE_QUERIES.items())]
    return out


def sdzero_section(lake: Lake, run_id: str) -> list[str]:
    """Phases, Phase-1 tuples by control phrase, Phase-2 training in quarters, teacher syncs."""
    r = f"'{run_id}'"
    out = ["", "## SD-Zero seeds per phase (disjoint)",
           format_table(*query(lake, f"SELECT phase, count(*) AS seeds FROM seed_phases WHERE run_id = {r} GROUP BY 1 ORDER BY 1"))]
    out += ["", "## Phase 1: revision tuples by control phrase (kept = revision correct)", format_table(*query(lake, f"""
        SELECT reward_source, coalesce(control, 'ungraded') AS control, count(*) AS tuples, count(*) FILTER (WHERE kept) AS kept,
               round(avg(revised_reward::INT), 3) AS revised_correct_rate
        FROM revisions WHERE run_id = {r} GROUP BY 1, 2 ORDER BY 2"""))]
    out += ["", "## Phase 2: on-policy self-distillation, by quarter of the steps", format_table(*query(lake, f"""
        WITH s AS (SELECT *, ntile(4) OVER (ORDER BY step) AS quarter FROM distill_log WHERE run_id = {r} AND step > 0)
        SELECT quarter, min(step) AS from_step, max(step) AS to_step, round(avg(loss), 4) AS loss,
               round(avg(kl_reverse), 4) AS kl_reverse, round(avg(mean_reward), 3) AS rollout_reward,
               round(avg(response_tokens), 1) AS response_tokens, round(max(val_reward), 3) AS heldout_reward,
               max(teacher_syncs) AS syncs_so_far
        FROM s GROUP BY 1 ORDER BY 1"""))]
    cols, rows = query(lake, f"SELECT step, reason, round(val_reward, 3) AS heldout_reward, source_step AS copied_student_of_step "
                             f"FROM teacher_syncs WHERE run_id = {r} ORDER BY step")
    (_, [(v0, saved, v_saved)]) = query(lake, "SELECT max(val_reward) FILTER (WHERE step = 0), max(step) FILTER (WHERE saved), "
                                              f"max(val_reward) FILTER (WHERE saved) FROM distill_log WHERE run_id = {r}")
    fmt = lambda v: v if v is None else round(v, 3)  # noqa: E731
    out += ["", f"teacher syncs (held-out reward at step 0: {fmt(v0)})", format_table(cols, rows) if rows else "(none)",
            f"saved student: step {saved} (held-out reward {fmt(v_saved)}; step 0 = the SRT model unchanged)"]
    return out


def _chance_warnings(lake: Lake, run_id: str) -> list[str]:
    _, rows = query(lake, "SELECT stage, value, n, ci_low, ci_high FROM judge_metrics "
                       f"WHERE run_id = '{run_id}' AND metric = 'auroc' AND stage <> 'all'")
    return [f"WARNING: stage '{stage}' is indistinguishable from chance on this run (AUROC {v:.2f}, 95% CI "
            f"[{lo:.2f}, {hi:.2f}] over {n} labelled candidates): run `selfimprove calibrate` before trusting it"
            for stage, v, n, lo, hi in rows if lo is None or lo <= 0.5]


def _artifacts(run_id: str, text: str, lake: Lake) -> None:
    """Markdown summary and verdict table in the Prefect UI; silent outside a Prefect run."""
    try:
        from prefect.artifacts import create_markdown_artifact, create_table_artifact

        create_markdown_artifact(markdown="```\n" + text + "\n```", key="run-summary",
                                 description=f"selfimprove run {run_id}")
        cols, rows = query(lake, "SELECT coalesce(rejected_at_stage, 'ACCEPTED') AS outcome, reason, count(*) AS n "
                                 f"FROM verdicts WHERE run_id = '{run_id}' GROUP BY 1, 2 ORDER BY n DESC LIMIT 50")
        create_table_artifact(table=[dict(zip(cols, r)) for r in rows], key="verdicts-by-reason")
        cols, rows = query(lake, "SELECT stage, metric, round(value, 4) AS value, n, round(ci_low, 4) AS ci_low, "
                                 f"round(ci_high, 4) AS ci_high FROM judge_metrics WHERE run_id = '{run_id}' ORDER BY stage, metric")
        create_table_artifact(table=[dict(zip(cols, r)) for r in rows], key="judge-telemetry")
        sql = "\n".join(f"-- {title}\n{q.format(run_id=run_id)};\n" for title, q in EXAMPLE_QUERIES.items())
        create_markdown_artifact(markdown=f"Paste into `selfimprove sql` or DuckDB over the lake:\n```sql\n{sql}```",
                                 key="run-sql", description=f"SQL for run {run_id}")
    except Exception as e:  # artifacts are a view; a failure must not fail the run
        print(f"[summary] Prefect artifacts not created: {e}")


def eval_table(lake: Lake, run_id: str) -> str:
    """One row per model and dataset: pass@k with intervals, answer/error rates, calls and tokens per item."""
    cols, rows = query(lake, f"""
        SELECT model, dataset,
               string_agg(metric || ' ' || round(value, 3) || coalesce(' [' || round(ci_low, 3) || ', ' || round(ci_high, 3) || ']', ''), '; '
                          ORDER BY metric) FILTER (WHERE metric LIKE 'pass@%') AS "pass@k [95% CI]",
               max(n) FILTER (WHERE metric LIKE 'pass@%') AS items,
               round(max(value) FILTER (WHERE metric = 'no_answer_rate'), 3) AS no_answer,
               round(max(value) FILTER (WHERE metric = 'error_rate'), 3) AS errors,
               round(max(value) FILTER (WHERE metric = 'calls_per_item'), 2) AS calls_per_item,
               round(max(value) FILTER (WHERE metric = 'tokens_per_item'), 1) AS tokens_per_item
        FROM eval_metrics WHERE run_id = '{run_id}' GROUP BY model, dataset ORDER BY model""")
    return format_table(cols, rows, max_width=90)


def render_eval(lake_dir: str, run_id: str) -> str:
    return f"evaluation run {run_id}\n" + eval_table(Lake(lake_dir), run_id)


def render_calibration(lake_dir: str, run_id: str, rec: dict) -> str:
    cols, rows = query(Lake(lake_dir), "SELECT stage, metric, round(value, 3) AS value, n, round(ci_low, 3) AS ci95_low, "
                                       "round(ci_high, 3) AS ci95_high FROM judge_metrics "
                                       f"WHERE run_id = '{run_id}' AND metric IN ('accept_rate','precision','recall',"
                                       "'auroc','base_precision','unparseable_rate') ORDER BY stage, metric")
    return "\n".join([f"# calibration run {run_id}", format_table(cols, rows), "", "## verifiers", *rec["notes"], "",
                      "## recommended cascade (use with --config FILE)",
                      recommended_yaml(rec["stages"]) if rec["stages"] else "(no verifier carries signal: use no_filter)"])
