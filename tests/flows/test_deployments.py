"""prefect.yaml registers against a local Prefect server: every deployment, schedule and parameter."""
import os
import subprocess
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[2]


def test_every_deployment_registers_against_a_local_server(prefect_harness):
    from prefect.client.orchestration import get_client
    from prefect.settings import PREFECT_API_URL

    env = {**os.environ, "PREFECT_API_URL": PREFECT_API_URL.value()}
    prefect = [sys.executable, "-m", "prefect", "--no-prompt"]
    subprocess.run(prefect + ["work-pool", "create", "default", "--type", "process", "--overwrite"],
                   cwd=ROOT, env=env, check=True, capture_output=True, timeout=120)
    done = subprocess.run(prefect + ["deploy", "--all"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]

    wanted = {d["name"]: d for d in yaml.safe_load((ROOT / "prefect.yaml").read_text())["deployments"]}
    with get_client(sync_client=True) as client:
        got = {d.name: d for d in client.read_deployments()}
    assert set(wanted) <= set(got)
    weekly = got["svd-weekly"]
    assert [s.schedule.cron for s in weekly.schedules] == ["0 3 * * 1"]
    limit = weekly.concurrency_limit if weekly.concurrency_limit is not None else weekly.global_concurrency_limit.limit
    assert limit == 1  # scheduled retrains never overlap
    assert weekly.parameters["overrides"] == {"track": {"name": "weekly"}}  # each week a round of its track
    assert got["rounds"].parameters["rounds"] == 3 and got["rounds"].parameters["overrides"]["track"]["name"] == "arith"
    for stage in ("judge", "select", "train"):
        assert got[f"svd-from-{stage}"].parameters["from_stage"] == stage
    assert got["svd-from-eval"].parameters["from_stage"] == "eval-base"
    assert got["evaluate"].parameters["method"] == "greedy"
    assert got["experiment"].parameters["methods"] == ["svd", "random_keep", "no_filter", "rft"]
    assert got["experiment"].parameters["overrides"] == {"majority": {"enabled": True}}
    assert got["sdzero"].parameters["reward"] == "ground_truth"
    assert got["sdzero-self-verified"].parameters["reward"] == "self_verified"
    assert got["sdzero-from-distill"].parameters["from_stage"] == "distill"
    assert [got[f"opsd{k}"].parameters["pi"] for k in ("", "-self-verified", "-rule")] == ["ground_truth", "self_verified",
                                                                                          "rule"]
    # the Custom run form shows a description under every parameter of every deployment
    for name, d in got.items():
        props = d.parameter_openapi_schema["properties"]
        undocumented = [p for p, spec in props.items() if not spec.get("description")]
        assert props and not undocumented, f"{name}: parameters without a description: {undocumented}"
    assert "first stage to recompute" in got["svd-from-select"].parameter_openapi_schema["properties"]["from_stage"]["description"]
