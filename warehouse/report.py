"""`selfimprove report RUN_ID`: one self-contained HTML page (and its PNG figures) for a person.

Sections: the funnel from seeds to training examples (where candidates stopped), accept
rate per domain, vote agreement per judge stage, the training loss curve, held-out pass@1
of base and fine-tuned models with 95 % intervals, and example accepted and rejected
candidates with every judge call behind them. Figures are PNG files beside the page and
are embedded in it, so the page is one file that opens anywhere.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from .lake import Lake
from .views import query


def _figure(plot, path: Path) -> str:
    """Draw with `plot(ax)`, save the PNG to `path`, return it as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    plot(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png")
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _rows(lake: Lake, sql: str) -> list[tuple]:
    return query(lake, sql)[1]


def _table(headers: list[str], rows: list[tuple]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


def funnel(lake: Lake, run: str) -> list[tuple[str, int]]:
    """(step, candidates still in) from all candidates down to training examples."""
    (total,), = _rows(lake, f"SELECT count(*) FROM candidates WHERE run_id = '{run}'")
    stops = dict(_rows(lake, f"SELECT coalesce(rejected_at_stage, 'accepted'), count(*) FROM verdicts WHERE run_id = '{run}' GROUP BY 1"))
    steps, left = [("candidates", total)], total
    for stage in ["not_judged", "format"] + _stage_order(lake, run):
        if stage in stops:
            left -= stops[stage]
            steps.append((f"after {stage}", left))
    (examples,), = _rows(lake, f"SELECT count(*) FROM train_examples WHERE run_id = '{run}'")
    steps.append(("training examples", examples))
    return steps


def _stage_order(lake: Lake, run: str) -> list[str]:
    import json

    cfg = _rows(lake, f"SELECT config_json FROM runs WHERE run_id = '{run}'")
    if not cfg:
        return []
    return [s.get("name") or s["strategy"] for s in json.loads(cfg[0][0]).get("cascade", {}).get("stages", [])]


def write_report(lake: Lake, run: str, out_dir: Path) -> Path:
    out_dir.mkdir(parents=True, exist_ok=True)
    if not _rows(lake, f"SELECT 1 FROM runs WHERE run_id = '{run}'"):
        raise ValueError(f"no run {run!r} in the lake at {lake.root}")
    figs, parts = {}, []

    steps = funnel(lake, run)
    figs["funnel"] = _figure(lambda ax: (ax.barh([s for s, _ in steps][::-1], [n for _, n in steps][::-1], color="#4878a8"),
                                         ax.set_xlabel("candidates"), ax.set_title("From candidates to training examples")),
                             out_dir / "funnel.png")
    parts.append(("Funnel", f'<img src="{figs["funnel"]}" alt="funnel">' + _table(["step", "candidates"], steps)))

    domains = _rows(lake, f"""SELECT s.domain, count(*), round(avg(CASE WHEN v.accepted THEN 1 ELSE 0 END), 3)
        FROM verdicts v JOIN candidates c USING (run_id, candidate_id) JOIN seeds s USING (run_id, seed_id)
        WHERE v.run_id = '{run}' AND v.rejected_at_stage IS DISTINCT FROM 'not_judged' GROUP BY 1 ORDER BY 1""")
    parts.append(("Accept rate per domain", _table(["domain", "judged candidates", "accept rate"], domains)))

    shares = _rows(lake, f"""SELECT stage, avg(CASE WHEN decision = 'Y' THEN 1.0 ELSE 0.0 END) AS yes
        FROM judgments WHERE run_id = '{run}' AND decision IN ('Y', 'N', 'unparseable') AND call <> 'agreement'
        GROUP BY stage, candidate_id""")
    if shares:
        stages = sorted({s for s, _ in shares})
        figs["votes"] = _figure(lambda ax: (ax.hist([[y for s, y in shares if s == st] for st in stages], bins=6, range=(0, 1),
                                                    label=stages), ax.legend(), ax.set_xlabel("share of Y votes per candidate"),
                                            ax.set_ylabel("candidates"), ax.set_title("Vote agreement per judge stage")),
                                out_dir / "votes.png")
        unanimous = _rows(lake, f"""SELECT stage, count(*), round(avg(CASE WHEN y IN (0, 1) THEN 1 ELSE 0 END), 3) FROM (
            SELECT stage, candidate_id, avg(CASE WHEN decision = 'Y' THEN 1.0 ELSE 0.0 END) AS y FROM judgments
            WHERE run_id = '{run}' AND decision IN ('Y', 'N', 'unparseable') AND call <> 'agreement' GROUP BY 1, 2) GROUP BY 1 ORDER BY 1""")
        parts.append(("Vote agreement", f'<img src="{figs["votes"]}" alt="votes">' +
                      _table(["stage", "candidates", "share with unanimous votes"], unanimous)))

    loss = _rows(lake, f"SELECT step, loss FROM train_log WHERE run_id = '{run}' AND loss IS NOT NULL ORDER BY step")
    if loss:
        figs["loss"] = _figure(lambda ax: (ax.plot([s for s, _ in loss], [v for _, v in loss], marker="o", ms=3),
                                           ax.set_xlabel("step"), ax.set_ylabel("training loss"), ax.set_title("Fine-tuning loss")),
                               out_dir / "loss.png")
        parts.append(("Training", f'<img src="{figs["loss"]}" alt="loss">'))
    else:
        parts.append(("Training", "<p>No training in this run.</p>"))

    distill = _rows(lake, f"SELECT step, loss, mean_reward, val_reward FROM distill_log WHERE run_id = '{run}' ORDER BY step")
    if distill:  # SD-Zero Phase 2
        syncs = _rows(lake, f"SELECT step, reason, val_reward, source_step FROM teacher_syncs WHERE run_id = '{run}' ORDER BY step")

        def plot_distill(ax):
            for col, label in ((1, "divergence loss"), (2, "rollout reward"), (3, "held-out reward")):
                pts = [(r[0], r[col]) for r in distill if r[col] is not None]
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", ms=3, label=label)
            for step, *_ in syncs:
                ax.axvline(step, color="grey", ls=":", lw=1)
            ax.set_xlabel("step (dotted: teacher sync)")
            ax.set_title("SD-Zero Phase 2: on-policy self-distillation")
            ax.legend()
        figs["distill"] = _figure(plot_distill, out_dir / "distill.png")
        parts.append(("Self-distillation", f'<img src="{figs["distill"]}" alt="distill">' +
                      _table(["sync at step", "reason", "held-out reward", "copied student of step"], syncs)))

    evals = _rows(lake, f"""SELECT model, value, ci_low, ci_high, n FROM eval_metrics
        WHERE run_id = '{run}' AND metric = 'pass@1' ORDER BY model""")
    if evals:
        def plot_eval(ax):
            ax.bar([m for m, *_ in evals], [v for _, v, *_ in evals], color="#6aa56a",
                   yerr=[[v - lo for _, v, lo, _, _ in evals], [hi - v for _, v, _, hi, _ in evals]], capsize=6)
            ax.set_ylabel("held-out pass@1")
            ax.set_title("Held-out pass@1 with 95% bootstrap intervals")
        figs["eval"] = _figure(plot_eval, out_dir / "eval.png")
        delta = _rows(lake, f"SELECT value, ci_low, ci_high FROM eval_metrics WHERE run_id = '{run}' AND metric = 'pass@1_delta_vs_base' AND model LIKE 'tuned%'")
        note = f"<p>Paired difference tuned − base: {delta[0][0]:+.3f} [{delta[0][1]:+.3f}, {delta[0][2]:+.3f}]</p>" if delta else ""
        parts.append(("Held-out evaluation", f'<img src="{figs["eval"]}" alt="eval">' + note +
                      _table(["model", "pass@1", "95% low", "95% high", "items"],
                             [(m, f"{v:.3f}", f"{lo:.3f}", f"{hi:.3f}", n) for m, v, lo, hi, n in evals])))

    parts.append(("Example candidates", _examples(lake, run)))
    page = _page(run, parts)
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _examples(lake: Lake, run: str, per_kind: int = 3) -> str:
    picks = _rows(lake, f"""(SELECT candidate_id, 'accepted' FROM verdicts WHERE run_id = '{run}' AND accepted ORDER BY candidate_id LIMIT {per_kind})
        UNION ALL (SELECT candidate_id, 'rejected at ' || rejected_at_stage FROM verdicts WHERE run_id = '{run}' AND NOT accepted
                   AND rejected_at_stage NOT IN ('not_judged') ORDER BY candidate_id LIMIT {per_kind})""")
    index = "<ul>" + "".join(f'<li><a href="#{html.escape(c)}">{html.escape(c)}</a> ({html.escape(k)})</li>' for c, k in picks) + "</ul>"
    blocks = []
    for cid, kind in picks:
        (q, text, reason), = _rows(lake, f"""SELECT s.question, c.text, v.reason FROM candidates c JOIN seeds s USING (run_id, seed_id)
            JOIN verdicts v USING (run_id, candidate_id) WHERE c.run_id = '{run}' AND c.candidate_id = '{cid}'""")
        calls = _rows(lake, f"""SELECT stage, vote_index, call, decision, round(p_yes, 3), left(raw_output, 160) FROM judgments
            WHERE run_id = '{run}' AND candidate_id = '{cid}' ORDER BY stage, vote_index, call""")
        blocks.append(f'<h3 id="{html.escape(cid)}">{html.escape(cid)} — {html.escape(kind)}</h3>'
                      f"<p><b>question</b></p><pre>{html.escape(q)}</pre><p><b>candidate</b></p><pre>{html.escape(text)}</pre>"
                      f"<p><b>verdict</b>: {html.escape(reason)}</p>"
                      + _table(["stage", "vote", "call", "decision", "P(Y)", "raw output"],
                               [tuple(html.escape(str(x)) for x in r) for r in calls]))
    return index + "".join(blocks)


def _page(run: str, parts: list[tuple[str, str]]) -> str:
    nav = " · ".join(f'<a href="#s{i}">{html.escape(t)}</a>' for i, (t, _) in enumerate(parts))
    body = "".join(f'<section id="s{i}"><h2>{html.escape(t)}</h2>{c}</section>' for i, (t, c) in enumerate(parts))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>selfimprove run {html.escape(run)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
pre{{background:#f5f5f5;padding:8px;white-space:pre-wrap}}img{{max-width:100%}}</style></head>
<body><h1>selfimprove run {html.escape(run)}</h1><p>{nav}</p>{body}</body></html>"""
