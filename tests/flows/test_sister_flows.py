"""SSD and RFT on the tiny model: the same stages and tables as SVD, their own verdict reasons."""
import json

import pytest

from tests.tiny_model import tiny_overrides
from selfimprove.warehouse.views import query


def test_ssd_keeps_raw_samples_and_sweeps_eval_temperature(tiny_model, lake, prefect_harness):
    from selfimprove.flows.ssd import ssd

    run = ssd(lake=str(lake.root), overrides=tiny_overrides(tiny_model))["run_id"]
    q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
    assert q("SELECT count(*), count(DISTINCT seed_id) FROM candidates WHERE run_id = RUN") == [(6, 6)]  # one sample each
    assert q("SELECT count(*) FROM judgments WHERE run_id = RUN") == [(0,)]  # no verification
    outcomes = dict(q("SELECT coalesce(rejected_at_stage, 'kept'), count(*) FROM verdicts WHERE run_id = RUN GROUP BY 1"))
    assert outcomes.get("length", 0) == 0  # 10 % of 6 rounds down to none dropped
    assert outcomes["kept"] == q("SELECT count(*) FROM train_examples WHERE run_id = RUN")[0][0]
    (cfg,), = q("SELECT config_json FROM runs WHERE run_id = RUN")
    sampling = json.loads(cfg)["sampling"]
    assert (sampling["n"], sampling["temperature"], sampling["top_k"]) == (1, 1.1, 20)
    labels = {m for (m,) in q("SELECT DISTINCT model FROM eval_samples WHERE run_id = RUN")}
    assert {"base", "base@T0.5", "base@T1.0"} <= labels
    assert q("SELECT count(*) FROM eval_samples WHERE run_id = RUN AND model = 'base@T0.5'") == [(16,)]  # 8 items x 2
    assert outcomes["kept"] > 0 and "tuned" in labels  # the raw samples trained a model, and it was evaluated
    assert q("SELECT count(*) FROM eval_metrics WHERE run_id = RUN AND metric = 'pass@1_delta_vs_base'") == [(1,)]


def test_ssd_drops_empty_and_the_shortest_tenth():
    from selfimprove.verification.filters import FilterConfig, ssd_length

    cands = [{"candidate_id": f"c{i}", "text": "x" * i, "n_tokens": i} for i in range(20)]
    verdicts = {v["candidate_id"]: v for v in ssd_length(cands, FilterConfig(rule="ssd_length"))}
    assert verdicts["c0"]["rejected_at_stage"] == "empty"
    assert [c for c, v in verdicts.items() if v["rejected_at_stage"] == "length"] == ["c1"]  # 10 % of 19 non-empty
    assert sum(v["accepted"] for v in verdicts.values()) == 18


def _seed_file(tmp_path, rows):
    path = tmp_path / "seeds.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def _scripted(tiny_model, seeds_path, **extra):
    """The scripted engine answers two-number arithmetic right on even sample indices, off by one on odd ones, and
    anything else with "I cannot tell. \\boxed{k}" (k = the sample index): which samples are right is known."""
    o = tiny_overrides(tiny_model)
    o["backend"] = {"kind": "scripted"}
    o["seeds"] = {"path": seeds_path}
    o["training"]["min_examples"] = 10_000  # these tests are about what is kept
    return {**o, **extra}


def test_rft_on_the_scripted_engine_keeps_exactly_the_right_samples(tiny_model, lake, prefect_harness, tmp_path, capsys):
    from selfimprove.flows.cli import main
    from selfimprove.flows.rft import rft

    rows = [{"seed_id": f"a{i}", "question": f"Calculate {i} + {2 * i}.", "answer": str(3 * i)} for i in range(1, 5)]
    rows += [{"seed_id": "prime", "question": "Name the smallest prime.", "answer": "2"},  # right only as sample 2
             {"seed_id": "never", "question": "Name a colour.", "answer": "blue"}]  # never right
    run = rft(lake=str(lake.root), overrides=_scripted(tiny_model, _seed_file(tmp_path, rows)))["run_id"]
    q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
    kept = {c for (c,) in q("SELECT candidate_id FROM verdicts WHERE run_id = RUN AND accepted")}
    want = {f"a{i}#{k}" for i in range(1, 5) for k in (0, 2)} | {"prime#2"}
    assert kept == want
    assert {c for (c,) in q("SELECT candidate_id FROM train_examples WHERE run_id = RUN")} == want
    assert q("SELECT count(*), min(rejected_at_stage), max(rejected_at_stage) FROM verdicts "
             "WHERE run_id = RUN AND NOT accepted") == [(24 - len(want), "ground_truth", "ground_truth")]
    (reason,), = q("SELECT reason FROM verdicts WHERE run_id = RUN AND candidate_id = 'a1#1'")
    assert reason == "wrong: '4' vs '3'", reason
    # every candidate carries its ground-truth label, which the verdict agrees with; compare reads the run
    assert q("SELECT count(*), count(*) FILTER (v.accepted = l.correct) FROM verdicts v "
             "JOIN candidate_labels l USING (run_id, candidate_id) WHERE run_id = RUN") == [(24, 24)]
    assert main(["compare", run, "--lake", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert run in out and "rft" in out and "base: " in out


def test_ssd_on_the_scripted_engine_drops_exactly_the_shortest_tenth(tiny_model, lake, prefect_harness, tmp_path):
    from selfimprove.flows.ssd import ssd

    rows = [{"seed_id": f"a{i}", "question": f"Calculate {i} + 1."} for i in range(18)]  # 8-word answers
    rows += [{"seed_id": f"short{i}", "question": "Name a colour."} for i in range(2)]  # 4-word answers
    run = ssd(lake=str(lake.root), overrides=_scripted(tiny_model, _seed_file(tmp_path, rows)))["run_id"]
    q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
    outcomes = q("SELECT candidate_id, coalesce(rejected_at_stage, 'kept') FROM verdicts WHERE run_id = RUN ORDER BY 1")
    assert [c for c, o in outcomes if o != "kept"] == ["short0#0", "short1#0"]  # 10 % of 20
    assert {o for c, o in outcomes if o != "kept"} == {"length"} and len(outcomes) == 20


def test_rft_without_answers_is_a_clear_error(tiny_model, lake, prefect_harness, tmp_path):
    from selfimprove.flows.rft import rft

    seeds = tmp_path / "s.jsonl"
    seeds.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n')
    with pytest.raises(ValueError, match=r"s.jsonl, row 2, field 'answer': missing \(rft grades by ground truth\)"):
        rft(lake=str(lake.root), overrides={**tiny_overrides(tiny_model), "seeds": {"path": str(seeds)}})
    assert not lake.root.exists()  # refused at the start: no run row
