"""A run's curated data out of the lake, in the formats the ecosystem reads.

`export_run(lake, run_id, out, format)` writes the rows the run trained on (`train`), every judged candidate it
did not keep with the stage and reason that rejected it (`rejected`) and, with `pairs`, one accepted against one
rejected sample per seed (`preference`, for DPO). Rows follow TRL's dataset conventions: conversational `messages`
and `prompt`/`completion` (`chosen`/`rejected` for pairs), or plain-text `prompt`/`completion` for a run whose
rows are rendered text (SD-Zero); every row keeps `run_id`, `seed_id` and `candidate_id`, so it traces back into
the lake. Writers are a registry: `hf` (Parquet per split and a dataset card), `jsonl`, `sharegpt`, `llamafactory`.

Everything is checked before the first write; the export is written into a temporary folder beside `out` and
moved into place whole. The rows come from the lake's committed parts only (the same reader as `selfimprove sql`).
"""
from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import pyarrow as pa
import pyarrow.parquet as pq

from selfimprove.atomic import write_dir
from selfimprove.generation.sampling import user_message
from selfimprove.validation import InputError
from selfimprove.reporting.curated import SPLIT_SQL, Curated
from selfimprove.warehouse.lake import Lake
from selfimprove.reporting.method_views import run_config
from selfimprove.warehouse.views import query

LINEAGE = ("run_id", "seed_id", "candidate_id")

# the SQL that reproduces each split from the lake (`selfimprove sql`, or `open_lake(...).sql`)
def _assistant(text: str) -> list[dict]:
    return [{"role": "assistant", "content": text}]


def _row(run_id: str, seed_id: str, candidate_id: str, prompt: str, completion: str, chat: bool, verdict: dict) -> dict:
    if chat:
        user = [{"role": "user", "content": prompt}]
        text = {"messages": user + _assistant(completion), "prompt": user, "completion": _assistant(completion)}
    else:
        text = {"prompt": prompt, "completion": completion}
    return {**text, "run_id": run_id, "seed_id": seed_id, "candidate_id": candidate_id, **verdict}


def _verdict(accepted, stage, reason) -> dict:
    return {"accepted": accepted, "rejected_at_stage": stage, "reason": reason}


def curate(lake: Lake, run_id: str, pairs: bool = False) -> Curated:
    """The run's splits, read from the lake. Raises InputError for a run that cannot be exported."""
    lake.require_run(run_id, "run")
    status = query(lake, "SELECT status, stage, reason FROM runs WHERE run_id = $run", {"run": run_id})[1]
    if not status or status[0][0] != "completed":
        state = f"{status[0][0]} in stage {status[0][1]}" if status and status[0][0] else "not finished"
        raise InputError(f"run {run_id!r} is {state}: only a completed run is exported (resume it first: "
                         f"selfimprove run ... --resume {run_id})")
    p = {"run": run_id}
    train = query(lake, SPLIT_SQL["train"].replace("'{run}'", "$run"), p)
    rejected = query(lake, SPLIT_SQL["rejected"].replace("'{run}'", "$run"), p)
    train_rows = [dict(zip(train[0], r)) for r in train[1]]
    chat = all(r["format"] in (None, "chat") for r in train_rows)
    out = Curated(run_id, chat)
    if train_rows:
        out.splits["train"] = [_row(run_id, r["seed_id"], r["candidate_id"], r["prompt"], r["completion"], chat,
                                    _verdict(r["accepted"], r["rejected_at_stage"], r["reason"])) for r in train_rows]
    else:
        kept = query(lake, "SELECT * FROM accepted WHERE run_id = $run ORDER BY seed_id, sample_index", p)
        if not kept[1]:
            (rollouts,), = query(lake, "SELECT count(*) FROM distill_samples WHERE run_id = $run", p)[1]
            if rollouts:
                raise InputError(f"run {run_id!r} trained on its own {rollouts} on-policy rollouts (table "
                                 "distill_samples), not on rows: there is no curated dataset to export; query the "
                                 "rollouts with selfimprove sql, or export the model with --model")
            raise InputError(f"run {run_id!r} kept nothing: no training row and no accepted candidate to export")
        out.notes.append("This run trained on nothing (too few accepted examples, or a method that trains without "
                         "rows); `train` holds the candidates it accepted instead.")
        out.splits["train"] = _candidate_rows(lake, run_id, [dict(zip(kept[0], r)) for r in kept[1]], accepted=True)
    rows = [dict(zip(rejected[0], r)) for r in rejected[1]]
    if chat and rows:
        out.splits["rejected"] = _candidate_rows(lake, run_id, rows, accepted=False)
    elif rows:
        out.notes.append("Rejected candidates are not exported for a run whose training rows are rendered text.")
    if pairs:
        out.splits["preference"] = _pairs(out.splits["train"], out.splits.get("rejected", []), chat)
        if not out.splits["preference"]:
            raise InputError(f"run {run_id!r}: --pairs found no seed with both an accepted and a rejected sample")
    return out


