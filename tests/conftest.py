import os

for key, value in {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                   "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "TOKENIZERS_PARALLELISM": "false",
                   "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "180", "TRANSFORMERS_VERBOSITY": "error"}.items():
    os.environ.setdefault(key, value)

from prefect.logging.configuration import setup_logging  # noqa: E402

setup_logging()  # Prefect's console handler must bind the real stderr, not one test's captured stream

import pytest  # noqa: E402

from tests.tiny_model import build_tiny_model  # noqa: E402


@pytest.fixture(scope="session")
def tiny_model(tmp_path_factory):
    return build_tiny_model(tmp_path_factory.mktemp("tiny-model"))


@pytest.fixture(scope="session")
def prefect_harness():
    from prefect.testing.utilities import prefect_test_harness

    with prefect_test_harness(server_startup_timeout=180):
        yield


@pytest.fixture
def lake(tmp_path):
    from selfimprove.warehouse import Lake

    return Lake(tmp_path / "lake")


@pytest.fixture(scope="session")
def vllm_server():
    """A real `vllm serve` of the embedded model on 127.0.0.1, started once for the session and stopped at its end."""
    from selfimprove.inference.base import BackendConfig
    from selfimprove.inference.models import default_checkpoint
    from selfimprove.inference.vllm_backend import EngineProcess

    server = EngineProcess(str(default_checkpoint()), BackendConfig(kind="vllm"))
    yield server
    server.stop()


@pytest.fixture(scope="session")
def ray_cluster(s3_server):
    """A local Ray cluster for the session: 2 CPUs, no dashboard, a small object store. Its nodes get the test
    S3 server's credentials in their environment, as a real cluster's nodes have their own (never from us)."""
    import ray

    with pytest.MonkeyPatch.context() as env:
        for key, value in s3_environment(s3_server).items():
            env.setenv(key, value)
        ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
                 namespace="selfimprove")
    yield ray
    ray.shutdown()


S3_SECRET = "selfimprove-test-secret-0123456789"  # a test credential: no file, log or row may ever contain it


def s3_environment(endpoint: str) -> dict[str, str]:
    return {"AWS_ENDPOINT_URL": endpoint, "AWS_ACCESS_KEY_ID": "selfimprove-test", "AWS_SECRET_ACCESS_KEY": S3_SECRET,
            "AWS_DEFAULT_REGION": "us-east-1"}


@pytest.fixture(scope="session")
def s3_server():
    """A real S3 API on 127.0.0.1 (moto's standalone server), started for the session and stopped at its end."""
    import socket
    import subprocess
    import sys
    import time

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 60
    while True:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            break
        except OSError:
            if proc.poll() is not None or time.time() > deadline:
                raise RuntimeError("moto's S3 server did not start")
            time.sleep(0.2)
    yield f"http://127.0.0.1:{port}"
    proc.terminate()
    proc.wait(timeout=30)


@pytest.fixture
def s3_lake(s3_server, monkeypatch):
    """A fresh bucket on the test S3 server, credentials in the environment as a user would set them: the
    lake's location, s3://BUCKET/lake."""
    import uuid

    import boto3

    for key, value in s3_environment(s3_server).items():
        monkeypatch.setenv(key, value)
    bucket = f"lake-{uuid.uuid4().hex[:12]}"
    boto3.client("s3", endpoint_url=s3_server, region_name="us-east-1").create_bucket(Bucket=bucket)
    return f"s3://{bucket}/lake"


@pytest.fixture(params=["local", "s3"])
def any_lake(request, tmp_path):
    """The same test on a local lake and on an S3 lake."""
    from selfimprove.warehouse import Lake

    if request.param == "local":
        return Lake(tmp_path / "lake")
    return Lake(request.getfixturevalue("s3_lake"))


def prefect_record() -> str:
    """Everything the Prefect API keeps about this session's runs, as text: every flow and task run's parameters
    and every log line. A secret must not be in it."""
    import json

    from prefect.client.orchestration import get_client

    def every(read) -> list:
        out: list = []
        while True:
            page = read(limit=200, offset=len(out))
            out += page
            if len(page) < 200:
                return out

    with get_client(sync_client=True) as client:
        flows, logs = every(client.read_flow_runs), every(client.read_logs)
    return "\n".join([json.dumps(f.parameters, default=str) for f in flows] + [entry.message for entry in logs])
