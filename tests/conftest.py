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
def ray_cluster():
    """A local Ray cluster for the session: 2 CPUs, no dashboard, a small object store."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, object_store_memory=100 * 2**20, log_to_driver=False,
             namespace="selfimprove")
    yield ray
    ray.shutdown()
