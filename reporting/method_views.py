"""What each family of methods adds to a run's summary, to `compare` and to the HTML report.

A method (`selfimprove.methods`) names its view; a view is a `MethodView` subclass registered with
`register_view`: the shared stages' views here, a method package's in `reporting/views/<view>.py`,
imported when first asked for. Shared code asks `view_of(lake, run_id)` and calls it; it never
branches on a flow's or a method's name. Every query takes the run id as a parameter (`$run`).
"""
from __future__ import annotations

import html
import importlib
import json
from typing import ClassVar

from selfimprove.methods import get_method
from selfimprove.warehouse.lake import Lake
from selfimprove.warehouse.document import Item, Table, as_html, html_table
from selfimprove.warehouse.views import PER_DOMAIN_HEADER, per_domain, query

Figure = tuple[str, str]  # (section title, HTML)


class MethodView:
    """The base view: a run that samples candidates. Subclasses add their own sections."""

    name: ClassVar[str] = ""
    generated: ClassVar[tuple[tuple[str, str], ...]] = (("candidates", "n_tokens"),)  # (table, column) summed as generated tokens

    def summary(self, lake: Lake, run_id: str) -> list[Item]:
        """Items (lines, tables) of the run summary between the counts and the training/eval part."""
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


def get_view(name: str) -> MethodView:
    """The registered view `name`; a method package's is imported from `selfimprove.reporting.views` on first use."""
    if name not in VIEWS:
        importlib.import_module(f"selfimprove.reporting.views.{name}")
    return VIEWS[name]


def view_of(lake: Lake, run_id: str) -> MethodView:
    config = run_config(lake, run_id)
    return get_view(get_method(config.get("method", "svd")).view)


def _gates(lake: Lake, run_id: str) -> dict[str, bool]:
    """Judge stage → whether it gates (rejects) or is advisory (only records its votes)."""
    return {s.get("name") or s["strategy"]: s.get("gate", True)
            for s in run_config(lake, run_id).get("cascade", {}).get("stages", [])}


