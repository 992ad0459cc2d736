import json
from pathlib import Path

from selfimprove.flows.cli import main


def test_sql_answers_from_the_lake(lake, capsys):
    lake.write("judgments", "r1", [{"candidate_id": "a", "stage": s, "vote_index": 0, "call": "verdict", "decision": "Y"}
                                   for s in ("factuality", "factuality", "correctness")])
    assert main(["sql", "SELECT stage, count(*) AS n FROM judgments GROUP BY stage ORDER BY stage", "--lake", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert "correctness  1" in out and "factuality   2" in out and "(2 rows)" in out


def test_sql_error_is_reported_not_raised(lake, capsys):
    lake.write("verdicts", "r1", [{"candidate_id": "a", "accepted": True}])
    assert main(["sql", "SELECT nope FROM judgments", "--lake", str(lake.root)]) == 2
    assert "SQL error" in capsys.readouterr().err


def test_sql_on_a_missing_or_empty_lake_names_the_path_it_read(lake, capsys):
    assert main(["sql", "SELECT 1", "--lake", str(lake.root)]) == 2
    assert f"no lake at {lake.root}" in capsys.readouterr().err
    (lake.root / "_manifests").mkdir(parents=True)
    assert main(["sql", "SELECT 1", "--lake", str(lake.root)]) == 2
    assert f"the lake at {lake.root} is empty" in capsys.readouterr().err


def test_eval_bad_data_names_file_row_field(tmp_path, lake, capsys):
    data = tmp_path / "items.jsonl"
    data.write_text(json.dumps({"question": "1+1", "answer": "2"}) + "\n" + json.dumps({"question": "2+2"}) + "\n")
    assert main(["eval", "--model", "default", "--data", str(data), "--lake", str(lake.root)]) == 2
    err = capsys.readouterr().err
    assert str(data) in err and "row 2" in err and "'answer'" in err
    assert not list(lake.root.glob("eval_*/*/*.parquet"))


def test_eval_any_model_on_a_jsonl(tmp_path, lake, tiny_model, prefect_harness):
    from selfimprove.flows.evaluate import evaluate_flow
    from selfimprove.warehouse.views import query

    data = tmp_path / "items.jsonl"
    # the scripted engine answers two-number sums right at greedy decoding; two of the five answers are wrong
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1 + (i in (1, 3)))}) + "\n"
                            for i in range(5)))
    result = evaluate_flow(model=str(tiny_model), data=str(data), lake=str(lake.root),
                           overrides={"backend": {"kind": "scripted"}, "evaluation": {"max_new_tokens": 16}})
    assert "pass@1" in result["summary"]
    assert query(lake, "SELECT count(*), count(DISTINCT item_id), min(dataset) FROM eval_samples")[1] == [(5, 5, "items")]
    assert query(lake, "SELECT list(correct ORDER BY item_id) FROM eval_samples")[1] == [([True, False, True, False, True],)]
    (value, n), = query(lake, "SELECT value, n FROM eval_metrics WHERE metric = 'pass@1'")[1]
    assert (value, n) == (0.6, 5)


