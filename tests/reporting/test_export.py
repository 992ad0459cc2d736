"""What a run curated leaves the lake: a Hugging Face dataset folder that `datasets` loads as it is, with a card
written from the lake; jsonl, sharegpt and llamafactory; `open_lake` for notebooks; `sql --format --out`. Bad
input is one line and writes nothing."""
import json

import pytest

from selfimprove.flows.cli import main
from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides


@pytest.fixture(scope="module")
def rft_run(tiny_model, prefect_harness, tmp_path_factory):
    """RFT on the scripted engine (right on even sample indices): 5 seeds x 4 samples, 10 kept, 10 rejected by the
    ground truth; RFT trains on every kept sample."""
    from selfimprove.flows.rft import rft
    from selfimprove.warehouse import Lake

    folder = tmp_path_factory.mktemp("export")
    seeds = folder / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"seed_id": f"a{i}", "question": f"Calculate {i} + {i + 2}.",
                                         "answer": str(2 * i + 2)}) + "\n" for i in range(5)))
    o = {**tiny_overrides(tiny_model), "backend": {"kind": "scripted"}, "seeds": {"path": str(seeds)}}
    lake = Lake(folder / "lake")
    return lake, rft(lake=str(lake.root), overrides=o)["run_id"]


def _count(lake, sql, run):
    return query(lake, sql, {"run": run})[1][0][0]


def test_the_hf_export_loads_with_datasets_and_matches_the_lake(rft_run, tmp_path, capsys):
    import datasets
    import duckdb
    import polars as pl

    lake, run = rft_run
    out = tmp_path / "ds"
    assert main(["export", run, "--out", str(out), "--lake", str(lake.root)]) == 0
    assert f"load it with: datasets.load_dataset(\"{out}\")" in capsys.readouterr().out
    ds = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))
    train_n = _count(lake, "SELECT count(*) FROM train_examples WHERE run_id = $run", run)
    rejected_n = _count(lake, "SELECT count(*) FROM verdicts WHERE run_id = $run AND NOT accepted", run)
    assert (ds["train"].num_rows, ds["rejected"].num_rows) == (train_n, rejected_n) == (10, 10)
    row = ds["train"][0]
    assert row["messages"][0]["role"] == "user" and row["messages"][1] == row["completion"][0]
    assert row["prompt"] == row["messages"][:1] and row["completion"][0]["role"] == "assistant"
    assert (row["run_id"], row["accepted"], row["rejected_at_stage"]) == (run, True, None)
    stored = dict(query(lake, "SELECT candidate_id, completion FROM train_examples WHERE run_id = $run", {"run": run})[1])
    assert {r["candidate_id"]: r["completion"][0]["content"] for r in ds["train"]} == stored
    assert set(ds["rejected"]["rejected_at_stage"]) == {"ground_truth"}
    assert all(r["reason"].startswith("wrong: ") for r in ds["rejected"])
    # any Parquet reader opens it as it is
    assert pl.read_parquet(out / "data" / "train.parquet").height == 10
    assert duckdb.sql(f"SELECT count(*) FROM '{out}/data/rejected.parquet'").fetchall() == [(10,)]

    card = (out / "README.md").read_text()
    head = card.split("---\n")[1]
    import yaml

    meta = yaml.safe_load(head)
    assert meta["configs"][0]["data_files"] == [{"split": "train", "path": "data/train.parquet"},
                                                {"split": "rejected", "path": "data/rejected.parquet"}]
    assert meta["size_categories"] == ["n<1K"] and meta["task_categories"] == ["text-generation"]
    assert f"# Curated by selfimprove: run {run}" in card and "| candidates | 20 |" in card.replace("  ", " ")
    assert "| right by the seed's answer | 10 |" in card and "| training examples | 10 |" in card  # the funnel
    assert "pass@1_delta_vs_base" in card and "found no overlap" in card and "## Provenance" in card
    # the card's SQL rebuilds each split
    for split, n in (("train", 10), ("rejected", 10)):
        sql = card.split(f"`{split}`:\n\n```sql\n")[1].split("\n```")[0]
        assert len(query(lake, sql)[1]) == n