def _candidate_rows(lake: Lake, run_id: str, rows: list[dict], accepted: bool) -> list[dict]:
    """Candidates as rows, with the user's message the sampler wrote (its prompt file, from the run's config)."""
    prompt_name = run_config(lake, run_id).get("sampling", {}).get("prompt", "sample_math")
    questions = dict(query(lake, "SELECT seed_id, question FROM seeds WHERE run_id = $run", {"run": run_id})[1])
    return [_row(run_id, r["seed_id"], r["candidate_id"], user_message(questions[r["seed_id"]], prompt_name)[0]["content"],
                 r["text"], True, _verdict(accepted, r.get("rejected_at_stage"), r.get("reason"))) for r in rows]


def _pairs(train: list[dict], rejected: list[dict], chat: bool) -> list[dict]:
    """Per seed: its first training row (chosen) against its first rejected candidate (rejected)."""
    first_rejected: dict[str, dict] = {}
    for r in rejected:
        first_rejected.setdefault(r["seed_id"], r)
    out, seen = [], set()
    for r in train:
        other = first_rejected.get(r["seed_id"])
        if other is None or r["seed_id"] in seen or not chat:
            continue
        seen.add(r["seed_id"])
        out.append({"prompt": r["prompt"], "chosen": r["completion"], "rejected": other["completion"],
                    "run_id": r["run_id"], "seed_id": r["seed_id"], "chosen_id": r["candidate_id"],
                    "rejected_id": other["candidate_id"], "rejected_at_stage": other["rejected_at_stage"],
                    "rejected_reason": other["reason"]})
    return out


# -- writers --------------------------------------------------------------------------------------------------

Writer = Callable[[Lake, Curated, Path], None]
FORMATS: dict[str, Writer] = {}


def register_format(name: str):
    def deco(fn: Writer) -> Writer:
        FORMATS[name] = fn
        return fn
    return deco


def _jsonl(path: Path, rows: list[dict]) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for r in rows:
            f.write(json.dumps(r, ensure_ascii=False) + "\n")


_S = pa.string()
_TURNS = pa.list_(pa.struct([("role", _S), ("content", _S)]))
_VERDICT = [("accepted", pa.bool_()), ("rejected_at_stage", _S), ("reason", _S)]


def split_schema(split: str, chat: bool) -> pa.Schema:
    """One schema for `train` and `rejected` (a loader needs the same features in every split of a config)."""
    if split == "preference":
        return pa.schema([("prompt", _TURNS), ("chosen", _TURNS), ("rejected", _TURNS), ("run_id", _S),
                          ("seed_id", _S), ("chosen_id", _S), ("rejected_id", _S), ("rejected_at_stage", _S),
                          ("rejected_reason", _S)])
    text = [("messages", _TURNS), ("prompt", _TURNS), ("completion", _TURNS)] if chat else [("prompt", _S),
                                                                                          ("completion", _S)]
    return pa.schema(text + [(c, _S) for c in LINEAGE] + _VERDICT)


@register_format("hf")
def write_hf(lake: Lake, curated: Curated, out: Path) -> None:
    """A Hugging Face dataset folder: data/<split>.parquet (split `preference` as its own config) and README.md."""
    from selfimprove.reporting.cards import dataset_card

    (out / "data").mkdir()
    for split, rows in curated.splits.items():
        pq.write_table(pa.Table.from_pylist(rows, schema=split_schema(split, curated.chat)),
                       out / "data" / f"{split}.parquet")
    (out / "README.md").write_text(dataset_card(lake, curated), encoding="utf-8")


@register_format("jsonl")
def write_jsonl(lake: Lake, curated: Curated, out: Path) -> None:
    """One JSON object per line and split: messages (or prompt/completion) and the lineage columns."""
    for split, rows in curated.splits.items():
        _jsonl(out / f"{split}.jsonl", [{k: v for k, v in r.items() if k not in ("prompt", "completion") or
                                         not curated.chat or split == "preference"} for r in rows])


def _sharegpt(r: dict) -> dict:
    turns = [{"from": "human" if m["role"] == "user" else "gpt", "value": m["content"]} for m in r["prompt"]]
    if "chosen" in r:
        return {"conversations": turns, "chosen": {"from": "gpt", "value": r["chosen"][0]["content"]},
                "rejected": {"from": "gpt", "value": r["rejected"][0]["content"]},
                **{k: r[k] for k in ("run_id", "seed_id", "chosen_id", "rejected_id")}}
    return {"conversations": turns + [{"from": "gpt", "value": r["completion"][0]["content"]}],
            **{k: r[k] for k in LINEAGE}}


def _require_chat(curated: Curated, fmt: str) -> None:
    if not curated.chat:
        raise InputError(f"format {fmt!r} holds conversations; run {curated.run_id!r} trained on rendered text rows "
                         "(use --format hf or jsonl)")