def test_eval_several_models_on_the_same_items_records_each_and_the_paired_delta(tmp_path, lake, tiny_model,
                                                                             prefect_harness, capsys):
    import shutil

    from selfimprove.inference.models import model_identity
    from selfimprove.warehouse.views import query

    other = tmp_path / "other-ckpt"
    shutil.copytree(tiny_model, other)
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(4)))
    assert main(["eval", "--model", str(tiny_model), "--model", str(other), "--data", str(data),
                 "--lake", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert f"other-ckpt vs {Path(tiny_model).name}" in out  # the paired delta is in the printed table
    rows = query(lake, "SELECT model, model_path, model_hash, count(*) FROM eval_samples GROUP BY ALL ORDER BY model")[1]
    assert [(r[1], r[3]) for r in rows] == [(str(other), 4), (str(tiny_model), 4)]
    assert {r[2] for r in rows} == {model_identity(tiny_model)}  # same weights, same hash, whatever the folder
    (label, value), = query(lake, "SELECT model, value FROM eval_metrics WHERE metric = 'pass@1_delta_vs_base'")[1]
    assert label == f"other-ckpt vs {Path(tiny_model).name}" and value == 0.0  # identical weights, greedy: no difference
    (model, path), = query(lake, "SELECT model, model_path FROM runs")[1]
    assert model == path == str(tiny_model)


def test_eval_majority_scores_each_model_by_its_k_samples(tmp_path, lake, tiny_model, prefect_harness, capsys):
    import shutil

    from selfimprove.warehouse.views import query

    other = tmp_path / "other-ckpt"
    shutil.copytree(tiny_model, other)
    data = tmp_path / "items.jsonl"
    data.write_text("".join(json.dumps({"question": f"{i}+1", "answer": str(i + 1)}) + "\n" for i in range(4)))
    assert main(["eval", "--model", str(tiny_model), "--data", str(data), "--k", "3", "--lake", str(lake.root)]) == 2
    assert "--k 3: the samples of --method majority" in capsys.readouterr().err
    assert main(["eval", "--model", str(tiny_model), "--model", str(other), "--method", "majority", "--k", "3",
                 "--data", str(data), "--lake", str(lake.root)]) == 0
    rows = query(lake, "SELECT model, count(*), min(calls), max(calls), min(method) FROM eval_samples "
                       "GROUP BY model ORDER BY model")[1]
    assert sorted(rows) == sorted([(f"{Path(tiny_model).name}+majority", 4, 3, 3, "majority@3"),
                                   ("other-ckpt+majority", 4, 3, 3, "majority@3")])
    cost = query(lake, "SELECT DISTINCT value FROM eval_metrics WHERE metric = 'calls_per_item'")[1]
    assert cost == [(3.0,)]


def test_run_with_bad_seed_file_fails_before_writing(tmp_path, lake, capsys):
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"question": "fine"}) + "\n" + json.dumps({"question": ""}) + "\n")
    cfg = tmp_path / "c.yaml"
    cfg.write_text(f"seeds: {{path: {seeds}}}\n")
    assert main(["run", "svd", "--config", str(cfg), "--lake", str(lake.root)]) == 2
    err = capsys.readouterr().err
    assert f"{seeds}, row 2, field 'question': empty" in err
    assert not lake.root.exists() or not list(lake.root.rglob("*.parquet"))


def test_flow_with_bad_seed_file_writes_nothing(tmp_path, lake, tiny_model, prefect_harness):
    import pytest

    from selfimprove.flows.svd import svd
    from selfimprove.data.seeds import SeedError

    seeds = tmp_path / "seeds.csv"
    seeds.write_text("question,seed_id\nfine,1\nalso fine,1\n")
    with pytest.raises(SeedError, match="row 3, field 'seed_id': duplicate"):
        svd(lake=str(lake.root), overrides={"model": str(tiny_model), "seeds": {"path": str(seeds)}})
    assert not list(lake.root.glob("seeds/*/*.parquet")) and not list(lake.root.glob("_manifests/*/seeds.json"))


