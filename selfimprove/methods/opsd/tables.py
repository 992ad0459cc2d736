"""OPSD's lake table (its distillation writes the shared distillation tables)."""
from __future__ import annotations

import pyarrow as pa

S = pa.string()

TABLES = {
    # OPSD: each seed's privileged information, what only the teacher reads. phase: distill (rolled out, with its PI) |
    # distill_val (held-out reward, no PI needed) | no_pi (self_verified: the cascade accepted no candidate; skipped).
    # candidate_id: the accepted candidate a self_verified PI quotes; prompt_hash: the PI's prompt file
    "privileged_info": pa.schema([("run_id", S), ("seed_id", S), ("phase", S), ("pi_source", S), ("pi_hash", S),
                                  ("pi_text", S), ("candidate_id", S), ("prompt_hash", S)]),
}
