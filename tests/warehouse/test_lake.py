import pytest

from selfimprove.warehouse.views import query


def test_parquet_duckdb_round_trip(any_lake):
    lake = any_lake
    lake.write("verdicts", "r1", [{"candidate_id": "a#0", "accepted": True, "rejected_at_stage": None, "reason": "ok"},
                                  {"candidate_id": "a#1", "accepted": False, "rejected_at_stage": "format", "reason": "x"}])
    lake.write("candidates", "r1", [{"candidate_id": "a#0", "seed_id": "a", "sample_index": 0, "text": "t",
                                     "final_answer": "1", "n_tokens": 3, "prompt_hash": "h"}])
    cols, rows = query(lake, "SELECT run_id, candidate_id, accepted FROM verdicts ORDER BY candidate_id")
    assert cols == ["run_id", "candidate_id", "accepted"]
    assert rows == [("r1", "a#0", True), ("r1", "a#1", False)]
    assert query(lake, "SELECT candidate_id, reason FROM accepted")[1] == [("a#0", "ok")]


def test_empty_lake_has_typed_empty_views(any_lake):
    lake = any_lake
    assert query(lake, "SELECT stage, count(*) FROM judgments GROUP BY stage")[1] == []
    cols, _ = query(lake, "SELECT * FROM eval_metrics")
    assert cols[:3] == ["run_id", "model", "dataset"]


def test_wrong_types_name_table_and_column(any_lake):
    rows = [{"candidate_id": f"a{i}", "sample_index": i} for i in range(9000)] + [{"candidate_id": "b", "sample_index": "first"}]
    with pytest.raises(TypeError, match="'candidates', column 'sample_index'"):
        any_lake.write("candidates", "r1", rows)  # the bad row comes after a first full batch: still nothing written
    assert not any_lake.storage.list("candidates/") and not any_lake.storage.list("_manifests/")


def test_partial_files_are_invisible_to_views(lake):
    lake.write("seeds", "r1", [{"seed_id": "s", "domain": "math", "question": "q"}])
    folder = lake.root / lake.table_key("seeds", "r1")
    (folder / ".tmp-deadbeef.partial").write_bytes(b"PAR1 half written")
    assert query(lake, "SELECT count(*) FROM seeds")[1] == [(1,)]


def test_rewrite_replaces_atomically(lake):
    lake.write("seeds", "r1", [{"seed_id": "s", "domain": "math", "question": "q"}])
    lake.write("seeds", "r1", [{"seed_id": f"s{i}", "domain": "math", "question": "q"} for i in range(3)])
    assert query(lake, "SELECT count(*) FROM seeds")[1] == [(3,)]
    assert not list((lake.root / lake.table_key("seeds", "r1")).glob(".tmp-*"))
