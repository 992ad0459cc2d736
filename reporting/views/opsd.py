"""OPSD's view: what each seed's teacher read, then the shared distillation part."""
from __future__ import annotations

from selfimprove.reporting.method_views import DistillView, register_view
from selfimprove.warehouse.document import Table
from selfimprove.warehouse.views import query


@register_view
class OPSDView(DistillView):
    """OPSD: each seed's privileged information by phase, then the distillation (it judges only for its PI or
    warm start)."""

    name = "opsd"
    title = "OPSD"
    start_name = "the starting model (warm start, else base)"
    generated = (("candidates", "n_tokens"), ("distill_samples", "n_tokens"))

    def label(self, config):
        o = config.get("opsd", {})  # the method follows from the PI source; the warm start does not
        return f"opsd ({o.get('pi')} PI{' + SFT' if o.get('warm_start') else ''})"

    def summary(self, lake, run_id):
        """Seeds by phase with their PI, then the distillation in quarters and the teacher syncs."""
        out = ["", "## OPSD seeds: what the teacher read (privileged_info; the student never reads it)",
               Table(*query(lake, """
            SELECT phase, coalesce(pi_source, '-') AS pi_source, count(*) AS seeds, count(DISTINCT pi_hash) AS distinct_pi,
                   round(avg(length(pi_text)), 1) AS pi_chars
            FROM privileged_info WHERE run_id = $run GROUP BY 1, 2 ORDER BY 1""", {"run": run_id}))]
        return out + self.distill_summary(lake, run_id)
