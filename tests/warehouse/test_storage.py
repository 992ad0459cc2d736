"""The lake's guarantees on local disk and on a real S3 API (moto's server): readers see only committed
parts, the first writer of a stage wins, a replaced stage leaves no stale part, shards resume, checkpoints
travel through the lake."""
import json

import pytest

from selfimprove.warehouse import Lake
from selfimprove.warehouse.shards import ShardStore
from selfimprove.warehouse.views import damaged_files, query

SEEDS = [{"seed_id": f"s{i}", "domain": "math", "question": f"q{i}"} for i in range(3)]


def _stage(lake: Lake, run: str, rows: list[dict], version: str) -> dict:
    staged = Lake(lake.location, {"stage": "seeds"}, staged=True)
    files = [staged.write("seeds", run, rows)]
    return {"run_id": run, "stage": "seeds", "version": version, "files": files}


def test_round_trip_and_sql(any_lake):
    any_lake.write("verdicts", "r1", [{"candidate_id": "a#0", "accepted": True, "reason": "ok"}])
    any_lake.write("verdicts", "r1", [{"candidate_id": "a#0", "accepted": True, "reason": "ok"},
                                      {"candidate_id": "a#1", "accepted": False, "reason": "no"}])  # replaces the part
    assert query(any_lake, "SELECT candidate_id, accepted FROM verdicts ORDER BY 1")[1] == [("a#0", True), ("a#1", False)]
    assert [len(rows) for rows in any_lake.read("verdicts", "r1").values()] == [2]
    assert any_lake.run_ids() == ["r1"] and any_lake.has_run("r1") and not any_lake.has_run("r2")


def test_a_stage_is_invisible_until_its_manifest_commits(any_lake):
    manifest = _stage(any_lake, "r1", SEEDS, "v1")
    assert query(any_lake, "SELECT count(*) FROM seeds")[1] == [(0,)]  # the part exists, uncommitted
    assert any_lake.read("seeds", "r1") == {} and any_lake.storage.list("seeds/")
    assert any_lake.write_manifest("r1", "seeds", manifest) == manifest
    assert query(any_lake, "SELECT count(*) FROM seeds")[1] == [(3,)]
    assert any_lake.read_manifest("r1", "seeds")["version"] == "v1"


def test_the_first_writer_of_a_stage_wins_and_a_new_version_replaces_it_whole(any_lake):
    first = _stage(any_lake, "r1", SEEDS, "v1")
    second = {**_stage(any_lake, "r1", SEEDS[:1], "v1"), "note": "second writer"}
    assert any_lake.write_manifest("r1", "seeds", first) == first
    assert any_lake.write_manifest("r1", "seeds", second) == first  # same version: the first commit holds
    assert query(any_lake, "SELECT count(*) FROM seeds")[1] == [(3,)]

    newer = _stage(any_lake, "r1", SEEDS[:2], "v2")
    assert any_lake.write_manifest("r1", "seeds", newer) == newer
    assert query(any_lake, "SELECT count(*) FROM seeds")[1] == [(2,)]
    # the replaced version's part is gone; the uncommitted second writer's part stays invisible
    kept = {e.key for e in any_lake.storage.list("seeds/")}
    assert any_lake.storage.key_of(first["files"][0]["path"]) not in kept
    assert any_lake.storage.key_of(newer["files"][0]["path"]) in kept


def test_a_missing_part_is_named_and_left_out(any_lake):
    any_lake.write("seeds", "r1", SEEDS)
    any_lake.write("seeds", "r2", SEEDS[:1])
    gone = any_lake.committed("r1")[0]["path"]
    any_lake.storage.delete([any_lake.storage.key_of(gone)])
    assert damaged_files(any_lake) == [(gone, "missing: a manifest names it, but it is not in the lake")]
    assert query(any_lake, "SELECT run_id, count(*) FROM seeds GROUP BY 1")[1] == [("r2", 1)]


