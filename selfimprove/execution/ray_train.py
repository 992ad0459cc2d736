"""Fine-tuning on a Ray cluster: the same TRL `SFTTrainer` (`selfimprove.training.sft.train`) inside Ray Train's
`TorchTrainer`, `ScalingConfig(num_workers, use_gpu)`; rank 0 writes the checkpoint and its loss log to the lake
(storage every node reaches), where the stage's driver reads them. No inference engine lives in a training worker: the stage
releases every engine pool before it starts."""
from __future__ import annotations

import json
import tempfile
from dataclasses import asdict
from pathlib import Path

from selfimprove.execution.base import ExecutorConfig
from selfimprove.execution.ray_executor import connect


RESULT = "train_result.json"


def _loop(args: dict) -> None:
    import ray.train

    from selfimprove.training.sft import TrainConfig, train

    result = train(args["base"], args["examples"], args["output_dir"], TrainConfig(**args["training"]))
    if ray.train.get_context().get_world_rank() == 0:  # beside the checkpoint: storage the driver reaches too
        (Path(args["output_dir"]) / RESULT).write_text(json.dumps(result))


def train_on_ray(config: ExecutorConfig, base: str | Path, examples: list[dict], output_dir: str | Path, training) -> dict:
    """What `train` returns (path, steps, log, final_loss, examples), trained by `config.train_workers` workers."""
    from ray.train import RunConfig, ScalingConfig
    from ray.train.torch import TorchTrainer

    connect(config)
    args = {"base": str(base), "examples": examples, "output_dir": str(output_dir), "training": asdict(training)}
    resources = {"CPU": config.cpus_per_worker, **({"GPU": config.gpus_per_worker} if config.gpus_per_worker else {})}
    with tempfile.TemporaryDirectory(prefix="selfimprove-ray-train-") as storage:
        trainer = TorchTrainer(_loop, train_loop_config=args,
                               scaling_config=ScalingConfig(num_workers=config.train_workers,
                                                            use_gpu=config.gpus_per_worker > 0,
                                                            resources_per_worker=resources),
                               run_config=RunConfig(storage_path=storage, name="fine-tune"))
        trainer.fit()
    return json.loads((Path(output_dir) / RESULT).read_text())
