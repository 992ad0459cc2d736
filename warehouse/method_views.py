"""What each family of methods adds to a run's summary, to `compare` and to the HTML report.

A method (`selfimprove.methods`) names its view; a view is a `MethodView` subclass registered
here. Shared code asks `view_of(lake, run_id)` and calls it; it never branches on a flow's or
a method's name. Every query takes the run id as a parameter (`$run`).
"""
from __future__ import annotations

import json
from typing import ClassVar

from selfimprove.methods import get_method
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.views import format_table, query

Figure = tuple[str, str]  # (section title, HTML)


class MethodView:
    """The base view: a run that samples candidates. Subclasses add their own sections."""

    name: ClassVar[str] = ""
    generated: ClassVar[tuple[tuple[str, str], ...]] = (("candidates", "n_tokens"),)  # (table, column) summed as generated tokens

    def summary(self, lake: Lake, run_id: str) -> list[str]:
        """Lines of the printed run summary between the counts and the training/eval part."""
        return []

    def label(self, config: dict) -> str:
        """The method as `compare` shows it."""
        return config.get("method", "")

    shows_candidates: ClassVar[bool] = False  # the report lists example candidates with their judge calls

    def figures(self, lake: Lake, run_id: str, draw) -> list[Figure]:
        """Report sections before the training curve; `draw(name, plot)` saves a figure, returns its data URI."""
        return []

    def late_figures(self, lake: Lake, run_id: str, draw) -> list[Figure]:
        """Report sections after the training curve."""
        return []

    def generated_tokens(self, lake: Lake, run_id: str) -> int:
        total = 0
        for table, column in self.generated:
            (_, [(n,)]) = query(lake, f"SELECT coalesce(sum({column}), 0) FROM {table} WHERE run_id = $run", {"run": run_id})
            total += int(n)
        return total


VIEWS: dict[str, MethodView] = {}


def register_view(cls: type[MethodView]) -> type[MethodView]:
    VIEWS[cls.name] = cls()
    return cls


def run_config(lake: Lake, run_id: str) -> dict:
    _, rows = query(lake, "SELECT config_json FROM runs WHERE run_id = $run", {"run": run_id})
    return json.loads(rows[0][0]) if rows else {}


def view_of(lake: Lake, run_id: str) -> MethodView:
    config = run_config(lake, run_id)
    return VIEWS[get_method(config.get("method", "svd")).view]


def stage_order(config: dict) -> list[str]:
    return [s.get("name") or s["strategy"] for s in config.get("cascade", {}).get("stages", [])]