def test_finished_shards_resume_and_only_the_rest_is_computed(any_lake):
    calls = []

    def work(units, index):
        calls.append(index)
        if index == 2 and len(calls) <= 3:
            raise RuntimeError("crash in shard 2")
        return {"seeds": [{"seed_id": u, "domain": "math", "question": u} for u in units]}

    from selfimprove.execution.base import ExecutorConfig, LocalExecutor, ShardJob, run_sharded

    units, job = [f"s{i}" for i in range(6)], ShardJob(fn=lambda engine, chunk, index: work(chunk, index))
    with pytest.raises(RuntimeError):
        run_sharded(LocalExecutor(ExecutorConfig()), job, ShardStore(any_lake.location, "r1", "seeds", "v1"), units, 2)
    again = ShardStore(any_lake.location, "r1", "seeds", "v1")
    out = run_sharded(LocalExecutor(ExecutorConfig()), job, again, units, 2)
    assert [r["seed_id"] for r in out["seeds"]] == units
    assert (again.loaded, again.computed) == (2, 1) and calls == [0, 1, 2, 2]
    again.clear()
    assert not any_lake.storage.list("_shards/r1/")


def test_a_checkpoint_published_to_an_s3_lake_loads_on_a_node_without_it(s3_lake, tmp_path, monkeypatch):
    from selfimprove.inference import models
    from selfimprove.storage import checkpoints

    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "trainer-node"))
    out = checkpoints.staging_dir(s3_lake, "r1-full")
    out.mkdir(parents=True)
    (out / "config.json").write_text(json.dumps({"model_type": "llama"}))
    (out / "model.safetensors").write_bytes(b"weights" * 1000)
    url = checkpoints.publish(s3_lake, out, "r1-full")
    assert url == f"{s3_lake}/checkpoints_store/r1-full" and models.resolve(url) == out  # this node's copy

    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "other-node"))
    fetched = models.resolve(url)
    assert fetched != out and (fetched / "model.safetensors").read_bytes() == b"weights" * 1000
    assert models.model_identity(fetched) == models.model_identity(out)
    with pytest.raises(FileNotFoundError, match="no complete upload"):
        models.resolve(f"{s3_lake}/checkpoints_store/never-trained")


