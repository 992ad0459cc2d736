"""Hostile and careless input through the CLI: every case is refused in one line (exit 2) that names
where the problem is, before anything is written. Each case gets a fresh lake."""
import json

import pytest
import yaml

from selfimprove.flows.cli import main

# (case, config file text, what the one line must say)
CONFIGS = [
    ("negative n", {"sampling": {"n": -1}}, "field 'sampling.n': must be >= 1, got -1"),
    ("negative temperature", {"sampling": {"temperature": -0.5}}, "field 'sampling.temperature': must be >= 0"),
    ("threshold above 1", {"cascade": {"stages": [{"strategy": "agreement", "threshold": 2}]}},
     "field 'cascade.stages[0].threshold': must be >= 0 and <= 1, got 2"),
    ("no gating stage", {"cascade": {"stages": [{"strategy": "agreement", "gate": False}]}},
     "field 'cascade.stages': no stage gates"),
    ("typo in a key", {"sampling": {"temprature": 1.0}}, "field 'sampling.temprature': unknown key (did you mean 'temperature'?)"),
    ("string for an integer", {"cascade": {"stages": [{"strategy": "factuality", "votes": "3"}]}},
     "field 'cascade.stages[0].votes': must be an integer, got str '3'"),
    ("bool for an integer", {"seeds": {"size": True}}, "field 'seeds.size': must be an integer, got bool True"),
    ("infinite learning rate", {"training": {"learning_rate": float("inf")}}, "field 'training.learning_rate': must be a finite"),
    ("zero batch", {"backend": {"batch_size": 0}}, "field 'backend.batch_size': must be >= 1, got 0"),
    ("top_p zero", {"sampling": {"top_p": 0}}, "field 'sampling.top_p': must be > 0 and <= 1, got 0"),
    ("error rate above 1", {"max_error_rate": 1.5}, "field 'max_error_rate': must be >= 0 and <= 1"),
    ("a section that is not a mapping", {"sampling": 8}, "field 'sampling': must be a mapping, got int"),
    ("unknown engine", {"backend": {"kind": "tgi"}}, "field 'backend': unknown backend kind 'tgi'"),
    ("pass_k item", {"evaluation": {"pass_k": [1, 0]}}, "field 'evaluation.pass_k': item 1: must be >= 1, got 0"),
]


def _refused(capsys, argv: list[str]) -> str:
    assert main(argv) == 2
    captured = capsys.readouterr()
    err = captured.err.strip()
    assert len(err.splitlines()) == 1, err  # one line, no traceback
    assert "Traceback" not in captured.err + captured.out
    return err


def _nothing_written(lake) -> None:
    assert not lake.root.exists() or not [p for p in lake.root.rglob("*") if p.is_file()], sorted(lake.root.rglob("*"))


@pytest.mark.parametrize("case,config,says", CONFIGS, ids=[c[0] for c in CONFIGS])
def test_bad_config_values_are_refused_naming_file_and_field(case, config, says, tmp_path, lake, capsys):
    path = tmp_path / "run.yaml"
    path.write_text(yaml.safe_dump(config))
    err = _refused(capsys, ["run", "svd", "--config", str(path), "--lake", str(lake.root)])
    assert str(path) in err and says in err
    _nothing_written(lake)


@pytest.mark.parametrize("name,text,says", [
    ("bad.yaml", "sampling:\n  n: 4\n temperature: 1\n", "line 3, column 2: not valid YAML"),
    ("tabs.yaml", "sampling:\n\tn: 4\n", "line 2, column 1: not valid YAML"),
    ("bad.json", '{"sampling": {"n": 4,}}', "line 1, column 22: not valid JSON"),
    ("list.yaml", "- sampling\n- n\n", "the top level must be a mapping of settings, got list"),
])
def test_unparseable_config_is_one_line_with_line_and_column(name, text, says, tmp_path, lake, capsys):
    path = tmp_path / name
    path.write_text(text)
    err = _refused(capsys, ["run", "svd", "--config", str(path), "--lake", str(lake.root)])
    assert str(path) in err and says in err
    _nothing_written(lake)


def _seed_case(tmp_path, name: str, content: bytes) -> str:
    seeds = tmp_path / name
    seeds.write_bytes(content)
    config = tmp_path / "run.yaml"
    config.write_text(yaml.safe_dump({"seeds": {"path": str(seeds)}}))
    return str(config)


@pytest.mark.parametrize("name,content,says", [
    ("latin1.jsonl", json.dumps({"question": "1+1"}).encode() + b"\n" + '{"question": "caf\u00e9 2+2"}'.encode("latin-1"),
     "row 2: not UTF-8 (byte 0xe9); save the file as UTF-8"),
    ("wide.csv", b"question,answer\n1+1,2\n2+2,4,extra\n", "row 3: 3 fields, the header has 2"),
    ("huge.jsonl", json.dumps({"question": "1+" * 2_600_000 + "1"}).encode() + b"\n",
     "row 1, field 'question': 5,200,001 characters, over the limit of 20,000"),
    ("blank.csv", b"question,answer\n   ,2\n", "row 2, field 'question': empty"),
    ("noquestion.jsonl", b'{"prompt": "1+1"}\n', "row 1, field 'question': missing"),
    ("dup.jsonl", b'{"seed_id": 1, "question": "a"}\n{"seed_id": "1", "question": "b"}\n', "row 2, field 'seed_id': duplicate"),
    ("nested.jsonl", b'{"question": {"text": "1+1"}}\n', "row 1, field 'question': must be a string, got dict"),
    ("empty.jsonl", b"\n\n", "no rows"),
    ("seeds.txt", b"1+1\n", "unsupported file type '.txt'"),
])
def test_bad_seed_files_are_refused_naming_row_and_field(name, content, says, tmp_path, lake, capsys):
    config = _seed_case(tmp_path, name, content)
    err = _refused(capsys, ["run", "svd", "--config", config, "--lake", str(lake.root)])
    assert str(tmp_path / name) in err and says in err
    _nothing_written(lake)