@register_view
class CascadeView(MethodView):
    """SVD and its baselines, SSD, RFT, calibration: verdicts, judge stages and their telemetry."""

    name = "cascade"
    shows_candidates = True

    def summary(self, lake, run_id):
        p = {"run": run_id}
        order = stage_order(run_config(lake, run_id))
        out = ["", "## verdicts (where each candidate stopped)", format_table(*query(lake, (
            "SELECT coalesce(rejected_at_stage, 'ACCEPTED') AS outcome, count(*) AS candidates "
            "FROM verdicts WHERE run_id = $run GROUP BY 1 ORDER BY 2 DESC"), p))]
        cols, rows = query(lake, "SELECT stage, count(DISTINCT candidate_id) AS judged, "
                                 "count(*) FILTER (WHERE decision <> '') AS votes, "
                                 "round(avg(CASE WHEN decision = 'Y' THEN 1 ELSE 0 END) FILTER (WHERE decision <> ''), 3) AS yes_rate, "
                                 "count(*) FILTER (WHERE decision = 'unparseable') AS unparseable "
                                 "FROM judgments WHERE run_id = $run GROUP BY stage ORDER BY list_position($order, stage)",
                           {**p, "order": order})
        if not rows:
            return out
        out += ["", "## judge stages", format_table(cols, rows)]
        cols, rows = query(lake, "SELECT stage, metric, round(value, 3) AS value, n, round(ci_low, 3) AS ci95_low, "
                                 "round(ci_high, 3) AS ci95_high FROM judge_metrics WHERE run_id = $run AND metric IN "
                                 "('accept_rate','precision','recall','auroc','base_precision','judge_calls',"
                                 "'judge_calls_per_accepted','candidate_accuracy') "
                                 "ORDER BY list_position($order, stage), metric", {**p, "order": order + ["all"]})
        out += ["", "## judge telemetry against ground truth (measurement only; the cascade never reads it)",
                format_table(cols, rows)]
        notes = self.chance_notes(lake, run_id)
        return out + ([""] + notes if notes else [])

    def chance_notes(self, lake, run_id) -> list[str]:
        """A stage at chance is a warning when it gates; an advisory stage only records votes, so it gets a note."""
        gates = {s.get("name") or s["strategy"]: s.get("gate", True)
                 for s in run_config(lake, run_id).get("cascade", {}).get("stages", [])}
        _, rows = query(lake, "SELECT stage, value, n, ci_low, ci_high FROM judge_metrics "
                              "WHERE run_id = $run AND metric = 'auroc' AND stage <> 'all'", {"run": run_id})
        out = []
        for stage, v, n, lo, hi in rows:
            if lo is not None and lo > 0.5:
                continue
            where = f"(AUROC {v:.2f}, 95% CI [{lo:.2f}, {hi:.2f}] over {n} labelled candidates)" if lo is not None else f"(AUROC {v:.2f})"
            if gates.get(stage, True):
                out.append(f"WARNING: gating stage '{stage}' is indistinguishable from chance on this run {where}: "
                           "run `selfimprove calibrate` before trusting it")
            else:
                out.append(f"note: advisory stage '{stage}' is at chance on this run {where}; it records votes and "
                           "rejects nothing")
        return out

    def figures(self, lake, run_id, draw):
        p = {"run": run_id}
        parts = []
        steps = funnel(lake, run_id)
        uri = draw("funnel", lambda ax: (ax.barh([s for s, _ in steps][::-1], [n for _, n in steps][::-1], color="#4878a8"),
                                         ax.set_xlabel("candidates"), ax.set_title("From candidates to training examples")))
        parts.append(("Funnel", f'<img src="{uri}" alt="funnel">' + html_table(["step", "candidates"], steps)))
        domains = query(lake, """SELECT s.domain, count(*), round(avg(CASE WHEN v.accepted THEN 1 ELSE 0 END), 3)
            FROM verdicts v JOIN candidates c USING (run_id, candidate_id) JOIN seeds s USING (run_id, seed_id)
            WHERE v.run_id = $run AND v.rejected_at_stage IS DISTINCT FROM 'not_judged' GROUP BY 1 ORDER BY 1""", p)[1]
        parts.append(("Accept rate per domain", html_table(["domain", "judged candidates", "accept rate"], domains)))
        shares = query(lake, """SELECT stage, avg(CASE WHEN decision = 'Y' THEN 1.0 ELSE 0.0 END) AS yes
            FROM judgments WHERE run_id = $run AND decision IN ('Y', 'N', 'unparseable') AND model_call
            GROUP BY stage, candidate_id""", p)[1]
        if shares:
            stages = sorted({s for s, _ in shares})
            uri = draw("votes", lambda ax: (ax.hist([[y for s, y in shares if s == st] for st in stages], bins=6, range=(0, 1),
                                                    label=stages), ax.legend(), ax.set_xlabel("share of Y votes per candidate"),
                                            ax.set_ylabel("candidates"), ax.set_title("Vote agreement per judge stage")))
            unanimous = query(lake, """SELECT stage, count(*), round(avg(CASE WHEN y IN (0, 1) THEN 1 ELSE 0 END), 3) FROM (
                SELECT stage, candidate_id, avg(CASE WHEN decision = 'Y' THEN 1.0 ELSE 0.0 END) AS y FROM judgments
                WHERE run_id = $run AND decision IN ('Y', 'N', 'unparseable') AND model_call GROUP BY 1, 2)
                GROUP BY 1 ORDER BY 1""", p)[1]
            parts.append(("Vote agreement", f'<img src="{uri}" alt="votes">' +
                          html_table(["stage", "candidates", "share with unanimous votes"], unanimous)))
        return parts


def funnel(lake: Lake, run_id: str) -> list[tuple[str, int]]:
    """(step, candidates still in) from all candidates down to training examples."""
    p = {"run": run_id}
    (total,), = query(lake, "SELECT count(*) FROM candidates WHERE run_id = $run", p)[1]
    stops = dict(query(lake, "SELECT coalesce(rejected_at_stage, 'accepted'), count(*) FROM verdicts WHERE run_id = $run GROUP BY 1", p)[1])
    steps, left = [("candidates", total)], total
    for stage in ["not_judged", "format"] + stage_order(run_config(lake, run_id)):
        if stage in stops:
            left -= stops[stage]
            steps.append((f"after {stage}", left))
    (examples,), = query(lake, "SELECT count(*) FROM train_examples WHERE run_id = $run", p)[1]
    steps.append(("training examples", examples))
    return steps


