"""Shards on a Ray cluster: a pool of actors per engine, each loading its engine once and keeping it for
every shard it is given (and for the next stage with the same engine, until `release`).

The stage's driver (the Prefect task) stays where it is: it submits the unfinished shards, and checkpoints
each one as it comes back, so resume and the kill -9 guarantees are the local ones. A worker that dies
mid-shard costs that shard's retry on a fresh actor, nothing else; past `shard_retries` the stage fails and
Prefect's retry resumes from the finished shards.
"""
from __future__ import annotations

import json
import os
from collections import defaultdict
from dataclasses import asdict

from selfimprove.execution.base import Executor, ExecutorConfig, ShardJob, register_executor

# what every worker must see as the driver does: offline, quiet, where the S3 lake is, and the test hooks.
# Never secrets: Ray keeps a runtime_env where its dashboard shows it, so S3 credentials come from each
# node's own environment (an instance role, a mounted secret; a local cluster inherits the driver's).
FORWARDED = ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "DO_NOT_TRACK", "TOKENIZERS_PARALLELISM",
             "TRANSFORMERS_VERBOSITY", "SELFIMPROVE_CACHE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_REGION",
             "AWS_DEFAULT_REGION")


class WorkerDied(RuntimeError):
    """A shard's worker died more often than `shard_retries` allows."""


class EngineWorker:
    """One Ray actor: an engine loaded on first use and kept; `run` does one shard's work on it."""

    def __init__(self, model: str | None, backend_config) -> None:
        self.model, self.backend_config, self.engine = model, backend_config, None

    def run(self, fn, units: list, index: int) -> tuple[dict, dict]:
        _die_if_told(index)
        if self.engine is None and self.model is not None:
            from selfimprove.inference import models
            from selfimprove.inference.base import load_backend

            self.engine = load_backend(models.resolve(self.model), self.backend_config)
        before = self.engine.counters.as_dict() if self.engine else {}
        produced = fn(self.engine, units, index)
        if self.engine is None:
            return produced, {}
        after = self.engine.counters.as_dict()
        return produced, {"identity": self.engine.identity(), "counters": {k: after[k] - before[k] for k in after}}

    def pid(self) -> int:
        return os.getpid()

    def close(self) -> None:
        if self.engine is not None:
            self.engine.close()
            self.engine = None


def _die_if_told(index: int) -> None:
    """SELFIMPROVE_TEST_DIE_IN_SHARD=<shard>:<marker file> makes the first worker given that shard exit at
    once, as a crashed node would (the marker keeps the retry alive); unset, nothing happens."""
    shard, _, marker = os.environ.get("SELFIMPROVE_TEST_DIE_IN_SHARD", "").partition(":")
    if shard and int(shard) == index and marker and not os.path.exists(marker):
        open(marker, "w").close()
        os._exit(1)


def connect(config: ExecutorConfig) -> None:
    """Join the configured cluster, or start a local one, once per process."""
    import ray

    if not ray.is_initialized():
        ray.init(address=config.address, include_dashboard=False, log_to_driver=False, namespace="selfimprove")


@register_executor("ray")
class RayExecutor(Executor):
    def __init__(self, config: ExecutorConfig) -> None:
        super().__init__(config)
        connect(config)
        self.pools: dict[str, list] = {}

    def _env(self) -> dict[str, str]:
        env = {k: os.environ[k] for k in os.environ if k in FORWARDED or k.startswith("SELFIMPROVE_TEST_")}
        return {**env, **{str(k): str(v) for k, v in self.config.env.items()}}

    def _new_actor(self, job: ShardJob):
        import ray

        actor = ray.remote(EngineWorker).options(num_cpus=self.config.cpus_per_worker, num_gpus=self.config.gpus_per_worker,
                                                  runtime_env={"env_vars": self._env()}, max_restarts=0)
        return actor.remote(job.model, job.backend)

    def pool(self, job: ShardJob) -> list:
        key = json.dumps([job.model, asdict(job.backend) if job.backend else None], sort_keys=True, default=str)
        if key not in self.pools:
            self.release()  # one engine's replicas at a time: the cluster's GPUs hold one model
            self.pools[key] = [self._new_actor(job) for _ in range(self.config.workers)]
        return self.pools[key]

    def run(self, job, shards):
        import ray
        from ray.exceptions import ActorDiedError, ActorUnavailableError, RayActorError

        actors = self.pool(job)
        queue, idle, in_flight = list(shards), list(actors), {}
        deaths: dict[int, int] = defaultdict(int)
        while queue or in_flight:
            while queue and idle:
                actor = idle.pop(0)
                index, units = queue.pop(0)
                in_flight[actor.run.remote(job.fn, units, index)] = (index, units, actor)
            [ref], _ = ray.wait(list(in_flight), num_returns=1)
            index, units, actor = in_flight.pop(ref)
            try:
                produced, used = ray.get(ref)
            except (ActorDiedError, ActorUnavailableError, RayActorError) as e:
                deaths[index] += 1
                if deaths[index] > self.config.shard_retries:
                    raise WorkerDied(f"shard {index}: its worker died {deaths[index]} times "
                                     f"(shard_retries {self.config.shard_retries}): {str(e).splitlines()[0]}") from None
                fresh = self._new_actor(job)  # the dead actor's place in the pool
                actors[actors.index(actor)] = fresh
                idle.append(fresh)
                queue.insert(0, (index, units))
                continue
            idle.append(actor)
            yield index, produced, used

    def release(self) -> None:
        import ray

        if not ray.is_initialized():  # at exit Ray may have shut down first: its actors went with it
            self.pools.clear()
            return
        for actors in self.pools.values():
            for actor in actors:
                try:
                    ray.get(actor.close.remote(), timeout=60)
                except Exception:  # noqa: BLE001 - a dead actor has nothing left to close
                    pass
                ray.kill(actor)
        self.pools.clear()

    def close(self) -> None:
        self.release()