def _estimate(metric: tuple | None) -> str:
    """'0.61 [0.48, 0.74]' from (value, n, ci_low, ci_high); '—' when not measured."""
    if not metric or metric[0] is None:
        return "—"
    v, _, lo, hi = metric
    return f"{v:.2f}" + (f" [{lo:.2f}, {hi:.2f}]" if lo is not None and hi is not None else "")


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
        out = ["", "## verdicts (where each candidate stopped)", Table(*query(lake, (
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
        out += ["", "## judge stages", Table(cols, rows)]
        out += ["", "## judge quality against ground truth (measurement only; the cascade never reads it)",
                self.judge_quality(lake, run_id)]
        cols, rows = query(lake, "SELECT metric, round(value, 3) AS value, n FROM judge_metrics WHERE run_id = $run "
                                 "AND stage = 'all' ORDER BY metric", p)
        if rows:
            out += ["", "## the cascade as a whole", Table(cols, rows)]
        notes = self.chance_notes(lake, run_id)
        return out + ([""] + notes if notes else [])

    def judge_quality(self, lake, run_id) -> Table:
        """Per judge stage: gating or advisory, votes, accept rate, precision / recall / AUROC with 95 % intervals
        over the labelled candidates, and for an advisory stage how many accepted candidates it voted N on."""
        p = {"run": run_id}
        gates = _gates(lake, run_id)
        order = stage_order(run_config(lake, run_id))
        metrics: dict[str, dict] = {}
        for stage, metric, v, n, lo, hi in query(lake, "SELECT stage, metric, value, n, ci_low, ci_high FROM judge_metrics "
                                                       "WHERE run_id = $run AND stage <> 'all'", p)[1]:
            metrics.setdefault(stage, {})[metric] = (v, n, lo, hi)
        votes = {stage: (k, judged, n_on_accepted) for stage, k, judged, n_on_accepted in query(lake, """
            SELECT stage, max(vote_index) + 1, count(DISTINCT candidate_id),
                   count(DISTINCT candidate_id) FILTER (WHERE decision = 'N' AND candidate_id IN
                       (SELECT candidate_id FROM verdicts WHERE run_id = $run AND accepted))
            FROM judgments WHERE run_id = $run AND model_call GROUP BY stage""", p)[1]}
        rows = []
        for stage in sorted(metrics.keys() | votes.keys(), key=lambda s: (order.index(s) if s in order else len(order), s)):
            m, (k, judged, n_on_accepted) = metrics.get(stage, {}), votes.get(stage, ("—", "—", "—"))  # —: calls no model
            gate = gates.get(stage, True)
            auroc = m.get("auroc")
            chance = ("at chance" if auroc[2] is None or auroc[2] <= 0.5 else "signal") if auroc else "n/a"
            rows.append((stage, "gates" if gate else "advisory", k, judged,
                         _estimate(m.get("accept_rate")), _estimate(m.get("precision")), _estimate(m.get("recall")),
                         _estimate(auroc), chance, auroc[1] if auroc else "—",
                         "—" if gate else n_on_accepted))
        return Table(["stage", "role", "votes", "judged", "accept rate", "precision [95% CI]", "recall [95% CI]",
                      "AUROC [95% CI]", "verdict", "labelled", "accepted despite N votes"], rows, max_width=44)

    def chance_notes(self, lake, run_id) -> list[str]:
        """A stage at chance is a warning when it gates; an advisory stage only records votes, so it gets a note."""
        gates = _gates(lake, run_id)
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
        return [self._funnel(lake, run_id, draw), self._domains(lake, run_id, draw),
                self._judge_quality(lake, run_id, draw), *self._votes(lake, run_id, draw)]

    def _funnel(self, lake, run_id, draw) -> Figure:
        steps = funnel(lake, run_id)
        uri = draw("funnel", lambda ax: (ax.barh([s for s, _, _ in steps][::-1], [n for _, n, _ in steps][::-1], color="#4878a8"),
                                         ax.set_xlabel("candidates"), ax.set_title("From candidates to training examples")))
        return ("Funnel", f'<img src="{uri}" alt="funnel">' +
                html_table(["step", "candidates", "what it means"], [(html.escape(a), n, html.escape(c)) for a, n, c in steps]))

    def _domains(self, lake, run_id, draw) -> Figure:
        domains = query(lake, """SELECT s.domain, count(*), avg(CASE WHEN v.accepted THEN 1 ELSE 0 END),
                   count(*) FILTER (WHERE v.accepted)
            FROM verdicts v JOIN candidates c USING (run_id, candidate_id) JOIN seeds s USING (run_id, seed_id)
            WHERE v.run_id = $run AND v.rejected_at_stage IS DISTINCT FROM 'not_judged' GROUP BY 1 ORDER BY 1""",
                        {"run": run_id})[1]
        if len(domains) == 1 and len(per_domain(lake, run_id)) == 1:
            (domain, judged, rate, accepted), = domains
            return ("Accept rate per domain", f"<p>Every seed of this run is from one domain, <b>{html.escape(domain)}</b>: "
                                              f"{accepted} of {judged} judged candidates accepted ({rate:.1%}).</p>")
        if not domains:
            return ("Accept rate per domain", "<p>No candidate was judged.</p>")
        uri = draw("domains", lambda ax: (ax.bar([d for d, *_ in domains], [r for _, _, r, _ in domains], color="#4878a8"),
                                          ax.set_ylabel("accept rate"), ax.set_ylim(0, 1),
                                          ax.set_title("Accept rate per domain (judged candidates)")))
        shown = [tuple("" if v is None else html.escape(str(v)) for v in row) for row in per_domain(lake, run_id)]
        return ("Per domain", f'<img src="{uri}" alt="domains">' + html_table(PER_DOMAIN_HEADER, shown))

    def _judge_quality(self, lake, run_id, draw) -> Figure:
        table = self.judge_quality(lake, run_id)
        notes = self.chance_notes(lake, run_id)
        intro = ("<p>Each judge stage scored against the seeds' ground-truth answers. The cascade never reads "
                 "them: this only measures how far its verdicts can be trusted. A <b>gating</b> stage rejects the "
                 "candidates it votes against; an <b>advisory</b> stage only records its votes, so candidates it voted "
                 "N on can still be accepted, by design (last column). AUROC whose 95% interval reaches 0.5 is "
                 "indistinguishable from chance; n/a: the labelled candidates were all right or all wrong, so there is "
                 "nothing to separate.</p>")
        aurocs = query(lake, "SELECT stage, value, ci_low, ci_high FROM judge_metrics WHERE run_id = $run "
                             "AND metric = 'auroc' AND stage <> 'all' ORDER BY list_position($order, stage), stage",
                       {"run": run_id, "order": stage_order(run_config(lake, run_id))})[1]
        figure = ""
        if aurocs:
            gates = _gates(lake, run_id)

            def plot(ax):
                for i, (stage, v, lo, hi) in enumerate(aurocs):
                    err = [[v - lo], [hi - v]] if lo is not None and hi is not None else None
                    ax.errorbar([i], [v], yerr=err, fmt="o", capsize=6, color="#c0392b" if gates.get(stage, True) else "#7f8c8d")
                ax.axhline(0.5, color="grey", ls="--", lw=1)
                ax.set_xticks(range(len(aurocs)), [f"{s}\n({'gates' if gates.get(s, True) else 'advisory'})" for s, *_ in aurocs])
                ax.set_xlim(-0.5, len(aurocs) - 0.5)
                ax.set_ylim(0, 1)
                ax.set_ylabel("AUROC (dashed: chance)")
                ax.set_title("Judge stages against ground truth, 95% bootstrap intervals")

            figure = f'<img src="{draw("judge_quality", plot)}" alt="judge quality">'
        warn = "".join(f'<p class="{"warning" if n.startswith("WARNING") else "note"}">{html.escape(n)}</p>' for n in notes)
        return ("Judge quality", intro + figure + as_html([table]) + warn)

    def _votes(self, lake, run_id, draw) -> list[Figure]:
        """How many of each candidate's votes said Y, per stage: one bar per possible count (0 of k … k of k)."""
        counts = query(lake, """WITH per AS (
                SELECT stage, candidate_id, count(*) AS k, count(*) FILTER (WHERE decision = 'Y') AS y FROM judgments
                WHERE run_id = $run AND decision IN ('Y', 'N', 'unparseable') AND model_call GROUP BY 1, 2)
            SELECT stage, k, y, count(*) FROM per GROUP BY 1, 2, 3 ORDER BY 1, 2, 3""", {"run": run_id})[1]
        if not counts:
            return []
        order = stage_order(run_config(lake, run_id))
        stages = sorted({s for s, *_ in counts}, key=lambda s: (order.index(s) if s in order else len(order), s))
        votes = {st: max(k for s, k, _, _ in counts if s == st) for st in stages}

        def plot(ax):
            x, ticks, labels = 0, [], []
            for i, st in enumerate(stages):
                k = votes[st]
                # a candidate with fewer votes (the stage stopped early) counts at its share of Y votes
                heights = [sum(n for s, kk, y, n in counts if s == st and round(y * k / kk) == j) for j in range(k + 1)]
                ax.bar(range(x, x + k + 1), heights, color=f"C{i}", label=f"{st} ({k} vote{'s' if k > 1 else ''})")
                ticks += range(x, x + k + 1)
                labels += [f"{j}/{k}" for j in range(k + 1)]
                x += k + 2  # a gap between stages
            ax.set_xticks(ticks, labels)
            ax.set_xlabel("Y votes of the candidate's votes in that stage")
            ax.set_ylabel("candidates")
            ax.set_title("Vote agreement per judge stage")
            ax.legend(loc="upper left", bbox_to_anchor=(1.01, 1), fontsize=8)

        uri = draw("votes", plot)
        rows = []
        for st in stages:
            k = votes[st]
            per = [(kk, y, n) for s, kk, y, n in counts if s == st]
            total = sum(n for _, _, n in per)
            unanimous = sum(n for kk, y, n in per if y in (0, kk))
            rows.append((html.escape(st), k, total,
                         f"{unanimous / total:.3f}" if k > 1 else "— (one vote: always unanimous)"))
        return [("Vote agreement", f'<img src="{uri}" alt="votes">' +
                 html_table(["stage", "votes per candidate", "candidates", "share with unanimous votes"], rows))]


# what each step of the funnel means, in words (a judge stage's step is added per stage)
FUNNEL_STEPS = {
    "not_judged": ("judged", "the others were never judged: another sample of the same question had already been "
                             "accepted (selection keeps one per question)"),
    "format": ("with a final answer in the expected format", "the others had no answer the scorer could read"),
    "error": ("generated without an error", "the others are error rows (the engine failed on them)"),
    "ground_truth": ("right by the seed's answer", "the others were wrong by the ground-truth scorer (RFT)"),
    "empty": ("not empty", "the others were empty outputs"),
    "length": ("not among the shortest", "the others were the shortest share of samples (SSD)"),
}


def funnel(lake: Lake, run_id: str) -> list[tuple[str, int, str]]:
    """(step, candidates still in, what the step means) from all candidates down to training examples."""
    p = {"run": run_id}
    (total,), = query(lake, "SELECT count(*) FROM candidates WHERE run_id = $run", p)[1]
    stops = dict(query(lake, "SELECT coalesce(rejected_at_stage, 'accepted'), count(*) FROM verdicts WHERE run_id = $run GROUP BY 1", p)[1])
    steps, left = [("candidates", total, "every sample drawn")], total
    order = ["error", "not_judged", "format"] + stage_order(run_config(lake, run_id))
    for stage in order + sorted(set(stops) - set(order) - {"accepted"}):  # rule filters (RFT, SSD) after the cascade
        if stage in stops:
            left -= stops[stage]
            label, meaning = FUNNEL_STEPS.get(stage, (f"passed stage {stage}", f"the others were rejected by the {stage} stage"))
            steps.append((label, left, meaning))
    (examples,), = query(lake, "SELECT count(*) FROM train_examples WHERE run_id = $run", p)[1]
    steps.append(("training examples", examples, "accepted candidates the selection rule kept for fine-tuning"))
    return steps


class DistillView(MethodView):
    """The on-policy distillation part of a method that distils (`selfimprove.training.self_distill`): training by
    quarter, teacher syncs, figure."""

    title: ClassVar[str] = ""
    start_name: ClassVar[str] = "the starting model"

    def distill_summary(self, lake, run_id) -> list[Item]:
        p = {"run": run_id}
        out = ["", f"## {self.title}: on-policy self-distillation, by quarter of the steps", Table(*query(lake, """
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
        out += ["", f"teacher syncs (held-out reward at step 0: {fmt(v0)})", Table(cols, rows) if rows else "(none)",
                f"saved student: step {saved} (held-out reward {fmt(v_saved)}; step 0 = {self.start_name} unchanged)"]
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
            ax.set_title(f"{self.title}: on-policy self-distillation")
            ax.legend()

        uri = draw("distill", plot)
        return [("Self-distillation", f'<img src="{uri}" alt="distill">' +
                 html_table(["sync at step", "reason", "held-out reward", "copied student of step"], syncs))]


@register_view
class EvaluateView(MethodView):
    """An evaluation run: held-out items only; nothing sampled for training."""

    name = "evaluate"
    generated = ()

