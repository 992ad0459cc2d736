"""Prefect flows: the DAGs composed from the stage tasks, and the `selfimprove` command that runs them."""
import os

# offline and quiet by default: nothing here may reach a hub or phone home
OFFLINE_DEFAULTS = {"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1", "DO_NOT_TRACK": "1",
                    "PREFECT_SERVER_ANALYTICS_ENABLED": "false", "PREFECT_SERVER_EPHEMERAL_STARTUP_TIMEOUT_SECONDS": "120",
                    "TOKENIZERS_PARALLELISM": "false", "TRANSFORMERS_VERBOSITY": "error"}
for _key, _value in OFFLINE_DEFAULTS.items():
    os.environ.setdefault(_key, _value)
