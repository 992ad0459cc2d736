"""A run's curated data as export holds it and its card describes it: the splits' SQL and the rows."""
from __future__ import annotations

from dataclasses import dataclass, field

SPLIT_SQL = {
    "train": "SELECT t.*, v.accepted, v.rejected_at_stage, v.reason FROM train_examples t "
             "LEFT JOIN verdicts v USING (run_id, candidate_id) WHERE t.run_id = '{run}' ORDER BY t.seed_id, t.candidate_id",
    "rejected": "SELECT c.*, v.accepted, v.rejected_at_stage, v.reason FROM verdicts v "
                "JOIN candidates c USING (run_id, candidate_id) WHERE v.run_id = '{run}' AND NOT v.accepted "
                "AND v.rejected_at_stage NOT IN ('not_judged', 'error') ORDER BY c.seed_id, c.sample_index",
}


@dataclass
class Curated:
    """A run's splits as rows, and what the card says about them."""

    run_id: str
    chat: bool  # conversational rows (messages); False: rendered text rows (prompt/completion strings)
    splits: dict[str, list[dict]] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