@register_format("sharegpt")
def write_sharegpt(lake: Lake, curated: Curated, out: Path) -> None:
    """ShareGPT: `conversations` of {from: human|gpt, value}, one JSON object per line and split."""
    _require_chat(curated, "sharegpt")
    for split, rows in curated.splits.items():
        _jsonl(out / f"{split}.jsonl", [_sharegpt(r) for r in rows])


@register_format("llamafactory")
def write_llamafactory(lake: Lake, curated: Curated, out: Path) -> None:
    """ShareGPT files plus the dataset_info.json LLaMA-Factory reads (`dataset_dir` = this folder)."""
    _require_chat(curated, "llamafactory")
    info = {}
    for split, rows in curated.splits.items():
        name = f"{split}.json"
        (out / name).write_text(json.dumps([_sharegpt(r) for r in rows], ensure_ascii=False, indent=1), encoding="utf-8")
        entry = {"file_name": name, "formatting": "sharegpt", "columns": {"messages": "conversations"},
                 "tags": {"role_tag": "from", "content_tag": "value", "user_tag": "human", "assistant_tag": "gpt"}}
        if split == "preference":
            entry["ranking"] = True
            entry["columns"].update(chosen="chosen", rejected="rejected")
        info[f"{curated.run_id}_{split}"] = entry
    (out / "dataset_info.json").write_text(json.dumps(info, indent=2), encoding="utf-8")


def check_out(out: str | os.PathLike) -> Path:
    """The export's folder: absent or empty (an existing non-empty folder is never mixed into)."""
    out = Path(out)
    if out.exists() and (not out.is_dir() or any(out.iterdir())):
        raise InputError(f"--out {out}: exists and is not an empty folder; choose a new one")
    return out


def export_run(lake: Lake, run_id: str, out: str | os.PathLike, fmt: str = "hf", pairs: bool = False) -> dict:
    """Write the run's splits to `out` in `fmt`; returns {split: rows}. Nothing is written on bad input."""
    if fmt not in FORMATS:
        raise InputError(f"--format {fmt!r}: one of {', '.join(FORMATS)}")
    out = check_out(out)
    curated = curate(lake, run_id, pairs)
    write_dir(out, lambda tmp: FORMATS[fmt](lake, curated, tmp))  # a writer that refuses leaves nothing behind
    return {split: len(rows) for split, rows in curated.splits.items()}


def run_checkpoint(lake: Lake, run_id: str) -> str:
    """The checkpoint a run ends with: the one its `tuned` evaluation scored, else its last trained one."""
    lake.require_run(run_id, "run")
    p = {"run": run_id}
    scored = query(lake, "SELECT DISTINCT model_path FROM eval_samples WHERE run_id = $run AND model = 'tuned' AND "
                         "model_path IN (SELECT path FROM checkpoints WHERE run_id = $run)", p)[1]
    if scored:
        return scored[0][0]
    trained = query(lake, "SELECT path FROM checkpoints WHERE run_id = $run ORDER BY checkpoint_id", p)[1]
    if not trained:
        raise InputError(f"run {run_id!r} trained no model (it kept too few examples, or it has not reached its "
                         "fine-tuning stage): there is no checkpoint to export")
    return trained[-1][0]


def export_model(lake: Lake, run_id: str, out: str | os.PathLike) -> str:
    """Copy the run's checkpoint (weights, config, tokenizer) to `out` with a model card written from the lake."""
    from selfimprove.inference import models
    from selfimprove.reporting.cards import checkpoint_card

    out = check_out(out)
    path = run_checkpoint(lake, run_id)
    card = checkpoint_card(lake, run_id, path)
    local = models.resolve(path)

    def fill(tmp: Path) -> None:
        for f in Path(local).iterdir():
            if f.is_file() and not f.name.startswith((".", "_")):
                shutil.copy2(f, tmp / f.name)
        (tmp / "README.md").write_text(card, encoding="utf-8")

    write_dir(out, fill)
    return path


def push_to_hub(folder: Path, repo: str, kind: str) -> str:
    """Upload an exported folder as one commit to a Hub repository (`kind`: dataset | model). The token comes from
    the environment (HF_TOKEN) and is never written anywhere. Refused up front where the Hub cannot be reached."""
    from huggingface_hub import HfApi

    if os.environ.get("HF_HUB_OFFLINE", "0").lower() in ("1", "true", "yes"):
        raise InputError(f"--push-to-hub {repo}: the Hugging Face Hub is off (HF_HUB_OFFLINE is set); the export "
                         f"is at {folder}; push it later with the same command where the Hub can be reached")
    api = HfApi()
    try:
        api.create_repo(repo, repo_type=kind, exist_ok=True)
        return api.upload_folder(folder_path=str(folder), repo_id=repo, repo_type=kind,
                                 commit_message="selfimprove export").commit_url
    except Exception as e:  # noqa: BLE001 - httpx, HTTP and OS errors alike: the Hub was not reached
        raise InputError(f"--push-to-hub {repo}: the Hub could not be reached or refused the upload "
                         f"({type(e).__name__}); the export is at {folder}") from None