def test_pairs_and_the_other_formats(rft_run, tmp_path):
    import datasets

    lake, run = rft_run
    out = tmp_path / "pairs"
    assert main(["export", run, "--out", str(out), "--pairs", "--lake", str(lake.root)]) == 0
    pref = datasets.load_dataset(str(out), "preference", cache_dir=str(tmp_path / "hf-cache"))["train"]
    assert pref.num_rows == 5  # every seed has an accepted (#0) and a rejected (#1) sample
    assert {(r["chosen_id"], r["rejected_id"]) for r in pref} == {(f"a{i}#0", f"a{i}#1") for i in range(5)}
    assert pref[0]["chosen"][0]["role"] == "assistant" and pref[0]["prompt"][0]["role"] == "user"

    assert main(["export", run, "--out", str(tmp_path / "j"), "--format", "jsonl", "--lake", str(lake.root)]) == 0
    lines = [json.loads(x) for x in (tmp_path / "j" / "train.jsonl").read_text().splitlines()]
    assert len(lines) == 10 and [m["role"] for m in lines[0]["messages"]] == ["user", "assistant"]
    assert "candidate_id" in lines[0] and "prompt" not in lines[0]

    assert main(["export", run, "--out", str(tmp_path / "s"), "--format", "sharegpt", "--lake", str(lake.root)]) == 0
    first = json.loads((tmp_path / "s" / "rejected.jsonl").read_text().splitlines()[0])
    assert [t["from"] for t in first["conversations"]] == ["human", "gpt"] and first["candidate_id"].endswith("#1")

    lf = tmp_path / "lf"
    assert main(["export", run, "--out", str(lf), "--format", "llamafactory", "--pairs", "--lake", str(lake.root)]) == 0
    info = json.loads((lf / "dataset_info.json").read_text())
    assert info[f"{run}_train"]["formatting"] == "sharegpt" and info[f"{run}_preference"]["ranking"] is True
    for entry in info.values():
        assert len(json.loads((lf / entry["file_name"]).read_text())) == (5 if "preference" in entry["file_name"] else 10)
    chosen = json.loads((lf / "preference.json").read_text())[0]
    assert chosen["chosen"]["from"] == "gpt" and chosen["conversations"][-1]["from"] == "human"


def test_bad_exports_are_one_line_and_write_nothing(rft_run, tmp_path, capsys):
    lake, run = rft_run
    taken = tmp_path / "taken"
    taken.mkdir()
    (taken / "mine.txt").write_text("keep me")
    cases = [([run, "--out", str(taken)], "exists and is not an empty folder"),
             (["no-such-run", "--out", str(tmp_path / "a")], "no such run"),
             ([run, "--out", str(tmp_path / "b"), "--format", "csv"], "--format 'csv': one of hf, jsonl"),
             ]
    for args, says in cases:
        assert main(["export", *args, "--lake", str(lake.root)]) == 2
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and says in err[0], err
    assert sorted(p.name for p in tmp_path.iterdir()) == ["taken"] and (taken / "mine.txt").read_text() == "keep me"


def test_a_run_that_did_not_finish_or_kept_nothing_is_refused(lake, tmp_path, capsys):
    from selfimprove.reporting.export import export_run

    lake.write("runs", "r-running", [{"flow": "svd", "preset": "quickstart", "status": "running", "stage": "judge",
                                      "config_json": "{}"}])
    lake.write("runs", "r-empty", [{"flow": "svd", "preset": "quickstart", "status": "completed", "config_json": "{}"}])
    lake.write("verdicts", "r-empty", [{"candidate_id": "s#0", "accepted": False, "rejected_at_stage": "format"}])
    with pytest.raises(ValueError, match="is running in stage judge: only a completed run is exported"):
        export_run(lake, "r-running", tmp_path / "x")
    assert main(["export", "r-empty", "--out", str(tmp_path / "y"), "--lake", str(lake.root)]) == 2
    assert "kept nothing" in capsys.readouterr().err
    lake.write("runs", "r-opsd", [{"flow": "opsd", "status": "completed", "config_json": "{}"}])
    lake.write("distill_samples", "r-opsd", [{"step": 1, "seed_id": "s", "text": "y", "reward": True}])
    assert main(["export", "r-opsd", "--out", str(tmp_path / "z"), "--lake", str(lake.root)]) == 2
    assert "on-policy rollouts (table distill_samples)" in capsys.readouterr().err
    assert [p.name for p in tmp_path.iterdir()] == ["lake"]  # nothing written, not even a temporary folder


