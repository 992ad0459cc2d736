"""`selfimprove report RUN_ID`: one self-contained HTML page (and its PNG figures) for a person.

Sections: the run's provenance (what it ran, its status, which stages were computed, resumed or copied
from which run), the method's own (for a judged method the funnel from seeds to training examples,
accept rate per domain, judge quality against ground truth with gating and advisory stages marked,
and vote agreement per judge stage; for SD-Zero its Phase-2 curve and
syncs: `method_views.py`), the training loss curve, held-out pass@1 of base and fine-tuned models
with 95 % intervals, for a run on a track the
track's rounds (challenger and champion per round), and for judged methods example accepted and rejected candidates with every
judge call behind them. Figures are PNG files beside the page and
are embedded in it, so the page is one file that opens anywhere.
"""
from __future__ import annotations

import base64
import html
import io
from pathlib import Path

from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.document import as_html, html_table
from selfimprove.reporting.evidence import evidence_items
from selfimprove.reporting.method_views import run_config, stage_order, view_of
from selfimprove.warehouse.provenance import provenance
from selfimprove.warehouse.views import query, reading


def _figure(plot, path: Path) -> str:
    """Draw with `plot(ax)`, save the PNG to `path`, return it as a data URI."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 3.6), dpi=110)
    plot(ax)
    fig.tight_layout()
    buf = io.BytesIO()
    fig.savefig(buf, format="png", bbox_inches="tight")  # a legend outside the axes stays in the picture
    plt.close(fig)
    path.write_bytes(buf.getvalue())
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode()


def _rows(lake: Lake, sql: str, run: str) -> list[tuple]:
    return query(lake, sql, {"run": run})[1]


def write_report(lake: Lake, run: str, out_dir: Path) -> Path:
    lake.require_run(run, "report")  # before any folder is made
    out_dir.mkdir(parents=True, exist_ok=True)
    with reading(lake):  # one connection for every section, its views built once
        return _write(lake, run, out_dir)


def _write(lake: Lake, run: str, out_dir: Path) -> Path:
    draw = lambda name, plot: _figure(plot, out_dir / f"{name}.png")  # noqa: E731
    view = view_of(lake, run)
    parts = [("Run", as_html(provenance(lake, run)))] + view.figures(lake, run, draw)

    loss = _rows(lake, "SELECT step, loss FROM train_log WHERE run_id = $run AND loss IS NOT NULL ORDER BY step", run)
    if loss:
        uri = draw("loss", lambda ax: (ax.plot([s for s, _ in loss], [v for _, v in loss], marker="o", ms=3),
                                       ax.set_xlabel("step"), ax.set_ylabel("training loss"), ax.set_title("Fine-tuning loss")))
        parts.append(("Training", f'<img src="{uri}" alt="loss">'))
    else:
        parts.append(("Training", "<p>No training in this run.</p>"))
    parts += view.late_figures(lake, run, draw)

    evals = _rows(lake, """SELECT model, value, ci_low, ci_high, n FROM eval_metrics
        WHERE run_id = $run AND metric = 'pass@1' ORDER BY model""", run)
    if evals:
        def plot_eval(ax):
            ax.bar([m for m, *_ in evals], [v for _, v, *_ in evals], color="#6aa56a",
                   yerr=[[v - lo for _, v, lo, _, _ in evals], [hi - v for _, v, _, hi, _ in evals]], capsize=6)
            ax.set_ylabel("held-out pass@1")
            ax.set_title("Held-out pass@1 with 95% bootstrap intervals")
        uri = draw("eval", plot_eval)
        delta = _rows(lake, "SELECT value, ci_low, ci_high FROM eval_metrics WHERE run_id = $run "
                            "AND metric = 'pass@1_delta_vs_base' AND model LIKE 'tuned%'", run)
        note = f"<p>Paired difference tuned − base: {delta[0][0]:+.3f} [{delta[0][1]:+.3f}, {delta[0][2]:+.3f}]</p>" if delta else ""
        note += "".join(f"<p>{html.escape(line)}</p>" for line in evidence_items(lake, run))
        parts.append(("Held-out evaluation", f'<img src="{uri}" alt="eval">' + note +
                      html_table(["model", "pass@1", "95% low", "95% high", "items"],
                                 [(m, f"{v:.3f}", f"{lo:.3f}", f"{hi:.3f}", n) for m, v, lo, hi, n in evals])))
    parts += _rounds(lake, run)
    if view.shows_candidates:
        parts.append(("Example candidates", _examples(lake, run)))
    page = _page(run, parts)
    path = out_dir / "report.html"
    path.write_text(page, encoding="utf-8")
    return path


def _rounds(lake: Lake, run: str) -> list[tuple[str, str]]:
    """A run on a track: every round of its track so far, this one marked."""
    from selfimprove.warehouse.registry import rounds_table

    track = _rows(lake, "SELECT track FROM promotions WHERE run_id = $run AND track IS NOT NULL LIMIT 1", run)
    if not track:
        return []
    table = rounds_table(lake, track[0][0])
    rows = [tuple(f"{v} (this run)" if i == 1 and v == run else v for i, v in enumerate(r)) for r in table.rows]
    return [(f"Rounds of track {track[0][0]}", html_table(table.columns, rows))]


def _examples(lake: Lake, run: str, per_kind: int = 3) -> str:
    """Up to `per_kind` accepted and rejected candidates, each from a different question."""
    picks = query(lake, """WITH judged AS (
            SELECT v.candidate_id, c.seed_id, v.accepted,
                   CASE WHEN v.accepted THEN 'accepted' ELSE 'rejected at ' || v.rejected_at_stage END
                   || CASE WHEN l.correct THEN '; right by the seed''s answer' WHEN NOT l.correct
                           THEN '; wrong by the seed''s answer' ELSE '' END AS kind
            FROM verdicts v JOIN candidates c USING (run_id, candidate_id)
            LEFT JOIN candidate_labels l USING (run_id, candidate_id)
            WHERE v.run_id = $run AND v.rejected_at_stage IS DISTINCT FROM 'not_judged'),
        one AS (SELECT * FROM judged QUALIFY row_number() OVER (PARTITION BY seed_id, accepted ORDER BY candidate_id) = 1)
        (SELECT candidate_id, kind FROM one WHERE accepted ORDER BY seed_id LIMIT $k)
        UNION ALL (SELECT candidate_id, kind FROM one WHERE NOT accepted ORDER BY seed_id DESC LIMIT $k)""",
                  {"run": run, "k": per_kind})[1]
    order = stage_order(run_config(lake, run))
    index = "<ul>" + "".join(f'<li><a href="#{html.escape(c)}">{html.escape(c)}</a> ({html.escape(k)})</li>' for c, k in picks) + "</ul>"
    blocks = []
    for cid, kind in picks:
        p = {"run": run, "cid": cid}
        (q, text, reason), = query(lake, """SELECT s.question, c.text, v.reason FROM candidates c JOIN seeds s USING (run_id, seed_id)
            JOIN verdicts v USING (run_id, candidate_id) WHERE c.run_id = $run AND c.candidate_id = $cid""", p)[1]
        calls = query(lake, """SELECT stage, vote_index, call, decision, round(p_yes, 3), left(raw_output, 160) FROM judgments
            WHERE run_id = $run AND candidate_id = $cid ORDER BY list_position($order, stage), vote_index, call""",
                      {**p, "order": order})[1]
        blocks.append(f'<h3 id="{html.escape(cid)}">{html.escape(cid)} — {html.escape(kind)}</h3>'
                      f"<p><b>question</b></p><pre>{html.escape(q)}</pre><p><b>candidate</b></p><pre>{html.escape(text)}</pre>"
                      f"<p><b>verdict</b>: {html.escape(reason)}</p>"
                      + html_table(["stage", "vote", "call", "decision", "P(Y)", "raw output"],
                               [tuple(html.escape(str(x)) for x in r) for r in calls]))
    return index + "".join(blocks)


def _page(run: str, parts: list[tuple[str, str]]) -> str:
    nav = " · ".join(f'<a href="#s{i}">{html.escape(t)}</a>' for i, (t, _) in enumerate(parts))
    body = "".join(f'<section id="s{i}"><h2>{html.escape(t)}</h2>{c}</section>' for i, (t, c) in enumerate(parts))
    return f"""<!doctype html><html lang="en"><head><meta charset="utf-8"><title>selfimprove run {html.escape(run)}</title>
<style>body{{font-family:system-ui,sans-serif;max-width:980px;margin:2em auto;padding:0 1em;color:#222}}
table{{border-collapse:collapse;margin:.5em 0}}td,th{{border:1px solid #ccc;padding:3px 8px;font-size:13px;text-align:left}}
pre{{background:#f5f5f5;padding:8px;white-space:pre-wrap}}img{{max-width:100%}}
.warning{{background:#fdecea;border-left:4px solid #c0392b;padding:6px 10px}}.note{{background:#eef4fb;border-left:4px solid #4878a8;padding:6px 10px}}</style></head>
<body><h1>selfimprove run {html.escape(run)}</h1><p>{nav}</p>{body}</body></html>"""