def test_an_unreachable_bucket_is_one_line(s3_lake, capsys):
    from selfimprove.flows.cli import main

    bucket = s3_lake.removeprefix("s3://").split("/")[0]
    assert main(["sql", "SELECT 1", "--lake", f"s3://no-{bucket}/lake"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"bucket 'no-{bucket}' is not reachable" in err[0]
    assert main(["sql", "SELECT 1", "--lake", s3_lake]) == 2
    assert f"the lake at {s3_lake} is empty" in capsys.readouterr().err
    assert main(["sql", "SELECT 1", "--lake", "s3://AKIA:hunter2@bucket/lake"]) == 2  # a key in the url: refused, not echoed
    err = capsys.readouterr().err
    assert "no credentials in it" in err and "hunter2" not in err


def test_duckdb_reads_an_s3_lake_through_arrow_and_through_fsspec_alike(s3_lake, monkeypatch):
    lake = Lake(s3_lake)
    lake.write("seeds", "r1", SEEDS)
    lake.write("verdicts", "r1", [{"candidate_id": "a", "accepted": True}])
    sql = "SELECT s.seed_id, v.accepted FROM seeds s, verdicts v ORDER BY 1"
    by_arrow = query(lake, sql)
    monkeypatch.setenv("SELFIMPROVE_DUCKDB_S3", "fsspec")
    assert query(lake, sql) == by_arrow and len(by_arrow[1]) == 3
    with pytest.raises(Exception, match="file system operations are disabled"):  # still no other file
        query(lake, "SELECT * FROM read_csv('/etc/passwd')")


def test_a_lake_from_before_part_commits_stays_readable_even_moved(tmp_path):
    """Old layout: parts written on their own (the runs row) had no commit, and manifests name absolute paths."""
    import pyarrow.parquet as pq

    from selfimprove.warehouse.schemas import to_table

    old = tmp_path / "old-place"
    for table, rows in (("runs", [{"flow": "svd", "preset": "quickstart"}]), ("seeds", SEEDS)):
        (old / table / "run=r1").mkdir(parents=True)
        pq.write_table(to_table(table, rows, "r1").drop_columns(["status"]) if table == "runs" else to_table(table, rows, "r1"),
                       old / table / "run=r1" / "data.parquet")  # a runs row from before the status column
    (old / "_manifests" / "r1").mkdir(parents=True)
    (old / "_manifests" / "r1" / "seeds.json").write_text(json.dumps(
        {"run_id": "r1", "stage": "seeds", "version": "v", "files": [
            {"table": "seeds", "path": str(old / "seeds" / "run=r1" / "data.parquet"), "rows": 3, "sha256": "x"}]}))
    moved = tmp_path / "new-place"
    old.rename(moved)

    lake = Lake(moved)
    assert query(lake, "SELECT run_id, flow, status FROM runs")[1] == [("r1", "svd", None)]
    assert query(lake, "SELECT count(*) FROM seeds")[1] == [(3,)]
    assert (moved / "_lake.json").exists() and Lake(moved).run_ids() == ["r1"]


def test_threads_committing_one_stage_at_once_agree_on_a_single_winner(any_lake):
    """Eight writers of the same stage version pass a barrier together and commit at once: exactly one manifest
    holds, every writer gets that one back, and the losers' parts stay invisible."""
    import threading

    n = 8
    staged = [_stage(any_lake, "r1", SEEDS[: 1 + i % 3], "v1") | {"writer": i} for i in range(n)]
    barrier, got = threading.Barrier(n), [None] * n
    creates = []
    real_create = any_lake.storage.create

    def counted_create(key, data):
        ok = real_create(key, data)
        creates.append(ok)
        return ok

    any_lake.storage.create = counted_create

    def commit(i):
        barrier.wait()
        got[i] = any_lake.write_manifest("r1", "seeds", staged[i])

    threads = [threading.Thread(target=commit, args=(i,)) for i in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    winner = any_lake.read_manifest("r1", "seeds")
    assert all(g == winner for g in got) and winner in staged
    assert creates.count(True) == 1 and len(creates) == n  # every writer tried, one create succeeded
    rows = len(SEEDS[: 1 + winner["writer"] % 3])
    assert query(any_lake, "SELECT count(*) FROM seeds")[1] == [(rows,)]


def test_a_conditional_replace_with_a_stale_tag_loses_on_both_stores(any_lake):
    store = any_lake.storage
    assert store.create("x/m.json", b"one") and not store.create("x/m.json", b"two")
    _, first = store.get_tagged("x/m.json")
    assert store.replace("x/m.json", b"three", first)
    assert not store.replace("x/m.json", b"four", first)  # the tag it read is stale: another writer came between
    data, now = store.get_tagged("x/m.json")
    assert data == b"three" and now != first
    assert store.replace("x/m.json", b"five", now) and store.get("x/m.json") == b"five"


def test_a_writer_that_loses_the_replace_race_reads_again_and_leaves_no_stale_part(any_lake):
    """Two versions replace v1 at the same moment: our replace runs with the tag read before the other writer's
    commit, loses, and the loop commits over the other version with a fresh tag, sweeping its parts."""
    v1, v2, v3 = (_stage(any_lake, "r1", SEEDS[:k], f"v{k}") for k in (1, 2, 3))
    any_lake.write_manifest("r1", "seeds", v1)
    store, real_replace, results = any_lake.storage, any_lake.storage.replace, []

    def racing_replace(key, data, tag):
        if not results:  # the other writer commits v2 between our read and our replace
            results.append(("other", real_replace(key, json.dumps(v2).encode(), tag)))
        ok = real_replace(key, data, tag)
        results.append(("ours", ok))
        return ok

    store.replace = racing_replace
    assert any_lake.write_manifest("r1", "seeds", v3) == v3
    assert results == [("other", True), ("ours", False), ("ours", True)]  # the losing branch ran, then a retry won
    assert any_lake.read_manifest("r1", "seeds") == v3
    assert query(any_lake, "SELECT count(*) FROM seeds")[1] == [(3,)]
    left = {e.key for e in store.list("seeds/")}
    assert store.key_of(v3["files"][0]["path"]) in left
    assert store.key_of(v2["files"][0]["path"]) not in left  # the version we replaced was swept
