"""Column names and types of every lake table: the shared stages' here, and those the method packages declare
(`selfimprove.storage.tables`, filled when the method registry loads). Every table starts with run_id."""
from __future__ import annotations

from collections.abc import Iterator, Mapping

import pyarrow as pa

from selfimprove.storage.tables import DECLARED

S, I, F, B = pa.string(), pa.int64(), pa.float64(), pa.bool_()
LS = pa.list_(pa.string())

SHARED: dict[str, pa.Schema] = {
    "runs": pa.schema([("run_id", S), ("flow", S), ("preset", S), ("started_at", pa.timestamp("us", tz="UTC")),
                       ("config_json", S), ("model", S), ("model_path", S), ("model_hash", S), ("library_version", S),
                       # where its stages may come from: the reused run and the first recomputed stage
                       ("reuse", S), ("from_stage", S), ("flow_run_id", S),
                       # running (stage = the one in progress) | completed | failed (stage and reason say where, why)
                       ("status", S), ("stage", S), ("reason", S), ("updated_at", pa.timestamp("us", tz="UTC")),
                       ("pid", I), ("host", S)]),
    # source: the file (or generated:<task>:<generator seed>) and row it came from; question_key: its normalised hash
    "seeds": pa.schema([("run_id", S), ("seed_id", S), ("domain", S), ("question", S), ("answer", S), ("task", S),
                        ("source", S), ("source_row", I), ("question_key", S), ("solution", S), ("choices", LS)]),
    "candidates": pa.schema([("run_id", S), ("candidate_id", S), ("seed_id", S), ("sample_index", I), ("text", S),
                             ("final_answer", S), ("n_tokens", I), ("prompt_hash", S), ("error", S)]),
    "judgments": pa.schema([("run_id", S), ("candidate_id", S), ("stage", S), ("vote_index", I), ("call", S),
                            ("prompt_hash", S), ("raw_output", S), ("decision", S), ("p_yes", F), ("round", I),
                            ("model_call", B), ("n_tokens", I)]),
    "verdicts": pa.schema([("run_id", S), ("candidate_id", S), ("accepted", B), ("rejected_at_stage", S), ("reason", S)]),
    # ground truth for telemetry only: the cascade never reads it
    "candidate_labels": pa.schema([("run_id", S), ("candidate_id", S), ("correct", B)]),
    "judge_metrics": pa.schema([("run_id", S), ("stage", S), ("metric", S), ("value", F), ("n", I),
                                ("ci_low", F), ("ci_high", F)]),
    # origin_run: NULL for the run's own accepted example; the earlier round it came from (train_on: accumulated)
    # format: chat (prompt = the user's message) | text (rendered, may end inside the assistant turn: SD-Zero);
    # loss: SD-Zero's revision | generation row of a kept tuple
    "train_examples": pa.schema([("run_id", S), ("candidate_id", S), ("seed_id", S), ("prompt", S), ("completion", S),
                                 ("format", S), ("loss", S), ("origin_run", S)]),
    # example_ids: the train_examples rows (candidate_id) it was trained on; model_hash: its weights
    "checkpoints": pa.schema([("run_id", S), ("checkpoint_id", S), ("path", S), ("base_model", S), ("model_hash", S),
                              ("examples", I), ("example_ids", LS), ("steps", I), ("final_loss", F), ("method", S)]),
    "train_log": pa.schema([("run_id", S), ("checkpoint_id", S), ("step", I), ("loss", F), ("learning_rate", F)]),
    # correct is NULL when the scorer could not decide (reason error:...); calls and n_tokens are test-time cost;
    # model is the label, model_path / model_hash the checkpoint scored (checkpoints.path for a trained one)
    "eval_samples": pa.schema([("run_id", S), ("model", S), ("dataset", S), ("item_id", S), ("sample_index", I),
                               ("method", S), ("output", S), ("extracted", S), ("correct", B), ("reason", S),
                               ("n_tokens", I), ("calls", I), ("model_path", S), ("model_hash", S)]),
    "eval_metrics": pa.schema([("run_id", S), ("model", S), ("dataset", S), ("metric", S), ("value", F), ("n", I),
                               ("ci_low", F), ("ci_high", F)]),
    "eval_items": pa.schema([("run_id", S), ("dataset", S), ("item_id", S), ("domain", S), ("question", S),
                             ("answer", S), ("task", S), ("scorer", S), ("choices", LS), ("tests", S), ("entry_point", S)]),
    # held-out items found in training text by the contamination guard; action: stopped | allowed
    "contamination": pa.schema([("run_id", S), ("dataset", S), ("item_id", S), ("train_id", S), ("kind", S),
                                ("overlap", F), ("question", S), ("action", S)]),
    # on-policy self-distillation (`selfimprove.training.self_distill`), shared by the methods that distil: per
    # optimiser step (step 0 = the starting model's held-out reward; saved = the student kept), each rollout, each
    # teacher sync. teacher: the teacher's context, as the method names it; pi_source / pi_hash: the privileged
    # information of the rollout's seed where the method gives its teacher one (its text in the method's table)
    "distill_log": pa.schema([("run_id", S), ("step", I), ("loss", F), ("kl_reverse", F), ("mean_reward", F), ("graded", I),
                              ("response_tokens", F), ("loss_tokens", I), ("val_reward", F), ("teacher_syncs", I),
                              ("learning_rate", F), ("seconds", F), ("saved", B), ("teacher", S), ("pi_source", S)]),
    "distill_samples": pa.schema([("run_id", S), ("step", I), ("seed_id", S), ("text", S), ("n_tokens", I), ("reward", B),
                                  ("control", S), ("divergence", F), ("pi_source", S), ("pi_hash", S)]),
    # source_step: the step whose student was copied (the best one when keep_best, else this step)
    "teacher_syncs": pa.schema([("run_id", S), ("step", I), ("reason", S), ("val_reward", F), ("source_step", I)]),
    # the champion registry. models: every checkpoint a run on a track produced, what it started from and how it
    # scored on the track's held-out set; promotions: every gate decision (and manual promotion), promoted or not
    # parent: the model it was fine-tuned from; sampled_by: the champion whose samples and judgments it learnt
    "models": pa.schema([("run_id", S), ("track", S), ("round", I), ("model_id", S), ("path", S), ("model_hash", S),
                         ("parent", S), ("sampled_by", S), ("method", S), ("created_at", pa.timestamp("us", tz="UTC")),
                         ("heldout_pass1", F), ("heldout_n", I)]),
    # every gate decision and manual promotion: the evidence (challenger over champion on the same held-out items,
    # the guard set, diversity: distinct answers and pass@k at k = pass_k_at), the round's data and its precision
    "promotions": pa.schema([("run_id", S), ("track", S), ("model_id", S), ("path", S), ("previous_path", S),
                             ("decided_at", pa.timestamp("us", tz="UTC")), ("promoted", B), ("manual", B), ("reason", S),
                             ("delta", F), ("ci_low", F), ("ci_high", F), ("n", I), ("margin", F), ("guard_delta", F),
                             ("guard_tolerance", F), ("diversity", F), ("diversity_floor", F),
                             ("round", I), ("train_on", S), ("start_from", S), ("examples", I), ("new_examples", I),
                             ("precision", F), ("challenger_pass1", F), ("champion_pass1", F), ("guard_pass1", F),
                             ("champion_guard_pass1", F), ("champion_diversity", F), ("pass_k_at", I), ("pass_k", F),
                             ("champion_pass_k", F),
                             # the paired intervals the gate decided on: guard delta, challenger's distinct answers
                             ("guard_ci_low", F), ("guard_ci_high", F), ("diversity_ci_low", F), ("diversity_ci_high", F)]),
}



