"""SD-Zero's lake tables (its Phase 2 writes the shared distillation tables)."""
from __future__ import annotations

import pyarrow as pa

S, I, B = pa.string(), pa.int64(), pa.bool_()

TABLES = {
    # SD-Zero. Which phase each seed serves (revise | distill | distill_val), disjoint.
    "seed_phases": pa.schema([("run_id", S), ("seed_id", S), ("phase", S)]),
    # Phase 1: one row per (seed, y_init), kept or not; control = the control phrase used (correct | wrong)
    "revisions": pa.schema([("run_id", S), ("revision_id", S), ("seed_id", S), ("candidate_id", S), ("init_text", S),
                            ("init_answer", S), ("init_reward", B), ("control", S), ("control_hash", S),
                            ("revised_text", S), ("revised_answer", S), ("revised_n_tokens", I), ("revised_reward", B),
                            ("reward_source", S), ("kept", B), ("reason", S)]),
}
