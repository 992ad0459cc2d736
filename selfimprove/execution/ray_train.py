"""Fine-tuning on a Ray cluster: the same TRL `SFTTrainer` (`selfimprove.training.sft.train`) inside Ray Train's
`TorchTrainer`, `ScalingConfig(num_workers, use_gpu)`; rank 0 publishes the checkpoint and its loss log to the lake
(storage every node reaches: a shared folder or S3), where the stage's driver reads them. No inference engine lives in a training worker: the stage
releases every engine pool before it starts."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from selfimprove.execution.base import ExecutorConfig
from selfimprove.execution.ray_executor import connect


RESULT = "_train_result.json"  # `_`: not part of the model's identity


def _loop(args: dict) -> None:
    import ray.train

    from selfimprove.training.sft import TrainConfig, train
    from selfimprove.storage import checkpoints

    out = checkpoints.staging_dir(args["lake"], args["checkpoint_id"])  # this worker's node
    result = train(args["base"], args["examples"], out, TrainConfig(**args["training"]), None, *args["prompting"])
    if ray.train.get_context().get_world_rank() == 0:  # inside the checkpoint, published with it
        (out / RESULT).write_text(json.dumps(result))
        checkpoints.publish(args["lake"], out, args["checkpoint_id"])


def train_on_ray(config: ExecutorConfig, base: str | Path, examples: list[dict], lake: str, checkpoint_id: str,
                 training, prompting: tuple[str, str] = ("auto", "auto")) -> dict:
    """What `train` returns (path: the checkpoint's place in the lake, steps, log, final_loss, examples), trained
    by `config.train_workers` workers."""
    from selfimprove.storage import checkpoints
    from selfimprove.storage.stores import storage_for

    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    connect(config)
    args = {"base": str(base), "examples": examples, "lake": lake, "checkpoint_id": checkpoint_id,
            "training": asdict(training), "prompting": list(prompting)}
    resources = {"CPU": config.cpus_per_worker, **({"GPU": config.gpus_per_worker} if config.gpus_per_worker else {})}
    with tempfile.TemporaryDirectory(prefix="selfimprove-ray-train-") as storage:
        trainer = TorchTrainer(_loop, train_loop_config=args,
                               scaling_config=ScalingConfig(num_workers=config.train_workers,
                                                            use_gpu=config.gpus_per_worker > 0,
                                                            resources_per_worker=resources),
                               run_config=RunConfig(storage_path=storage, name="fine-tune"))
        trainer.fit()
    result = json.loads(storage_for(lake).get(f"{checkpoints.STORE}/{checkpoint_id}/{RESULT}"))
    return {**result, "path": checkpoints.checkpoint_url(lake, checkpoint_id)}