def test_open_lake_gives_dataframes_from_committed_parts_only(rft_run):
    import polars as pl

    import selfimprove

    lake, run = rft_run
    reader = selfimprove.open_lake(str(lake.root))
    frame = reader.sql("SELECT stage, count(*) AS n FROM verdicts v JOIN candidates USING (run_id, candidate_id), "
                       "LATERAL (SELECT coalesce(v.rejected_at_stage, 'kept') AS stage) WHERE run_id = $run "
                       "GROUP BY 1 ORDER BY 1", run=run)
    assert isinstance(frame, pl.DataFrame) and frame.rows() == [("ground_truth", 10), ("kept", 10)]
    assert reader.runs()["run_id"].to_list() == [run] and reader.runs()["status"].to_list() == ["completed"]
    assert reader.table("train_examples", run=run).height == 10
    with pytest.raises(ValueError, match="no such run"):
        reader.table("train_examples", run="nope")
    with pytest.raises(ValueError, match="read-only"):
        reader.sql("DELETE FROM verdicts")
    # a part a crashed stage left behind (no manifest names it) is not read
    import pyarrow.parquet as pq

    from selfimprove.warehouse.schemas import to_table

    stray = lake.root / "verdicts" / f"run={run}" / "stray.parquet"
    pq.write_table(to_table("verdicts", [{"candidate_id": "ghost", "accepted": True}], run), stray)
    try:
        assert reader.sql("SELECT count(*) AS n FROM verdicts WHERE candidate_id = 'ghost'").item() == 0
        con = reader.connection()
        assert con.execute("SELECT count(*) FROM verdicts").fetchall() == [(20,)]
        with pytest.raises(Exception, match="Permission Error"):  # nothing outside the lake
            con.execute("SELECT * FROM read_csv('/etc/passwd')").fetchall()
    finally:
        stray.unlink()


def test_sql_writes_csv_json_and_parquet_and_stays_read_only(rft_run, tmp_path, capsys):
    import polars as pl

    lake, run = rft_run
    q = f"SELECT candidate_id, accepted FROM verdicts WHERE run_id = '{run}' ORDER BY 1"
    for fmt in ("csv", "json", "parquet"):
        out = tmp_path / f"v.{fmt}"
        assert main(["sql", q, "--format", fmt, "--out", str(out), "--lake", str(lake.root)]) == 0
        assert "20 rows written" in capsys.readouterr().out
        frame = {"csv": pl.read_csv, "json": pl.read_json, "parquet": pl.read_parquet}[fmt](out)
        assert frame.height == 20 and frame.columns == ["candidate_id", "accepted"]
        assert frame["accepted"].sum() == 10
    assert main(["sql", q, "--format", "csv", "--lake", str(lake.root)]) == 0
    assert capsys.readouterr().out.splitlines()[0] == "candidate_id,accepted"
    assert main(["sql", f"COPY verdicts TO '{tmp_path}/x.csv'", "--format", "csv", "--out", str(tmp_path / "y.csv"),
                 "--lake", str(lake.root)]) == 2
    assert main(["sql", q, "--format", "parquet", "--lake", str(lake.root)]) == 2
    assert "add --out FILE" in capsys.readouterr().err
    assert not (tmp_path / "x.csv").exists() and not (tmp_path / "y.csv").exists()


