"""The tiny-model flow on a local Ray cluster with its lake on S3 (moto's server): 2 engine workers, one of
them killed mid-shard, give the rows a local run on a local lake gives, lose none and compute no finished
shard twice; Ray Train's worker publishes the checkpoint to the bucket and the tuned evaluation loads it
(`-m slow`); the default run checks that no credential reaches a worker."""
import pytest

from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides

SEEDS, SHARD = 6, 2


def _rows(lake, run, sql):
    return query(lake, sql, {"run": run})[1]


@pytest.mark.slow  # about 70 s on 2 cores: it runs in CI's `-m slow` command, not the default one
def test_a_ray_run_with_a_worker_killed_mid_shard_equals_a_local_run(tiny_model, ray_cluster, s3_lake, prefect_harness,
                                                                     tmp_path, monkeypatch):
    from selfimprove.flows.svd import svd
    from selfimprove.warehouse import Lake

    o = {**tiny_overrides(tiny_model), "shard_seeds": SHARD}
    local_lake, ray_lake = Lake(tmp_path / "local"), Lake(s3_lake)
    local = svd(preset="quickstart", lake=str(local_lake.root), overrides=o)["run_id"]

    marker = tmp_path / "worker-died"
    monkeypatch.setenv("SELFIMPROVE_TEST_DIE_IN_SHARD", f"1:{marker}")  # the first worker given shard 1 exits
    on_ray = svd(preset="quickstart", lake=s3_lake,
                 overrides={**o, "executor": {"kind": "ray", "workers": 2, "cpus_per_worker": 1}})["run_id"]
    assert marker.exists()  # a worker did die mid-shard

    manifest = ray_lake.read_manifest(on_ray, "candidates")
    assert manifest["shards"] == {"resumed": 0, "computed": SEEDS // SHARD}  # every shard saved once, none twice
    for sql in ("SELECT candidate_id, text, final_answer FROM candidates WHERE run_id = $run ORDER BY 1",
                "SELECT candidate_id, accepted, rejected_at_stage, reason FROM verdicts WHERE run_id = $run ORDER BY 1",
                "SELECT candidate_id, stage, vote_index, call, raw_output FROM judgments WHERE run_id = $run ORDER BY ALL",
                "SELECT candidate_id, prompt, completion FROM train_examples WHERE run_id = $run ORDER BY 1",
                "SELECT model, item_id, output, correct FROM eval_samples WHERE run_id = $run ORDER BY ALL"):
        got, want = _rows(ray_lake, on_ray, sql), _rows(local_lake, local, sql)
        assert got and got == want, sql
    # the workers' engine counters reach the manifest: every candidate was sampled once on the cluster
    counters = manifest["backends"][0]["counters"]
    assert counters["sequences"] == SEEDS * o["sampling"]["n"]
    # fine-tuning ran in Ray Train, whose rank-0 worker published the checkpoint the tuned evaluation loaded
    (steps, path, weights), = _rows(ray_lake, on_ray, "SELECT steps, path, model_hash FROM checkpoints WHERE run_id = $run")
    assert steps == _rows(local_lake, local, "SELECT steps FROM checkpoints WHERE run_id = $run")[0][0] and steps > 0
    assert path.startswith(f"{s3_lake}/checkpoints_store/")
    assert _rows(ray_lake, on_ray, "SELECT DISTINCT model_path, model_hash FROM eval_samples WHERE run_id = $run "
                                   "AND model = 'tuned'") == [(path, weights)]


def test_no_credential_reaches_a_ray_workers_runtime_env(ray_cluster, s3_server, monkeypatch):
    """Ray shows an actor's runtime_env in its dashboard and state API: read it back from inside a worker the
    executor started, with credentials in the driver's environment."""
    import ray

    from selfimprove.execution.base import ExecutorConfig, ShardJob
    from selfimprove.execution.ray_executor import RayExecutor
    from tests.conftest import S3_SECRET, s3_environment

    for key, value in s3_environment(s3_server).items():  # the driver holds S3 credentials, as a user's does
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-driver-secret")
    monkeypatch.setenv("HF_TOKEN", "hf_driver_secret")
    executor = RayExecutor(ExecutorConfig(kind="ray", workers=1, cpus_per_worker=1))
    try:
        (worker,) = executor.pool(ShardJob(fn=print))
        shown = ray.get(worker.__ray_call__.remote(lambda self: ray.get_runtime_context().get_runtime_env_string()))
    finally:
        executor.release()
    assert "AWS_ENDPOINT_URL" in shown and "HF_HUB_OFFLINE" in shown  # what workers need does travel
    for secret in (S3_SECRET, "sk-driver-secret", "hf_driver_secret"):
        assert secret not in shown
