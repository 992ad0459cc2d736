"""Fine-tuning: TRL `SFTTrainer` on (prompt, completion) pairs, loss on completion tokens only.

Full fine-tuning or LoRA (merged into the base weights before saving, so every later
stage loads a plain checkpoint). Returns the per-step loss log for the lake.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from selfimprove.inference.models import load_causal_lm, load_tokenizer, save_checkpoint
from selfimprove.inference.prompt_format import template_kwargs
from selfimprove.validation import AtLeast1, NonNegative, Positive, Share


@dataclass
class TrainConfig:
    """SFT settings. Defaults are the measured CPU quickstart recipe from methods.md."""

    method: str = "full"  # full | lora
    epochs: Positive = 2.0  # passes over the training examples
    learning_rate: Positive = 2e-5  # peak learning rate
    batch_size: AtLeast1 = 8  # examples per optimiser step
    max_length: AtLeast1 = 256  # tokens per example, prompt + completion
    warmup_ratio: Share = 0.05  # share of the steps spent warming up the learning rate
    weight_decay: NonNegative = 0.01  # AdamW's weight decay
    max_grad_norm: Positive = 1.0  # gradient-norm clipping
    lr_scheduler: str = "cosine"  # transformers' scheduler name (cosine, linear, constant, ...)
    lora_r: AtLeast1 = 16  # LoRA rank (method: lora)
    lora_alpha: AtLeast1 = 32  # LoRA scaling (method: lora)
    seed: int = 0  # the training seed (data order, initialisation of LoRA)
    min_examples: AtLeast1 = 1  # fewer accepted examples than this skips training (reported, not silent)
    precision: str = "auto"  # auto | bf16 | fp32: bf16 autocast over fp32 weights; auto = bf16 where the chip has bf16 units
    group_by_length: bool = False  # batches of similar length (less padding); another data order than the default

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ValueError(f"training.precision must be one of {PRECISIONS}, got {self.precision!r}")


PRECISIONS = ("auto", "bf16", "fp32")


def cpu_has_bf16() -> bool:
    """AVX512-BF16 or AMX-BF16 among the CPU's flags (Linux; elsewhere, False)."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return any(f in flags.split() for f in ("avx512_bf16", "amx_bf16"))


def resolve_precision(setting: str) -> str:
    """The precision training runs in: `auto` is bf16 mixed precision on a CUDA GPU that supports it or a CPU
    with bf16 units, else fp32. The train stage's version records the resolved value."""
    if setting != "auto":
        return setting
    import torch

    if torch.cuda.is_available():
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if cpu_has_bf16() else "fp32"


def as_trl_row(example: dict, template_kwargs: dict | None = None) -> dict:
    """A chat row (prompt = the user's message), rendered by the model's prompt format with `template_kwargs`
    (the thinking switch), or, with format 'text', a row whose prompt is already rendered and may end inside
    the assistant turn (SD-Zero). TRL adds the EOS token to text rows."""
    if example.get("format") == "text":
        return {"prompt": example["prompt"], "completion": example["completion"]}
    row = {"prompt": [{"role": "user", "content": example["prompt"]}],
           "completion": [{"role": "assistant", "content": example["completion"]}]}
    return {**row, "chat_template_kwargs": template_kwargs} if template_kwargs else row


def build_trainer(base_model: str | Path, examples: list[dict], output_dir: str | Path, config: TrainConfig,
                  callbacks: list | None = None, prompt_format: str = "auto", thinking: str = "auto"):
    """TRL's `SFTTrainer` over these rows, tokenized and ready: its `train_dataset` rows carry the `labels` the
    loss reads (-100 on every prompt token), and its `data_collator` batches them. Chat rows are rendered in
    the model's prompt format (`prompt_format.py`), with the sampler's thinking setting."""
    if len({e.get("format") == "text" for e in examples}) > 1:
        raise ValueError("training rows mix chat and text formats; one run trains on one format")
    import torch
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    if config.method not in ("full", "lora"):
        raise ValueError(f"training method must be 'full' or 'lora', got {config.method!r}")
    tokenizer = load_tokenizer(base_model, prompt_format=prompt_format)
    model = load_causal_lm(base_model, "float32", "cpu")
    data = Dataset.from_list([as_trl_row(e, template_kwargs(tokenizer, thinking)) for e in examples])
    args = SFTConfig(
        output_dir=str(Path(output_dir) / "_trainer"), num_train_epochs=config.epochs, learning_rate=config.learning_rate,
        per_device_train_batch_size=config.batch_size, max_length=config.max_length, warmup_steps=config.warmup_ratio,  # a float < 1 is a ratio of total steps
        weight_decay=config.weight_decay, max_grad_norm=config.max_grad_norm, lr_scheduler_type=config.lr_scheduler,
        logging_steps=1, save_strategy="no", report_to="none", seed=config.seed, completion_only_loss=True,
        use_cpu=not torch.cuda.is_available(), bf16=resolve_precision(config.precision) == "bf16", dataloader_num_workers=0,
        train_sampling_strategy="group_by_length" if config.group_by_length else "random", disable_tqdm=False,
    )
    peft_config = None
    if config.method == "lora":
        from peft import LoraConfig

        peft_config = LoraConfig(r=config.lora_r, lora_alpha=config.lora_alpha, task_type="CAUSAL_LM",
                                 target_modules="all-linear")
    if not verbose():
        import datasets

        datasets.disable_progress_bars()  # "Tokenizing train dataset" and its siblings
    trainer = SFTTrainer(model=model, args=args, train_dataset=data, processing_class=tokenizer,
                         peft_config=peft_config, callbacks=callbacks or [])
    if not verbose():  # the stage's own progress bar and line report training; TRL's loss dicts only with --verbose
        from transformers import ProgressCallback

        trainer.remove_callback(ProgressCallback)
    return trainer, tokenizer


def verbose() -> bool:
    """`selfimprove run --verbose` (SELFIMPROVE_VERBOSE=1): TRL's own bars and per-step dicts are printed."""
    return os.environ.get("SELFIMPROVE_VERBOSE") == "1"


def train(base_model: str | Path, examples: list[dict], output_dir: str | Path, config: TrainConfig,
          on_step: Callable[[int, int], None] | None = None, prompt_format: str = "auto", thinking: str = "auto") -> dict:
    """Train on rows with `prompt` and `completion` (all chat rows or all text rows); save a checkpoint.
    `on_step(done, total)` is called after every optimiser step."""
    from transformers import TrainerCallback

    log: list[dict] = []

    class _Log(TrainerCallback):
        def on_log(self, args, state, control, logs=None, **kw):
            if logs and "loss" in logs:
                log.append({"step": state.global_step, "loss": float(logs["loss"]),
                            "learning_rate": float(logs.get("learning_rate", 0.0))})

    class _Steps(TrainerCallback):
        def on_step_end(self, args, state, control, **kw):
            if on_step is not None:
                on_step(state.global_step, state.max_steps)

    trainer, tokenizer = build_trainer(base_model, examples, output_dir, config, [_Log(), _Steps()], prompt_format, thinking)
    result = trainer.train()
    trained = trainer.model
    if config.method == "lora":
        trained = trained.merge_and_unload()
    if trainer.is_world_process_zero():  # several workers (Ray Train, DDP) train one model; one saves it
        save_checkpoint(trained, tokenizer, output_dir)
    return {"path": str(output_dir), "steps": int(result.global_step), "log": log,
            "final_loss": log[-1]["loss"] if log else float("nan"), "examples": len(examples)}
