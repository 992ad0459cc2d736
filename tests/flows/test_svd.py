"""The whole SVD flow on the tiny model, checked through the lake's DuckDB views."""
import pytest

from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides


def test_svd_flow_end_to_end(tiny_model, lake, prefect_harness):
    from selfimprove.flows.svd import svd

    overrides = {**tiny_overrides(tiny_model), "uq_ttc": {"enabled": True, "n": 3}, "majority": {"enabled": True}}
    result = svd(preset="quickstart", lake=str(lake.root), overrides=overrides)
    run = result["run_id"]
    q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731

    assert q("SELECT flow, count(*) FROM runs WHERE run_id = RUN GROUP BY flow") == [("svd", 1)]
    assert q("SELECT count(*) FROM seeds WHERE run_id = RUN") == [(6,)]
    assert q("SELECT count(*), count(DISTINCT seed_id) FROM candidates WHERE run_id = RUN") == [(24, 6)]
    # one verdict per candidate, and every stage named in judgments is a configured one
    assert q("SELECT count(*) FROM verdicts WHERE run_id = RUN") == [(24,)]
    stages = {s for (s,) in q("SELECT DISTINCT stage FROM judgments WHERE run_id = RUN")}
    assert stages <= {"agreement", "cycle_consistency", "factuality", "correctness"}
    # held-out items never overlap the seeds
    assert q("SELECT count(*) FROM eval_items e JOIN seeds s ON e.question = s.question "
             "WHERE e.run_id = RUN AND s.run_id = RUN") == [(0,)]
    accepted = q("SELECT count(*) FROM accepted WHERE run_id = RUN")[0][0]
    assert accepted > 0, "the tiny-model run should accept some candidates (agreement threshold 0, judges advisory)"
    assert q("SELECT count(*) FROM train_examples WHERE run_id = RUN") == [(accepted,)]
    assert q("SELECT count(*) FROM eval_samples WHERE run_id = RUN AND model = 'base'") == [(8,)]
    (path, base, examples), = q("SELECT path, base_model, examples FROM checkpoints WHERE run_id = RUN")
    assert base == str(tiny_model) and examples == accepted
    assert q("SELECT count(*) FROM eval_samples WHERE run_id = RUN AND model = 'tuned'") == [(8,)]
    assert q("SELECT count(*) FROM eval_metrics WHERE run_id = RUN AND metric = 'pass@1_delta_vs_base'") == [(1,)]
    # one logged step per optimiser step: 1 epoch at batch 4, every step's loss finite and positive
    steps = -(-accepted // 4)
    assert q("SELECT list(step ORDER BY step), bool_and(loss > 0 AND isfinite(loss)) FROM train_log WHERE run_id = RUN") \
        == [(list(range(1, steps + 1)), True)]
    from selfimprove.inference.models import model_identity

    assert model_identity(path) != model_identity(tiny_model)  # the checkpoint's weights moved
    # every file carries its stage's provenance as Parquet key-value metadata, matching the manifest
    import json

    import pyarrow.parquet as pq

    manifest = lake.read_manifest(run, "candidates")
    meta = json.loads(pq.read_schema(manifest["files"][0]["path"]).metadata[b"selfimprove"])
    assert meta["version"] == manifest["version"] and meta["inputs"] == {"seeds": lake.read_manifest(run, "seeds")["version"]}
    assert meta["libraries"]["transformers"] and manifest["seed"] == {"sampling.seed": 0}
    # the contamination guard ran before training and found nothing
    assert lake.read_manifest(run, "contamination")["action"] == "clean"
    # UQ-TTC: one answer per item, costing its 3 samples plus the judges' calls; greedy costs one call
    assert q("SELECT count(*), min(calls) >= 3, min(method) LIKE 'uq_ttc:%' FROM eval_samples "
             "WHERE run_id = RUN AND model = 'base+uq_ttc'") == [(8, True, True)]
    cost = dict(q("SELECT model, value FROM eval_metrics WHERE run_id = RUN AND metric = 'calls_per_item'"))
    assert cost["base"] == 1 and cost["base+uq_ttc"] > 3
    # the base model's majority vote over sampling.n (4) samples, as its own stage
    assert cost["base+majority"] == 4 and lake.read_manifest(run, "eval-base+majority")["rows"]["eval_samples"] == 8
    assert "held-out evaluation" in result["summary"]
    assert "selfimprove sql" in result["summary"]
    # lineage: one tuned sample -> its checkpoint -> the training rows -> their candidates -> every judge call
    from selfimprove.warehouse.views import LINEAGE_QUERY

    walk = q(LINEAGE_QUERY.format(run_id=run))
    trained = {c for (c,) in q("SELECT candidate_id FROM train_examples WHERE run_id = RUN")}
    assert walk and {r[3] for r in walk} == trained
    calls = q("SELECT count(*) FROM judgments j JOIN train_examples t USING (run_id, candidate_id) WHERE j.run_id = RUN")
    assert len(walk) == calls[0][0]  # one row per judge call behind the training rows
    (hash_,), = q("SELECT DISTINCT e.model_hash FROM eval_samples e WHERE e.run_id = RUN AND e.model = 'tuned'")
    assert q("SELECT count(*) FROM checkpoints WHERE run_id = RUN AND model_hash = '%s'" % hash_) == [(1,)]
    (model, path, mhash), = q("SELECT model, model_path, model_hash FROM runs WHERE run_id = RUN")
    assert model == path == str(tiny_model) and len(mhash) == 16
    # every engine was closed by the stage that opened it: none holds a model once the flow is done
    import gc

    from selfimprove.inference.transformers_backend import TransformersBackend

    assert not [o for o in gc.get_objects() if isinstance(o, TransformersBackend) and o.model is not None]
    # every model stage names its engine in its manifest, with what it did
    engines = lake.read_manifest(run, "candidates")["backends"]
    assert engines[0]["identity"]["dtype"] == "float32" and engines[0]["counters"]["sequences"] == 24


@pytest.fixture(scope="module")
def finished_lake(tiny_model, prefect_harness, tmp_path_factory):
    """A lake holding one finished tiny-model run, copied (and so moved) by each test that starts from it."""
    from selfimprove.flows.svd import svd

    root = tmp_path_factory.mktemp("finished") / "lake"
    return root, svd(preset="quickstart", lake=str(root), overrides=tiny_overrides(tiny_model))["run_id"]


def _copy_of(finished_lake, tmp_path):
    import shutil

    from selfimprove.warehouse import Lake

    root, run = finished_lake
    shutil.copytree(root, tmp_path / "lake")
    return Lake(tmp_path / "lake"), run


def test_other_method_reuses_candidates_with_zero_sampling_calls(tiny_model, finished_lake, tmp_path):
    from selfimprove.flows.svd import svd
    from selfimprove.inference.base import usage

    overrides = tiny_overrides(tiny_model)
    lake, first = _copy_of(finished_lake, tmp_path)
    calls_before = usage(tiny_model).generate_calls
    second = svd(preset="quickstart", lake=str(lake.root), overrides=overrides, method="no_filter", reuse=first)["run_id"]
    assert usage(tiny_model).generate_calls == calls_before  # no sampling, no judging, base eval copied
    manifest = lake.read_manifest(second, "candidates")
    assert manifest["reused_from"] == first
    q = lambda sql: query(lake, sql)[1]  # noqa: E731
    same = q(f"SELECT count(*) FROM candidates a JOIN candidates b USING (candidate_id, text) "
             f"WHERE a.run_id = '{first}' AND b.run_id = '{second}'")
    assert same == [(24,)]
    # the method is recorded, and no_filter made no judge calls
    (cfg,), = q(f"SELECT config_json FROM runs WHERE run_id = '{second}'")
    assert '"method": "no_filter"' in cfg
    assert q(f"SELECT count(*) FROM judgments WHERE run_id = '{second}'") == [(0,)]
    # resuming a finished run recomputes nothing
    svd(preset="quickstart", lake=str(lake.root), overrides=overrides, method="no_filter", run_id=second)
    assert usage(tiny_model).generate_calls == calls_before


def test_changed_judge_setting_rejudges_with_zero_sampling_calls(tiny_model, lake, prefect_harness, tmp_path):
    """A new run (no --reuse) whose only change is a judge setting: sampling comes from the version cache."""
    import shutil

    from selfimprove.flows.svd import svd
    from selfimprove import config as configlib
    from selfimprove.inference.base import usage

    judge = tmp_path / "judge-copy"  # same weights, own backend: the policy's counters see only sampling and eval
    shutil.copytree(tiny_model, judge)
    overrides = {**tiny_overrides(tiny_model), "judge_model": str(judge)}
    first = svd(preset="quickstart", lake=str(lake.root), overrides=overrides)["run_id"]
    before = (usage(tiny_model).generate_calls, usage(tiny_model).sequences)
    changed = configlib.merge(overrides, {"cascade": {"stages": overrides["cascade"]["stages"][:2]}})
    second = svd(preset="quickstart", lake=str(lake.root), overrides=changed)["run_id"]
    assert (usage(tiny_model).generate_calls, usage(tiny_model).sequences) == before  # zero sampling calls
    assert lake.read_manifest(second, "candidates")["reused_from"] == first
    assert "reused_from" not in lake.read_manifest(second, "judge")  # judging was recomputed
    stages = {s for (s,) in query(lake, f"SELECT DISTINCT stage FROM judgments WHERE run_id = '{second}'")[1]}
    assert stages == {"agreement", "cycle_consistency"}
    assert query(lake, f"SELECT count(*) FROM candidates WHERE run_id = '{second}'")[1] == [(24,)]


def test_from_stage_keeps_upstream_and_recomputes_the_rest(tiny_model, finished_lake, tmp_path):
    from selfimprove.flows.svd import svd

    overrides = tiny_overrides(tiny_model)
    lake, first = _copy_of(finished_lake, tmp_path)
    second = svd(preset="quickstart", lake=str(lake.root), overrides=overrides, reuse=first, from_stage="judge")["run_id"]
    assert lake.read_manifest(second, "candidates")["reused_from"] == first
    assert "reused_from" not in lake.read_manifest(second, "judge")  # same version, recomputed all the same
    with pytest.raises(ValueError, match="needs reuse"):
        svd(preset="quickstart", lake=str(lake.root), overrides=overrides, from_stage="judge")
    # the flow declares its stages: another flow's stage is refused by name, before anything is written
    with pytest.raises(ValueError, match="'revise' is not a stage of svd after its first; one of: candidates, judge"):
        svd(preset="quickstart", lake=str(lake.root), overrides=overrides, reuse=first, from_stage="revise")
    # each manifest records its place in the flow's order, which provenance lists
    from selfimprove.flows.pipeline import STAGES
    from selfimprove.warehouse.provenance import stage_manifests

    import os
    import time

    later = time.time() + 60  # the seeds manifest committed last: time order is not run order
    os.utime(lake.root / lake.manifest_key(second, "seeds"), (later, later))
    listed = [m["stage"] for m in stage_manifests(lake, second)]
    assert [m["order"] for m in stage_manifests(lake, second)] == [STAGES.index(s.split("@")[0]) for s in listed]
    assert listed[:4] == ["seeds", "candidates", "judge", "select"]


def test_the_placebo_needs_the_run_it_controls(tiny_model, finished_lake, tmp_path):
    """random_keep without --reuse is refused at the start, nothing written (its count is tested in
    tests/flows/test_experiment.py, where it runs after the run it controls)."""
    from selfimprove.flows.svd import svd
    from selfimprove.validation import InputError

    lake, first = _copy_of(finished_lake, tmp_path)
    with pytest.raises(InputError, match="random_keep keeps as many examples as the run it controls: name that run"):
        svd(preset="quickstart", lake=str(lake.root), overrides=tiny_overrides(tiny_model), method="random_keep")
    assert query(lake, "SELECT count(*) FROM runs")[1] == [(1,)]
