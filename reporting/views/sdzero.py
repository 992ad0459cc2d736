"""SD-Zero's view: its phases, Phase 1's revision tuples, then the shared distillation part."""
from __future__ import annotations

from selfimprove.reporting.method_views import DistillView, register_view
from selfimprove.warehouse.document import Table
from selfimprove.warehouse.views import query


@register_view
class SDZeroView(DistillView):
    """SD-Zero: phases, Phase-1 revision tuples, Phase-2 training and teacher syncs (it judges nothing)."""

    name = "sdzero"
    title = "Phase 2"
    start_name = "the SRT model"
    generated = (("candidates", "n_tokens"), ("revisions", "revised_n_tokens"), ("distill_samples", "n_tokens"))

    def label(self, config):
        return f"{config.get('method')} ({config.get('sdzero', {}).get('reward')})"

    def summary(self, lake, run_id):
        """Phases, Phase-1 tuples by control phrase, Phase-2 training in quarters, teacher syncs."""
        p = {"run": run_id}
        out = ["", "## SD-Zero seeds per phase (disjoint)",
               Table(*query(lake, "SELECT phase, count(*) AS seeds FROM seed_phases WHERE run_id = $run GROUP BY 1 ORDER BY 1", p))]
        out += ["", "## Phase 1: revision tuples by control phrase (kept = revision correct)", Table(*query(lake, """
            SELECT reward_source, coalesce(control, 'ungraded') AS control, count(*) AS tuples, count(*) FILTER (WHERE kept) AS kept,
                   round(avg(revised_reward::INT), 3) AS revised_correct_rate
            FROM revisions WHERE run_id = $run GROUP BY 1, 2 ORDER BY 2""", p))]
        return out + self.distill_summary(lake, run_id)