def html_table(headers: list[str], rows: list[tuple]) -> str:
    import html

    head = "".join(f"<th>{html.escape(h)}</th>" for h in headers)
    body = "".join("<tr>" + "".join(f"<td>{c}</td>" for c in r) + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


@register_view
class SDZeroView(MethodView):
    """SD-Zero: phases, Phase-1 revision tuples, Phase-2 training and teacher syncs (it judges nothing)."""

    name = "sdzero"
    generated = (("candidates", "n_tokens"), ("revisions", "revised_n_tokens"), ("distill_samples", "n_tokens"))

    def label(self, config):
        return f"{config.get('method')} ({config.get('sdzero', {}).get('reward')})"

    def summary(self, lake, run_id):
        """Phases, Phase-1 tuples by control phrase, Phase-2 training in quarters, teacher syncs."""
        p = {"run": run_id}
        out = ["", "## SD-Zero seeds per phase (disjoint)",
               format_table(*query(lake, "SELECT phase, count(*) AS seeds FROM seed_phases WHERE run_id = $run GROUP BY 1 ORDER BY 1", p))]
        out += ["", "## Phase 1: revision tuples by control phrase (kept = revision correct)", format_table(*query(lake, """
            SELECT reward_source, coalesce(control, 'ungraded') AS control, count(*) AS tuples, count(*) FILTER (WHERE kept) AS kept,
                   round(avg(revised_reward::INT), 3) AS revised_correct_rate
            FROM revisions WHERE run_id = $run GROUP BY 1, 2 ORDER BY 2""", p))]
        out += ["", "## Phase 2: on-policy self-distillation, by quarter of the steps", format_table(*query(lake, """
            WITH s AS (SELECT *, ntile(4) OVER (ORDER BY step) AS quarter FROM distill_log WHERE run_id = $run AND step > 0)
            SELECT quarter, min(step) AS from_step, max(step) AS to_step, round(avg(loss), 4) AS loss,
                   round(avg(kl_reverse), 4) AS kl_reverse, round(avg(mean_reward), 3) AS rollout_reward,
                   round(avg(response_tokens), 1) AS response_tokens, round(max(val_reward), 3) AS heldout_reward,
                   max(teacher_syncs) AS syncs_so_far
            FROM s GROUP BY 1 ORDER BY 1""", p))]
        cols, rows = query(lake, "SELECT step, reason, round(val_reward, 3) AS heldout_reward, source_step AS copied_student_of_step "
                                 "FROM teacher_syncs WHERE run_id = $run ORDER BY step", p)
        (_, [(v0, saved, v_saved)]) = query(lake, "SELECT max(val_reward) FILTER (WHERE step = 0), max(step) FILTER (WHERE saved), "
                                                  "max(val_reward) FILTER (WHERE saved) FROM distill_log WHERE run_id = $run", p)
        fmt = lambda v: v if v is None else round(v, 3)  # noqa: E731
        out += ["", f"teacher syncs (held-out reward at step 0: {fmt(v0)})", format_table(cols, rows) if rows else "(none)",
                f"saved student: step {saved} (held-out reward {fmt(v_saved)}; step 0 = the SRT model unchanged)"]
        return out

    def late_figures(self, lake, run_id, draw):
        p = {"run": run_id}
        distill = query(lake, "SELECT step, loss, mean_reward, val_reward FROM distill_log WHERE run_id = $run ORDER BY step", p)[1]
        if not distill:
            return []
        syncs = query(lake, "SELECT step, reason, val_reward, source_step FROM teacher_syncs WHERE run_id = $run ORDER BY step", p)[1]

        def plot(ax):
            for col, label in ((1, "divergence loss"), (2, "rollout reward"), (3, "held-out reward")):
                pts = [(r[0], r[col]) for r in distill if r[col] is not None]
                ax.plot([x for x, _ in pts], [y for _, y in pts], marker="o", ms=3, label=label)
            for step, *_ in syncs:
                ax.axvline(step, color="grey", ls=":", lw=1)
            ax.set_xlabel("step (dotted: teacher sync)")
            ax.set_title("SD-Zero Phase 2: on-policy self-distillation")
            ax.legend()

        uri = draw("distill", plot)
        return [("Self-distillation", f'<img src="{uri}" alt="distill">' +
                 html_table(["sync at step", "reason", "held-out reward", "copied student of step"], syncs))]


@register_view
class EvaluateView(MethodView):
    """An evaluation run: held-out items only; nothing sampled for training."""

    name = "evaluate"
    generated = ()

