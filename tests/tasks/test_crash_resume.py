"""kill -9 a real `selfimprove run` mid-stage, resume it, and count rows and model calls."""
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from tests.tiny_model import tiny_overrides
from selfimprove.warehouse.views import query

SEEDS, N, SHARD = 8, 4, 2


def overrides(tiny_model, judge=None):
    o = tiny_overrides(tiny_model)
    if judge:  # same weights on their own backend: the policy's counters then see sampling and evaluation only
        o["judge_model"] = str(judge)
    o["seeds"]["size"] = SEEDS
    o["shard_seeds"] = SHARD
    o["training"]["min_examples"] = 10_000  # this test is about sampling and judging
    return o


def killed_run(o: dict, lake: str, tmp_path: Path, stage: str) -> str:
    """Start the CLI in its own process group, kill -9 it after the first finished shard of `stage`."""
    from prefect.settings import PREFECT_API_URL

    from selfimprove.warehouse import Lake

    store = Lake(lake).storage

    def finished_shards():
        return [e for e in store.list("_shards/") if e.key.endswith(".done") and f"/{stage}-" in e.key]

    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(o))
    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value(), "SELFIMPROVE_PAUSE_AFTER_SHARD": f"{stage}:60"}
    proc = subprocess.Popen([sys.executable, "-m", "selfimprove.flows.cli", "run", "svd", "--config", str(cfg), "--lake", str(lake)],
                            env=env, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    try:
        while time.time() < deadline and proc.poll() is None:
            if finished_shards():
                break
            time.sleep(0.2)
        assert proc.poll() is None, "the run ended before it could be killed"
        assert finished_shards(), f"no {stage} shard finished in time"
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    (run_id,) = Lake(lake).run_ids()
    return run_id


@pytest.fixture(scope="module")
def judge_copy(tiny_model, tmp_path_factory):
    """The same weights on their own backend: the policy's counters then see sampling and evaluation only."""
    import shutil

    judge = tmp_path_factory.mktemp("judge") / "judge-copy"
    shutil.copytree(tiny_model, judge)
    return judge


@pytest.fixture(scope="module")
def uninterrupted(tiny_model, judge_copy, prefect_harness, tmp_path_factory):
    """One uninterrupted run of the crash tests' config, which every killed-and-resumed run must equal."""
    from selfimprove.flows.svd import svd
    from selfimprove.warehouse import Lake

    lake = Lake(tmp_path_factory.mktemp("reference") / "lake")
    return lake, svd(preset="quickstart", lake=str(lake.root), overrides=overrides(tiny_model, judge_copy))["run_id"]


@pytest.mark.parametrize("stage,table,store", [("candidates", "candidates", "local"), ("judge", "verdicts", "local"),
                                               ("candidates", "candidates", "s3")])
def test_kill_9_mid_stage_then_resume_loses_and_regenerates_nothing(stage, table, store, tiny_model, tmp_path,
                                                                   prefect_harness, request, judge_copy, uninterrupted):
    from selfimprove.flows.svd import svd
    from selfimprove.inference.base import usage

    o = overrides(tiny_model, judge_copy)
    lake = request.getfixturevalue("s3_lake") if store == "s3" else str(tmp_path / "lake")
    run_id = killed_run(o, lake, tmp_path, stage)
    from selfimprove.warehouse import Lake

    lk = Lake(lake)
    assert lk.read_manifest(run_id, stage) is None  # the stage did not finish...
    assert not lk.storage.list(f"{table}/run={run_id}/")  # ...its shards are outside the tables...
    assert query(lk, f"SELECT count(*) FROM {table} WHERE run_id = '{run_id}'")[1] == [(0,)]
    # the killed run could not mark itself failed: it reads as interrupted in that stage, not as live
    from selfimprove.warehouse.provenance import stage_line
    from selfimprove.warehouse.run_status import current, describe

    assert (current(lk, run_id)["status"], current(lk, run_id)["stage"]) == ("running", stage)
    assert describe(current(lk, run_id)).startswith(f"interrupted in stage {stage}: marked running, but its process")

    before = usage(tiny_model).as_dict()
    svd(preset="quickstart", lake=str(lake), overrides=o, run_id=run_id, cache=False)
    after = usage(tiny_model).as_dict()

    shards = lk.read_manifest(run_id, stage)["shards"]
    assert shards["resumed"] >= 1 and shards["resumed"] + shards["computed"] == SEEDS // SHARD
    assert f"[{stage}] resumed from {shards['resumed']} finished shards, {shards['computed']} computed; version " in \
        stage_line(stage, lk.read_manifest(run_id, stage))
    assert current(lk, run_id)["status"] == "completed" and describe(current(lk, run_id)) is None
    if stage == "candidates":  # only the unfinished shards' seeds were sampled again
        sampled = after["sequences"] - before["sequences"] - SEEDS  # minus the greedy base evaluation (8 items)
        assert sampled == shards["computed"] * SHARD * N
    else:  # sampling was finished before the kill: on resume the policy only evaluates (8 greedy items)
        assert after["sequences"] - before["sequences"] == SEEDS
    assert query(lk, f"SELECT count(*), count(DISTINCT candidate_id) FROM candidates WHERE run_id = '{run_id}'")[1] \
        == [(SEEDS * N, SEEDS * N)]
    assert query(lk, f"SELECT count(*), count(DISTINCT candidate_id) FROM verdicts WHERE run_id = '{run_id}'")[1] \
        == [(SEEDS * N, SEEDS * N)]
    assert not lk.storage.list(f"_shards/{run_id}/")

    # the resumed run's rows are exactly an uninterrupted run's (shards are seeded by index)
    ref_lake, ref = uninterrupted
    cols = "candidate_id, text" if stage == "candidates" else "candidate_id, accepted, rejected_at_stage"
    got = query(lk, f"SELECT {cols} FROM {table} WHERE run_id = '{run_id}' ORDER BY 1")[1]
    want = query(ref_lake, f"SELECT {cols} FROM {table} WHERE run_id = '{ref}' ORDER BY 1")[1]
    assert got == want


def seed_rows(o):
    from selfimprove import config as configlib
    from selfimprove.data import seeds

    return seeds.load(configlib.load("quickstart", overrides=o).seeds)


def _flaky_sample(fail_seed: str):
    from selfimprove.generation.sampling import sample

    def flaky(backend, seeds, config, progress=None):
        if any(s["seed_id"] == fail_seed for s in seeds):
            raise RuntimeError("CUDA error: device-side assert (simulated)")
        return sample(backend, seeds, config, progress)

    return flaky


def test_a_failing_shard_becomes_error_rows_with_a_reason(tiny_model, lake, prefect_harness, monkeypatch):
    import selfimprove.tasks.stages
    from selfimprove.flows.svd import svd

    o = {**overrides(tiny_model), "max_error_rate": 0.5}
    seeds = seed_rows(o)
    monkeypatch.setattr(selfimprove.tasks.stages, "sample", _flaky_sample(seeds[2]["seed_id"]))
    run = svd(preset="quickstart", lake=str(lake.root), overrides=o)["run_id"]
    errors = query(lake, f"SELECT seed_id, count(*), min(error) FROM candidates WHERE run_id = '{run}' AND error IS NOT NULL GROUP BY 1 ORDER BY 1")[1]
    shard = sorted(s["seed_id"] for s in seeds[2:4])  # the whole shard of the failing seed
    assert [(sid, n) for sid, n, _ in errors] == [(sid, N) for sid in shard]
    assert errors[0][2].startswith("backend:RuntimeError: CUDA error")
    assert query(lake, f"SELECT DISTINCT rejected_at_stage, reason LIKE 'backend:%' FROM verdicts v JOIN candidates c "
                       f"USING (run_id, candidate_id) WHERE run_id = '{run}' AND c.error IS NOT NULL")[1] == [("error", True)]
    assert lake.read_manifest(run, "candidates")["error_rows"] == 2 * N
    assert lake.runs_with_version("candidates", lake.read_manifest(run, "candidates")["version"]) == []  # never cached


def test_too_many_error_rows_fail_the_stage(tiny_model, lake, prefect_harness, monkeypatch):
    import selfimprove.flows.pipeline
    import selfimprove.tasks.stages
    from selfimprove.flows.svd import svd
    from selfimprove.tasks.common import StageError

    o = {**overrides(tiny_model), "max_error_rate": 0.1}
    seeds = seed_rows(o)
    monkeypatch.setattr(selfimprove.tasks.stages, "sample", _flaky_sample(seeds[0]["seed_id"]))
    monkeypatch.setattr(selfimprove.flows.pipeline, "sample_candidates", selfimprove.tasks.stages.sample_candidates.with_options(retries=0))
    with pytest.raises(StageError, match=r"8 of 32 rows are errors"):
        svd(preset="quickstart", lake=str(lake.root), overrides=o)
    (run,) = [p.name for p in (lake.root / "_manifests").iterdir()]
    assert lake.read_manifest(run, "candidates") is None
    assert len(list(lake.root.glob(f"_shards/{run}/candidates-*/*.done"))) == 3  # the good shards are kept for the retry
