"""Faults the user did not cause: a full disk mid-write, a damaged Parquet part, two runs writing one
lake at once, and a seed file edited between a run and its resume."""
import errno
import json
import os
import re
import subprocess
import sys

import pytest
import yaml

from selfimprove.flows.cli import main
from selfimprove.warehouse.views import damaged_files, query
from tests.tiny_model import tiny_overrides


def scripted(tiny_model, **extra):
    o = tiny_overrides(tiny_model)
    o["backend"] = {"kind": "scripted"}
    o["training"]["min_examples"] = 10_000  # these tests are about the lake, not training
    return {**o, **extra}


def visible_parts(lake, table, run_id):
    return sorted((lake.root / table / f"run={run_id}").glob("*.parquet"))


def leftovers(lake):
    return [p for p in lake.root.rglob("*") if ".tmp-" in p.name]


def test_a_full_disk_mid_write_leaves_no_partial_file_and_the_run_resumes(tiny_model, lake, prefect_harness, monkeypatch):
    from selfimprove.flows.svd import svd

    from selfimprove.storage import stores as storage

    real = storage._write_parquet_file  # every Parquet object the lake writes goes through it

    def disk_full(where, data, schema):
        real(where, data, schema)
        if "/verdicts/" in str(where):
            with open(where, "r+b") as f:  # half the file made it to disk, then the device filled up
                f.truncate(os.path.getsize(where) // 2)
            raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(storage, "_write_parquet_file", disk_full)
    o = scripted(tiny_model)
    with pytest.raises(OSError, match="No space left on device"):
        svd(preset="quickstart", lake=str(lake.root), overrides=o)
    (run_id,) = [p.name for p in (lake.root / "_manifests").iterdir()]
    assert lake.read_manifest(run_id, "judge") is None and not visible_parts(lake, "verdicts", run_id)
    assert not leftovers(lake) and not damaged_files(lake)
    assert query(lake, "SELECT count(*) FROM verdicts")[1] == [(0,)]
    candidates = lake.read_manifest(run_id, "candidates")["rows"]["candidates"]

    monkeypatch.setattr(storage, "_write_parquet_file", real)  # space freed
    svd(preset="quickstart", lake=str(lake.root), overrides=o, run_id=run_id)
    assert lake.read_manifest(run_id, "candidates")["files"][0]["rows"] == candidates  # not sampled again
    assert query(lake, f"SELECT count(*) FROM verdicts WHERE run_id = '{run_id}'")[1] == [(candidates,)]


def test_a_damaged_part_is_named_and_the_other_runs_stay_readable(lake, capsys):
    for run in ("good", "bad"):
        lake.write("runs", run, [{"flow": "svd", "preset": "quickstart"}])
        lake.write("verdicts", run, [{"candidate_id": f"{run}-{i}", "accepted": True} for i in range(3)])
    damaged = visible_parts(lake, "verdicts", "bad")[0]
    damaged.write_bytes(damaged.read_bytes()[:-40])  # a torn copy: the footer is gone
    assert main(["sql", "SELECT run_id, count(*) FROM verdicts GROUP BY run_id", "--lake", str(lake.root)]) == 0
    captured = capsys.readouterr()
    assert re.search(r"good +3", captured.out) and "bad" not in captured.out
    (warning,) = captured.err.strip().splitlines()
    assert str(damaged) in warning and "damaged" in warning and "leaves it out" in warning
    assert query(lake, "SELECT count(*) FROM runs")[1] == [(2,)]  # the bad run's other tables are intact


def _cli_run(o: dict, lake, folder, *flags, env: dict | None = None) -> subprocess.Popen:
    from prefect.settings import PREFECT_API_URL

    cfg = folder / "run.yaml"
    cfg.write_text(yaml.safe_dump(o))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), **(env or {})}
    return subprocess.Popen([sys.executable, "-m", "selfimprove.flows.cli", "run", "svd", "--config", str(cfg),
                             "--lake", str(lake.root), *flags], env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)


