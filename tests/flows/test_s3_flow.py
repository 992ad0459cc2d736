"""The tiny-model flow with its lake on a real S3 API (moto's server on 127.0.0.1): every stage committed, a
checkpoint that travels through the bucket, `sql`, `compare` and `report` on the s3:// lake, a resume that
redoes nothing, and no credential in any object or output. (That its rows equal a local run's is checked by
tests/execution/test_ray.py, whose Ray run writes to an S3 lake, and by the S3 kill -9 test.)"""
import boto3

from selfimprove.warehouse import Lake
from selfimprove.warehouse.views import LINEAGE_QUERY, query
from tests.conftest import S3_SECRET, prefect_record
from tests.tiny_model import tiny_overrides



def _objects(location: str) -> dict[str, bytes]:
    bucket = location.removeprefix("s3://").split("/")[0]
    client = boto3.client("s3")
    keys = [o["Key"] for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket)
            for o in page.get("Contents", [])]
    return {k: client.get_object(Bucket=bucket, Key=k)["Body"].read() for k in keys}


def test_the_tiny_flow_on_an_s3_lake(tiny_model, s3_lake, prefect_harness, tmp_path, capfd):
    from selfimprove.flows.cli import main
    from selfimprove.flows.svd import svd

    o = tiny_overrides(tiny_model)
    s3 = Lake(s3_lake)
    result = svd(preset="quickstart", lake=s3_lake, overrides=o)
    run = result["run_id"]
    assert f"--lake {s3_lake}" in result["summary"]  # the SQL it suggests reaches this lake
    stages = {m["stage"] for _, m in s3.stage_manifests(run)}
    assert {"seeds", "candidates", "judge", "select", "train", "eval-base", "eval-tuned"} <= stages
    seeds, n = o["seeds"]["size"], o["sampling"]["n"]
    assert query(s3, "SELECT count(*), count(DISTINCT candidate_id) FROM candidates WHERE run_id = $run",
                 {"run": run})[1] == [(seeds * n, seeds * n)]
    assert query(s3, "SELECT count(*) FROM verdicts WHERE run_id = $run", {"run": run})[1] == [(seeds * n,)]

    # the checkpoint lives in the bucket; the tuned evaluation names it, so lineage joins across the lake
    (path,), = query(s3, "SELECT path FROM checkpoints WHERE run_id = $run", {"run": run})[1]
    assert path.startswith(f"{s3_lake}/checkpoints_store/{run}-")
    card = _objects(s3_lake)[path.removeprefix("s3://").split("/", 1)[1] + "/README.md"].decode()
    assert "model-index" in card and f"selfimprove export {run}" in card  # the tuned evaluation wrote its result
    assert query(s3, LINEAGE_QUERY.format(run_id=run))[1]
    assert not (tmp_path / "lake").exists() and not any(s3.storage.list("_shards/"))

    # a resume of the finished run on S3 redoes nothing
    before = {k: v for k, v in _objects(s3_lake).items() if "/_manifests/" in f"/{k}" and "/_parts/" not in k}
    svd(preset="quickstart", lake=s3_lake, overrides=o, run_id=run)
    after = {k: v for k, v in _objects(s3_lake).items() if "/_manifests/" in f"/{k}" and "/_parts/" not in k}
    assert after == before

    printed = capfd.readouterr()
    printed = printed.out + printed.err
    assert main(["sql", "SELECT count(*) AS n FROM candidates WHERE run_id = '" + run + "'", "--lake", s3_lake]) == 0
    n = len(query(s3, "SELECT * FROM candidates WHERE run_id = $run", {"run": run})[1])
    out = capfd.readouterr().out
    printed += out
    assert f"\n{n}" in out
    assert main(["compare", run, "--lake", s3_lake]) == 0
    out = capfd.readouterr().out
    printed += out
    assert run in out and "completed" in out
    assert main(["report", run, "--lake", s3_lake, "--out", str(tmp_path / "report")]) == 0
    assert (tmp_path / "report" / "report.html").stat().st_size > 10_000

    # the secret key reached no object of the lake, no manifest, no printed line
    objects = _objects(s3_lake)
    assert any(k.endswith(".parquet") for k in objects) and any(k.endswith(".json") for k in objects)
    assert not [k for k, body in objects.items() if S3_SECRET.encode() in body]
    out = capfd.readouterr()
    assert S3_SECRET not in printed + out.out + out.err
    # nor the Prefect API: the run's parameters and every log line, read back from the server
    record = prefect_record()
    assert s3_lake in record and "[candidates]" in record  # this run's parameters and its stage lines are in it
    assert S3_SECRET not in record