def test_the_checkpoint_carries_a_model_card_with_its_held_out_result_and_exports_with_it(rft_run, tmp_path, capsys):
    import yaml

    from selfimprove.inference.models import model_identity

    lake, run = rft_run
    (path, checkpoint_id, model_hash), = query(lake, "SELECT path, checkpoint_id, model_hash FROM checkpoints "
                                                     "WHERE run_id = $run", {"run": run})[1]
    (tuned,), = query(lake, "SELECT value FROM eval_metrics WHERE run_id = $run AND model = 'tuned' "
                            "AND metric = 'pass@1'", {"run": run})[1]
    card = (lake.root / "checkpoints_store" / checkpoint_id / "README.md").read_text()
    assert str(path).endswith(checkpoint_id)
    def results(text):
        meta = yaml.safe_load(text.split("---\n")[1])
        (index,) = meta["model-index"]
        assert index["name"] == checkpoint_id
        return meta, {m["type"]: m["value"] for r in index["results"] for m in r["metrics"]}

    meta, written = results(card)  # written by the tuned evaluation stage
    assert written == {"pass@1": round(tuned, 4)}
    assert "selfimprove" in meta["tags"] and "base_model" not in meta  # a local base folder is no Hub repository
    assert f"selfimprove export {run} --out" in card and "learning_rate" in card and "WITH sample AS" in card
    assert model_identity(path) == model_hash  # the card is not part of the weights' identity

    out = tmp_path / "model"
    assert main(["export", run, "--model", "--out", str(out), "--lake", str(lake.root)]) == 0
    assert (out / "model.safetensors").exists() and (out / "tokenizer_config.json").exists()
    assert not [p for p in out.iterdir() if p.name.startswith("_")]
    _, exported = results((out / "README.md").read_text())  # rendered from the lake: the paired delta is in too
    assert exported["pass@1"] == round(tuned, 4) and "pass@1_delta_vs_base" in exported
    from transformers import AutoModelForCausalLM

    assert AutoModelForCausalLM.from_pretrained(out).num_parameters() > 0
    # the Hub is off on every machine here: one line, the export stays, nothing was pushed
    capsys.readouterr()
    again = tmp_path / "again"
    assert main(["export", run, "--out", str(again), "--push-to-hub", "me/curated", "--lake", str(lake.root)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "--push-to-hub me/curated: the Hugging Face Hub is off" in err[0] and str(again) in err[0]
    assert (again / "README.md").exists()


def test_the_base_model_of_a_card_is_a_hub_name_or_nothing():
    from selfimprove.inference.models import default_checkpoint_dir
    from selfimprove.reporting.cards import hub_name

    assert hub_name(str(default_checkpoint_dir())) == hub_name("default") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert hub_name("Qwen/Qwen3-0.6B") == "Qwen/Qwen3-0.6B"
    assert hub_name("/data/models/mine") is None and hub_name("s3://b/ckpt") is None and hub_name("./m") is None


def test_trl_trains_on_the_exported_split_as_it_is(rft_run, tiny_model, tmp_path):
    """The export's `train` split goes into TRL's SFTTrainer unchanged: as conversations (`messages`), and as
    prompt/completion pairs (loss on the completion)."""
    import datasets
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    lake, run = rft_run
    assert main(["export", run, "--out", str(tmp_path / "ds"), "--lake", str(lake.root)]) == 0
    train = datasets.load_dataset(str(tmp_path / "ds"), cache_dir=str(tmp_path / "hf-cache"))["train"]
    for columns in (["messages"], ["prompt", "completion"]):
        trainer = SFTTrainer(model=AutoModelForCausalLM.from_pretrained(tiny_model),
                             processing_class=AutoTokenizer.from_pretrained(tiny_model),
                             train_dataset=train.select_columns(columns),
                             args=SFTConfig(output_dir=str(tmp_path / "out"), max_steps=2, per_device_train_batch_size=4,
                                            report_to="none", use_cpu=True, save_strategy="no", max_length=128))
        assert trainer.train().global_step == 2
