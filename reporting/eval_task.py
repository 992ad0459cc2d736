"""A run's held-out set as an lm-evaluation-harness task, so its numbers can be checked by another harness.

`export_eval_task(lake, run_id, out)` writes, per held-out dataset of the run, `<task>.yaml` and its items as local
JSONL (each with the user message selfimprove sends: the same prompt file, options and question), plus `utils.py`
whose `process_results` scores a generation with selfimprove's own scorer and answer format. Generation is
lm-eval's: greedy, the run's `max_new_tokens`, stopping at the model's end-of-turn and padding tokens (where
selfimprove's engine stops). Run it with the chat template applied, as selfimprove renders every prompt:

    lm_eval --model hf --model_args pretrained=MODEL,dtype=float32 --include_path OUT \
            --tasks TASK --apply_chat_template --batch_size 1 --log_samples --output_path results/
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml

from selfimprove.evaluation.heldout import message
from selfimprove.validation import InputError
from selfimprove.atomic import write_dir
from selfimprove.reporting.export import check_out
from selfimprove.warehouse.lake import Lake
from selfimprove.reporting.method_views import run_config
from selfimprove.warehouse.views import query

UTILS = '''"""Scoring for the selfimprove task: selfimprove's own scorer on lm-eval's generation (written by selfimprove export)."""
from selfimprove.scoring.scorers import score_items

ANSWER_FORMAT = {answer_format!r}


def process_results(doc, results):
    score = score_items([results[0]], [doc], ANSWER_FORMAT)[0]
    return {{"acc": float(bool(score.correct))}}
'''


def task_name(dataset: str) -> str:
    return "selfimprove_" + re.sub(r"[^a-z0-9]+", "_", dataset.lower()).strip("_")


def stop_strings(model_path: str) -> list[str]:
    """The tokens selfimprove's engine stops at: end of turn (eos) and padding."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_path)
    return list(dict.fromkeys(t for t in (tok.eos_token, tok.pad_token) if t))


def export_eval_task(lake: Lake, run_id: str, out: str | Path) -> list[str]:
    """Write the run's held-out sets as lm-eval tasks into `out`; returns the task names."""
    out = check_out(out)
    lake.require_run(run_id, "run")
    p = {"run": run_id}
    cols, rows = query(lake, "SELECT * FROM eval_items WHERE run_id = $run AND dataset IN "
                             "(SELECT DISTINCT dataset FROM eval_samples WHERE run_id = $run) ORDER BY dataset, item_id", p)
    if not rows:
        raise InputError(f"run {run_id!r} evaluated nothing: no held-out item to export as a task")
    items = [dict(zip(cols, r)) for r in rows]
    evaluation = run_config(lake, run_id).get("evaluation", {})
    ((model_path,),) = query(lake, "SELECT model_path FROM runs WHERE run_id = $run", p)[1]
    until = stop_strings(model_path)
    names: list[str] = []

    def fill(tmp: Path) -> None:
        (tmp / "utils.py").write_text(UTILS.format(answer_format=evaluation.get("answer_format", "boxed_or_last_number")))
        for dataset in dict.fromkeys(it["dataset"] for it in items):
            name = task_name(dataset)
            docs = [{**{k: v for k, v in it.items() if k != "run_id"},
                     "prompt": message(it, evaluation.get("prompt"))[0]["content"]} for it in items if it["dataset"] == dataset]
            with open(tmp / f"{name}.jsonl", "w", encoding="utf-8") as f:
                f.writelines(json.dumps(d, ensure_ascii=False) + "\n" for d in docs)
            task = {"task": name, "dataset_path": "json",
                    "dataset_kwargs": {"data_files": {"test": str(out.resolve() / f"{name}.jsonl")}},
                    "test_split": "test", "output_type": "generate_until", "doc_to_text": "{{prompt}}",
                    "doc_to_target": "{{answer}}", "target_delimiter": "",
                    "generation_kwargs": {"until": until, "do_sample": False,
                                          "max_gen_toks": int(evaluation.get("max_new_tokens", 64))},
                    "process_results": "!function utils.process_results",
                    "metric_list": [{"metric": "acc", "aggregation": "mean", "higher_is_better": True}],
                    "metadata": {"version": 1.0, "selfimprove_run": run_id, "dataset": dataset}}
            text = yaml.safe_dump(task, sort_keys=False, allow_unicode=True)
            (tmp / f"{name}.yaml").write_text(text.replace("'!function utils.process_results'", "!function utils.process_results"))
            names.append(name)

    write_dir(out, fill)
    return names