class _Tables(Mapping):
    """The shared tables, then the declared ones, as they are when asked (a package loaded later is seen)."""

    def __getitem__(self, name: str) -> pa.Schema:
        return SHARED[name] if name in SHARED else DECLARED[name]

    def __iter__(self) -> Iterator[str]:
        return iter([*SHARED, *(n for n in DECLARED if n not in SHARED)])

    def __len__(self) -> int:
        return len(set(SHARED) | set(DECLARED))


TABLES: Mapping[str, pa.Schema] = _Tables()

_DUCK = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.float64(): "DOUBLE", pa.bool_(): "BOOLEAN"}


def duck_type(t: pa.DataType) -> str:
    if pa.types.is_list(t):
        return duck_type(t.value_type) + "[]"
    return "TIMESTAMPTZ" if pa.types.is_timestamp(t) else _DUCK[t]


def to_table(name: str, rows: list[dict], run_id: str) -> pa.Table:
    """Rows → an Arrow table of the named schema; a wrong or missing column names itself."""
    schema = TABLES[name]
    cols = {}
    for f in schema:
        values = [run_id if f.name == "run_id" else r.get(f.name) for r in rows]
        try:
            cols[f.name] = pa.array(values, type=f.type)
        except (pa.ArrowInvalid, pa.ArrowTypeError) as e:
            raise TypeError(f"table {name!r}, column {f.name!r}: {e}") from None
    return pa.table(cols, schema=schema)
