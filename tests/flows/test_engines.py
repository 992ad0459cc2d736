"""`selfimprove run svd` end to end on the embedded model with the vLLM engine and with an OpenAI-compatible
server (a real `vllm serve`), and a server that dies mid-stage: error rows, then a resume that loses nothing.
Marked `vllm` (the second pytest command of `.ci/run`)."""
import pytest

from selfimprove import config as configlib
from selfimprove.warehouse.views import query

pytestmark = pytest.mark.vllm


def small(backend: dict) -> dict:
    return {"seeds": {"size": 6}, "sampling": {"n": 2, "max_new_tokens": 24},
            "cascade": {"stages": [{"strategy": "agreement", "threshold": 0.0},
                                   {"strategy": "correctness", "votes": 1, "scoring": "probability", "gate": False}]},
            "training": {"epochs": 1, "batch_size": 8, "max_length": 128},
            "evaluation": {"source": {"size": 8, "seed": 777}, "max_new_tokens": 24}, "backend": backend}


def check_run(lake, run, kind):
    q = lambda sql: query(lake, sql, {"run": run})[1]  # noqa: E731
    assert q("SELECT count(*) FROM candidates WHERE run_id = $run AND error IS NULL") == [(12,)]
    assert q("SELECT count(*) FROM judgments WHERE run_id = $run AND model_call") == [(q(
        "SELECT count(*) FROM verdicts WHERE run_id = $run AND rejected_at_stage IS DISTINCT FROM 'format' "
        "AND rejected_at_stage IS DISTINCT FROM 'not_judged'")[0][0],)]
    for stage in ("candidates", "judge", "eval-base"):
        assert lake.read_manifest(run, stage)["backends"][0]["identity"]["kind"] == kind
    assert q("SELECT count(DISTINCT model) FROM eval_samples WHERE run_id = $run") == [(2,)]  # base and tuned
    return q("SELECT model, value FROM eval_metrics WHERE run_id = $run AND metric = 'pass@1' ORDER BY model")


def test_svd_runs_on_the_vllm_engine(lake, prefect_harness):
    from selfimprove.flows.svd import svd

    run = svd(preset="quickstart", lake=str(lake.root), overrides=small({"kind": "vllm"}))["run_id"]
    print("vllm:", check_run(lake, run, "vllm"))
    notes = lake.read_manifest(run, "candidates")["backends"][0]
    assert "repeatable" in notes["reproducibility"] and notes["engine_startup_s"] > 0
    # the engine stayed up from sampling into judging (one start), and was closed before training
    assert "engine_startup_s" in lake.read_manifest(run, "judge")["backends"][0]


def test_svd_runs_against_an_openai_compatible_server(lake, prefect_harness, vllm_server, monkeypatch):
    from selfimprove.flows.svd import svd

    monkeypatch.setenv("SELFIMPROVE_TEST_KEY", "sk-secret-never-stored")
    backend = {"kind": "openai", "openai": {"base_url": vllm_server.base_url, "api_key_env": "SELFIMPROVE_TEST_KEY",
                                            "send_seed": False}}
    run = svd(preset="quickstart", lake=str(lake.root), overrides=small(backend))["run_id"]
    print("openai:", check_run(lake, run, "openai"))
    assert lake.read_manifest(run, "eval-tuned")["backends"][0]["identity"]["kind"] == "transformers"
    stored = "".join(p.read_text(errors="ignore") for p in lake.root.rglob("*.json")) + \
        "".join(p.read_bytes().decode("latin-1") for p in lake.root.rglob("*.parquet"))
    assert "sk-secret" not in stored and "SELFIMPROVE_TEST_KEY" in stored  # the variable's name, never its value
    from tests.conftest import prefect_record

    record = prefect_record()  # the run's Prefect parameters and every log line, read back from the server
    assert str(lake.root) in record and "[candidates]" in record  # this run's parameters and its stage lines are in it
    assert "sk-secret" not in record


def test_a_server_killed_mid_stage_leaves_error_rows_and_resume_redoes_only_them(lake, prefect_harness, monkeypatch):
    import threading
    import time

    import selfimprove.flows.pipeline
    import selfimprove.tasks.stages
    from selfimprove.flows.svd import svd
    from selfimprove.inference.base import BackendConfig
    from selfimprove.inference.models import default_checkpoint
    from selfimprove.inference.vllm_backend import EngineProcess
    from selfimprove.tasks.common import StageError

    def overrides(server):
        o = small({"kind": "openai", "openai": {"base_url": server.base_url, "send_seed": False, "max_retries": 0,
                                                       "timeout_s": 20}})
        o["shard_seeds"] = 2  # 6 seeds: 3 shards of sampling
        return o

    server = EngineProcess(str(default_checkpoint()), BackendConfig(kind="vllm"))
    monkeypatch.setenv("SELFIMPROVE_PAUSE_AFTER_SHARD", "candidates:2")
    monkeypatch.setattr(selfimprove.flows.pipeline, "sample_candidates",
                        selfimprove.tasks.stages.sample_candidates.with_options(retries=0))

    def kill_after_first_shard():
        deadline = time.time() + 300
        while time.time() < deadline and not list(lake.root.glob("_shards/*/candidates-*/00000.done")):
            time.sleep(0.1)
        server.stop()

    killer = threading.Thread(target=kill_after_first_shard)
    killer.start()
    try:
        with pytest.raises(StageError, match=r"rows are errors .*backend:APIConnectionError"):
            svd(preset="quickstart", lake=str(lake.root), overrides=overrides(server))
    finally:
        killer.join()
        server.stop()
    (run,) = [p.name for p in (lake.root / "_manifests").iterdir()]
    assert lake.read_manifest(run, "candidates") is None and not list(lake.root.glob(f"candidates/run={run}/*.parquet"))

    monkeypatch.delenv("SELFIMPROVE_PAUSE_AFTER_SHARD")
    restarted = EngineProcess(str(default_checkpoint()), BackendConfig(kind="vllm"))  # a new port, the same model
    try:
        svd(preset="quickstart", lake=str(lake.root), overrides=overrides(restarted), run_id=run)
    finally:
        restarted.stop()
    manifest = lake.read_manifest(run, "candidates")
    assert manifest["shards"] == {"resumed": 1, "computed": 2}
    assert manifest["backends"][0]["counters"]["sequences"] == 2 * 2 * 2  # only the two lost shards: 4 seeds x n=2
    rows = query(lake, "SELECT count(*), count(DISTINCT candidate_id), count(error) FROM candidates WHERE run_id = $run",
                 {"run": run})[1]
    assert rows == [(12, 12, 0)]
