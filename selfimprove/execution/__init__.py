"""Where a stage's shards run: in the stage's own process (`local`) or on a Ray cluster (`ray`).

A stage describes one shard's work as a `ShardJob` (the engine it needs and a picklable function
of that engine, the shard's units and the shard's index); an executor runs the unfinished shards and
hands each result back to the stage's driver as it finishes, which checkpoints it. Executors register
by kind, like engines.
"""
from selfimprove.execution.base import EXECUTORS, ExecutorConfig, ShardJob, get_executor, register_executor

__all__ = ["EXECUTORS", "ExecutorConfig", "ShardJob", "get_executor", "register_executor"]