def test_rescore_reapplies_scorers_without_generating(lake, prefect_harness, capsys):
    from selfimprove.warehouse.views import query

    items = [{"dataset": "d", "item_id": f"i{k}", "domain": "math", "question": f"{k}+1", "answer": str(k + 1), "scorer": "math"}
             for k in range(4)]
    # stored verdicts from a (pretend) broken scorer: everything marked wrong
    samples = [{"model": "base", "dataset": "d", "item_id": f"i{k}", "sample_index": 0, "method": "greedy",
                "output": rf"so \boxed{{{k + 1 if k < 3 else 99}}}", "correct": False, "reason": "wrong", "calls": 1}
               for k in range(4)]
    lake.write("eval_items", "old", items)
    lake.write("eval_samples", "old", samples, part="base")
    assert main(["eval", "--rescore", "old", "--lake", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert "3 sample verdicts changed" in out
    (new,), = query(lake, "SELECT DISTINCT run_id FROM eval_samples WHERE run_id <> 'old'")[1]
    assert query(lake, f"SELECT value FROM eval_metrics WHERE run_id = '{new}' AND metric = 'pass@1'")[1] == [(0.75,)]
    assert query(lake, "SELECT count(*) FROM eval_samples WHERE run_id = 'old' AND correct")[1] == [(0,)]  # original kept
    assert main(["eval", "--rescore", "nope", "--lake", str(lake.root)]) == 2


def test_eval_code_file_runs_in_the_sandbox(tmp_path, lake, tiny_model, prefect_harness):
    from selfimprove.flows.evaluate import evaluate_flow
    from selfimprove.warehouse.views import query

    data = tmp_path / "code.jsonl"
    data.write_text(json.dumps({"task_id": "t0", "prompt": "def one():\n", "entry_point": "one",
                                "test": "def check(f):\n    assert f() == 1\n"}) + "\n")
    evaluate_flow(model=str(tiny_model), data=str(data), scorer="code", lake=str(lake.root),
                  overrides={"backend": {"dtype": "float32"}, "evaluation": {"max_new_tokens": 8}})
    (scorer, entry), = query(lake, "SELECT scorer, entry_point FROM eval_items")[1]
    assert (scorer, entry) == ("code", "one")
    (correct, reason), = query(lake, "SELECT correct, reason FROM eval_samples")[1]
    assert correct is False and reason  # random weights write no working code; the reason says why


def test_an_engine_that_cannot_start_says_so_before_any_run(tmp_path, lake, capsys, monkeypatch):
    import selfimprove.inference.vllm_backend as vllm_backend

    def missing():
        raise RuntimeError("the vLLM engine is not installed: run `bash scripts/setup-vllm.sh`")

    monkeypatch.setattr(vllm_backend, "engine_python", missing)
    for body, expected in (("backend: {kind: vllm}\n", "run `bash scripts/setup-vllm.sh`"),
                           ("backend: {kind: openai}\n", "needs openai.base_url")):
        cfg = tmp_path / "c.yaml"
        cfg.write_text(body)
        assert main(["run", "svd", "--config", str(cfg), "--lake", str(lake.root)]) == 2
        assert expected in capsys.readouterr().err
    assert not lake.root.exists() or not list(lake.root.rglob("*.parquet"))


def test_every_command_prints_its_help(capsys):
    import pytest

    from selfimprove.flows.cli import COMMANDS

    for name in [None, *COMMANDS]:
        with pytest.raises(SystemExit) as done:
            main(["--help"] if name is None else [name, "--help"])
        assert done.value.code == 0, name
        assert "usage: selfimprove" in capsys.readouterr().out


def test_a_cli_run_starts_once_on_the_config_that_runs(tiny_model, tmp_path, lake, prefect_harness, monkeypatch):
    """The CLI's checks and the flow's are one `prepare_run`: every start check runs once, and it sees the options
    the CLI adds (--uq-ttc), so what was checked is what runs."""
    import yaml

    from selfimprove.flows import pipeline
    from selfimprove.warehouse.views import query
    from tests.tiny_model import tiny_overrides

    checked = []
    real = pipeline.check_start
    monkeypatch.setattr(pipeline, "check_start", lambda cfg, *a, **k: checked.append(cfg) or real(cfg, *a, **k))
    o = {**tiny_overrides(tiny_model), "backend": {"kind": "scripted"}}
    o["training"]["min_examples"] = 10_000
    cfg = tmp_path / "c.yaml"
    cfg.write_text(yaml.safe_dump(o))
    assert main(["run", "svd", "--config", str(cfg), "--lake", str(lake.root), "--uq-ttc"]) == 0
    (config,), = query(lake, "SELECT config_json FROM runs")[1]
    assert len(checked) == 1 and checked[0].uq_ttc.enabled and json.loads(config)["uq_ttc"]["enabled"]
