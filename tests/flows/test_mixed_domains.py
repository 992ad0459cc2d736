"""All domains in one run: math (a boxed number), multiple choice (a letter) and code (a fenced block; held-out items
run their tests in the sandbox), each pre-filtered, extracted, grouped and scored by its own rules, with numbers
per domain in the summary, `compare`, the report and the export card. On the scripted engine, so which sample is
right is known: even sample indices answer right, odd ones off by one."""
import json

from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides

ADD = 'def add(a, b):\n    """Return a + b."""\n'
MUL = 'def mul(a, b):\n    """Return a * b."""\n'
SEEDS = [
    {"seed_id": "m1", "domain": "math", "question": "Calculate 3 + 4.", "answer": "7"},
    {"seed_id": "c1", "domain": "choice", "question": "Which number is 2 + 5?", "choices": ["6", "7", "8"], "answer": "B"},
    {"seed_id": "k1", "domain": "code", "question": ADD},
]
HELD_OUT = [
    {"seed_id": "hm", "domain": "math", "question": "Calculate 6 + 2.", "answer": "8"},
    {"seed_id": "hc", "domain": "choice", "question": "Which number is 4 + 4?", "choices": ["8", "9"], "answer": "A"},
    {"seed_id": "hk-pass", "domain": "code", "question": MUL, "entry_point": "mul",
     "tests": "def check(candidate):\n    assert candidate(2, 3) == 6\n"},
    {"seed_id": "hk-fail", "domain": "code", "question": MUL, "entry_point": "mul",
     "tests": "def check(candidate):\n    assert candidate(2, 3) == 7\n"},
]


def _jsonl(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_one_seed_file_mixing_math_choice_and_code(tiny_model, lake, prefect_harness, tmp_path, capsys):
    from selfimprove.flows.cli import main
    from selfimprove.flows.svd import svd

    o = tiny_overrides(tiny_model)
    o["backend"] = {"kind": "scripted"}
    o["seeds"] = {"path": _jsonl(tmp_path / "seeds.jsonl", SEEDS)}
    o["evaluation"] = {"dataset": _jsonl(tmp_path / "heldout.jsonl", HELD_OUT), "max_new_tokens": 64}
    o["sampling"]["max_new_tokens"] = 64
    o["cascade"] = {"stages": [{"strategy": "agreement", "threshold": 0.0}], "selection": "all_valid"}
    result = svd(lake=str(lake.root), overrides=o)
    run = result["run_id"]
    q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731

    answers = dict(q("SELECT candidate_id, final_answer FROM candidates WHERE run_id = RUN"))
    assert [answers[f"m1#{k}"] for k in range(4)] == ["7", "8", "7", "8"]  # math: the boxed number
    assert [answers[f"c1#{k}"] for k in range(4)] == ["B", "C", "B", "C"]  # choice: the letter of the option named
    assert answers["k1#0"].strip() == "def add(a, b):\n    return a + b"  # code: the fenced block
    prompts = dict(q("SELECT seed_id, any_value(prompt_hash) FROM candidates WHERE run_id = RUN GROUP BY 1"))
    assert len(set(prompts.values())) == 3  # each domain asked in its own prompt
    # ground truth by each domain's scorer: math and choice labelled (even right, odd wrong), code seeds have no tests
    labels = dict(q("SELECT candidate_id, correct FROM candidate_labels WHERE run_id = RUN"))
    assert {c: labels[c] for c in labels if c.startswith("c1")} == {"c1#0": True, "c1#1": False, "c1#2": True, "c1#3": False}
    assert labels["m1#0"] and not labels["m1#1"] and not any(c.startswith("k1") for c in labels)
    # agreement grouped per domain: half the samples of each seed agree
    shares = dict(q("SELECT candidate_id, p_yes FROM judgments WHERE run_id = RUN AND stage = 'agreement'"))
    assert {round(shares[f"{s}#0"], 2) for s in ("m1", "c1", "k1")} == {0.5}
    # the training row's prompt is its domain's
    prompt, = q("SELECT prompt FROM train_examples WHERE run_id = RUN AND seed_id = 'c1' LIMIT 1")[0]
    assert "Options:\nA. 6\nB. 7\nC. 8" in prompt
    # held-out: each item by its domain's scorer; code in the sandbox, one passing and one failing
    reasons = dict(q("SELECT item_id, reason FROM eval_samples WHERE run_id = RUN AND model = 'base'"))
    assert reasons["hk-pass"] == "ok" and reasons["hk-fail"].startswith("failed") and reasons["hc"] == "ok"
    from selfimprove.warehouse.views import per_domain

    table = {row[0]: row for row in per_domain(lake, run)}
    assert set(table) == {"math", "choice", "code"}
    assert table["code"][6:8] == (2, 0.5) and table["choice"][6:8] == (1, 1.0) and table["math"][6:8] == (1, 1.0)
    assert table["choice"][1:6] == (1, 4, 4, 1.0, 0.5)  # 4 judged, all accepted (advisory), half of them right
    # the numbers per domain in the summary, compare, the report and the export card
    assert "per domain" in result["summary"] and "choice" in result["summary"]
    capsys.readouterr()
    assert main(["compare", run, "--lake", str(lake.root)]) == 0
    assert f"{run} per domain" in capsys.readouterr().out
    assert main(["report", run, "--lake", str(lake.root), "--out", str(tmp_path / "report")]) == 0
    assert "Per domain" in (tmp_path / "report" / "report.html").read_text()
    assert main(["export", run, "--out", str(tmp_path / "export"), "--lake", str(lake.root)]) == 0
    assert "## Per domain" in (tmp_path / "export" / "README.md").read_text()