def test_two_runs_writing_one_lake_at_once_both_complete_whole(tiny_model, lake, tmp_path, prefect_harness):
    """Same config, forced to overlap: run a is held after each sampling shard (the pause hook); run b starts only
    once a has a finished shard and no committed sampling stage, and runs through while a is held. Each run may
    copy the other's finished stages, never a partial one."""
    import time

    o = scripted(tiny_model, shard_seeds=2)  # 6 seeds: three sampling shards
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    a = _cli_run(o, lake, tmp_path / "a", env={"SELFIMPROVE_PAUSE_AFTER_SHARD": "candidates:4"})
    deadline = time.time() + 240
    while not list(lake.root.glob("_shards/*/candidates-*/*.done")):  # the barrier: a is inside its sampling stage
        assert a.poll() is None and time.time() < deadline, "run a ended or stalled before its first shard"
        time.sleep(0.1)
    (run_a,) = [p.name for p in (lake.root / "_manifests").iterdir()]
    assert lake.read_manifest(run_a, "candidates") is None
    b = _cli_run(o, lake, tmp_path / "b")
    b_started = time.time()
    outputs = [p.communicate(timeout=600)[0] for p in (a, b)]
    assert [p.returncode for p in (a, b)] == [0, 0], outputs
    runs = sorted(p.name for p in (lake.root / "_manifests").iterdir())
    (run_b,) = set(runs) - {run_a}
    # they overlapped: a committed its sampling stage after b had started (b did not wait for a)
    committed = {e.key: e.mtime for e in lake.storage.list(f"_manifests/{run_a}/")}
    assert committed[f"_manifests/{run_a}/candidates.json"] > b_started
    assert lake.read_manifest(run_b, "candidates").get("reused_from") != run_a  # a's stage was not done when b sampled
    assert len(runs) == 2 and not leftovers(lake) and not damaged_files(lake)
    for run_id in runs:
        manifest = lake.read_manifest(run_id, "judge")
        n = lake.read_manifest(run_id, "candidates")["rows"]["candidates"]
        assert query(lake, f"SELECT count(*) FROM verdicts WHERE run_id = '{run_id}'")[1] == [(n,)]
        assert manifest["rows"]["verdicts"] == n
    rows = [query(lake, f"SELECT candidate_id, accepted, reason FROM verdicts WHERE run_id = '{r}' ORDER BY 1")[1] for r in runs]
    assert rows[0] == rows[1] and len(rows[0]) == 6 * 4  # 6 seeds x 4 samples, the same verdicts in both


def test_a_seed_file_edited_before_resume_is_refused_not_mixed(tiny_model, lake, tmp_path, prefect_harness, capsys):
    from selfimprove.flows.svd import svd

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text("".join(json.dumps({"question": f"Calculate {i} + 1.", "answer": str(i + 1)}) + "\n" for i in range(4)))
    o = scripted(tiny_model, seeds={"path": str(seeds)})
    run_id = svd(preset="quickstart", lake=str(lake.root), overrides=o)["run_id"]
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(o))
    seeds.write_text(seeds.read_text().replace("Calculate 3 + 1.", "Calculate 30 + 1."))
    before = sorted(lake.root.rglob("*"))
    assert main(["run", "svd", "--config", str(cfg), "--lake", str(lake.root), "--resume", run_id]) == 2
    err = capsys.readouterr().err
    assert str(seeds) in err and f"changed since run {run_id} read it" in err
    assert sorted(lake.root.rglob("*")) == before
    with pytest.raises(ValueError, match="changed since run"):  # the flow itself refuses too (Prefect UI, deployments)
        svd(preset="quickstart", lake=str(lake.root), overrides=o, run_id=run_id)
    assert sorted(lake.root.rglob("*")) == before


def test_bad_parameters_fail_a_flow_started_like_the_prefect_ui_does_with_nothing_written(lake, prefect_harness):
    from selfimprove.flows.svd import svd

    with pytest.raises(ValueError, match=r"overrides, field 'sampling.n': must be >= 1, got 0"):
        svd(preset="quickstart", lake=str(lake.root), overrides={"sampling": {"n": 0}})
    with pytest.raises(ValueError, match="reuse 'nope': no such run"):
        svd(preset="quickstart", lake=str(lake.root), reuse="nope")
    assert not lake.root.exists() or not [p for p in lake.root.rglob("*") if p.is_file()]