def test_a_byte_order_mark_is_accepted_and_the_size_limit_is_configurable(tmp_path):
    from selfimprove.data.seeds import SeedSource, load

    seeds = tmp_path / "excel.csv"
    seeds.write_bytes("\ufeffquestion,answer\n1+1,2\n".encode("utf-8"))
    assert load(SeedSource(path=str(seeds))) == [{"seed_id": "row-2", "domain": "math", "question": "1+1", "choices": None, "answer": "2",
                                                 "task": None, "solution": None, "source": str(seeds), "source_row": 2}]
    long = tmp_path / "long.jsonl"
    long.write_text(json.dumps({"question": "x" * 30}) + "\n")
    assert load(SeedSource(path=str(long), max_question_chars=30))[0]["question"] == "x" * 30
    with pytest.raises(ValueError, match="30 characters, over the limit of 29"):
        load(SeedSource(path=str(long), max_question_chars=29))


@pytest.mark.parametrize("argv,says", [
    (["run", "svd", "--resume", "svd-nope"], "--resume 'svd-nope': no such run in the lake at"),
    (["run", "svd", "--reuse", "svd-nope"], "--reuse 'svd-nope': no such run"),
    (["run", "svd", "--reuse", "svd-nope", "--from-stage", "candidates"], "--reuse 'svd-nope': no such run"),
    (["run", "svd", "--from-stage", "candidates"], "--from-stage needs --reuse RUN_ID"),
    (["eval", "--rescore", "evaluate-nope"], "--rescore 'evaluate-nope': no such run"),
    (["report", "svd-nope"], "report 'svd-nope': no such run"),
])
def test_unknown_run_ids_are_refused_before_anything_is_written(argv, says, lake, capsys):
    lake.write("runs", "svd-real", [{"flow": "svd", "preset": "quickstart"}])  # a lake with one other run
    before = sorted(p for p in lake.root.rglob("*"))
    err = _refused(capsys, argv + ["--lake", str(lake.root)])
    assert says in err and ("svd-real" in err or "--from-stage" in err)
    assert sorted(p for p in lake.root.rglob("*")) == before  # no run row, manifest, report folder


@pytest.mark.parametrize("sql,says", [
    ("COPY (SELECT 1) TO '{outside}/leak.csv'", "refused: COPY statement"),
    ("COPY runs TO '{lake}/runs/run=x/forged.parquet'", "refused: COPY statement"),
    ("CREATE TABLE t AS SELECT 1", "refused: CREATE statement"),
    ("ATTACH '{outside}/other.duckdb' AS other", "refused: ATTACH statement"),
    ("INSTALL httpfs", "refused: LOAD statement"),
    ("SET enable_external_access = true", "refused: SET statement"),
    ("SELECT 1; DROP VIEW runs", "refused: DROP statement"),
    ("SELECT * FROM read_csv('/etc/passwd')", "SQL error: Permission Error"),
    ("SELECT * FROM read_text('{outside}/secret.txt')", "SQL error: Permission Error"),
])
def test_sql_reads_the_lake_and_nothing_else(sql, says, tmp_path, lake, capsys):
    lake.write("runs", "r1", [{"flow": "svd", "preset": "quickstart"}])
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "secret.txt").write_text("s3cret")
    before = sorted(p for p in tmp_path.rglob("*"))
    err = _refused(capsys, ["sql", sql.format(outside=outside, lake=lake.root), "--lake", str(lake.root)])
    assert says in err and "s3cret" not in err
    assert sorted(p for p in tmp_path.rglob("*")) == before


def test_sql_still_answers_reading_statements(lake, capsys):
    lake.write("runs", "r1", [{"flow": "svd", "preset": "quickstart"}])
    for sql in ("WITH r AS (SELECT * FROM runs) SELECT flow FROM r", "DESCRIBE runs", "SUMMARIZE runs", "SHOW TABLES",
                "EXPLAIN SELECT * FROM runs"):
        assert main(["sql", sql, "--lake", str(lake.root)]) == 0, sql
    assert "svd" in capsys.readouterr().out


def test_a_runtime_failure_is_one_line_with_exit_1_and_debug_shows_the_traceback(monkeypatch, lake, capsys):
    from selfimprove.flows import cli

    def boom(args):
        raise RuntimeError("engine went away\nsecond line")

    monkeypatch.setitem(cli.COMMANDS, "sql", (cli.COMMANDS["sql"][0], cli.COMMANDS["sql"][1], boom))
    assert main(["sql", "SELECT 1"]) == 1
    err = capsys.readouterr().err.strip()
    assert err == "selfimprove: failed: RuntimeError: engine went away (rerun with --debug for the traceback)"
    with pytest.raises(RuntimeError, match="engine went away"):
        main(["--debug", "sql", "SELECT 1"])
