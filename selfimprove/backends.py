"""Inference backends: one interface, batched generation and verdict-token scoring.

`Backend.generate` turns chat prompts into n sampled completions each;
`Backend.choice_probs` reads the next-token probabilities of a few fixed choices
(e.g. "Y"/"N") after an assistant prefix, which is how probability judges and
constrained verdicts avoid unparseable output. Counters record calls and tokens so
stages can report cost and tests can prove what was (not) recomputed.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

Messages = list[dict]


@dataclass
class SamplingParams:
    """How to decode. temperature 0 means greedy."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50  # 0 disables top-k truncation; 50 is transformers' own default
    max_new_tokens: int = 64
    n: int = 1  # completions per prompt
    seed: int = 0


@dataclass
class Generation:
    text: str
    n_tokens: int


@dataclass
class BackendConfig:
    """Which backend and how it runs."""

    kind: str = "transformers"  # transformers | vllm (GPU extra)
    device: str = "auto"  # auto → cuda if available, else cpu
    dtype: str = "bfloat16"  # bfloat16 is ~30% faster than float32 on this CPU
    batch_size: int = 64  # sequences per generate() call; batching is the whole game on CPU
    max_prompt_tokens: int = 1024


@dataclass
class Counters:
    generate_calls: int = 0  # prompts sent to generate
    sequences: int = 0  # completions returned
    prompt_tokens: int = 0
    generated_tokens: int = 0
    scored_prompts: int = 0  # prompts sent to choice_probs

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Backend:
    name = "base"

    def __init__(self) -> None:
        self.counters = Counters()

    def generate(self, prompts: Sequence[Messages], params: SamplingParams,
                 assistant_prefix: str | Sequence[str] = "",
                 progress: Callable[[int], None] | None = None) -> list[list[Generation]]:
        """`assistant_prefix`: text the assistant turn starts with, one for all prompts or one per prompt."""
        raise NotImplementedError

    def choice_probs(self, prompts: Sequence[Messages], assistant_prefix: str,
                     choices: Sequence[str]) -> list[dict[str, float]]:
        raise NotImplementedError


class TransformersBackend(Backend):
    name = "transformers"

    def __init__(self, model_path: str | Path, config: BackendConfig | None = None) -> None:
        super().__init__()
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.config = config or BackendConfig()
        device = self.config.device
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        self.device = device
        self.torch = torch
        self.tokenizer = AutoTokenizer.from_pretrained(str(model_path))
        self.tokenizer.padding_side = "left"
        if self.tokenizer.pad_token is None:
            self.tokenizer.pad_token = self.tokenizer.eos_token
        dtype = getattr(torch, self.config.dtype)
        self.model = AutoModelForCausalLM.from_pretrained(str(model_path), dtype=dtype).to(device).eval()
        self.model.generation_config.pad_token_id = self.tokenizer.pad_token_id

    def render(self, messages: Messages, assistant_prefix: str = "") -> str:
        text = self.tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
        return text + assistant_prefix

    def _batches(self, texts: list[str], per_prompt: int):
        """Yield (indices, encoded batch) with prompts sorted by length to limit padding."""
        lengths = [len(self.tokenizer(t, add_special_tokens=False).input_ids) for t in texts]
        order = sorted(range(len(texts)), key=lambda i: lengths[i])
        step = max(1, self.config.batch_size // max(1, per_prompt))
        for start in range(0, len(order), step):
            idx = order[start:start + step]
            enc = self.tokenizer([texts[i] for i in idx], return_tensors="pt", padding=True,
                                 add_special_tokens=False, truncation=True,
                                 max_length=self.config.max_prompt_tokens)
            yield idx, {k: v.to(self.device) for k, v in enc.items()}

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        torch = self.torch
        prefixes = [assistant_prefix] * len(prompts) if isinstance(assistant_prefix, str) else list(assistant_prefix)
        if len(prefixes) != len(prompts):
            raise ValueError(f"{len(prefixes)} assistant prefixes for {len(prompts)} prompts")
        texts = [self.render(p, pre) for p, pre in zip(prompts, prefixes)]
        results: list[list[Generation]] = [[] for _ in texts]
        greedy = params.temperature <= 0
        n = 1 if greedy else params.n
        for batch_no, (idx, enc) in enumerate(self._batches(texts, n)):
            # one seed per batch, derived from the run seed: reruns reproduce the same samples
            torch.manual_seed(params.seed * 1_000_003 + batch_no)
            kwargs = dict(max_new_tokens=params.max_new_tokens, do_sample=not greedy,
                          num_return_sequences=n)
            if not greedy:
                kwargs.update(temperature=params.temperature, top_p=params.top_p, top_k=params.top_k)
            with torch.inference_mode():
                out = self.model.generate(**enc, **kwargs)
            new = out[:, enc["input_ids"].shape[1]:]
            for row, seq in enumerate(new):
                ids = seq.tolist()
                n_tok = length_until_eos(ids, self._stop_ids())
                text = self.tokenizer.decode(ids[:n_tok], skip_special_tokens=True)
                results[idx[row // n]].append(Generation(text=text, n_tokens=n_tok))
                self.counters.generated_tokens += n_tok
            self.counters.generate_calls += len(idx)
            self.counters.sequences += len(new)
            self.counters.prompt_tokens += int(enc["attention_mask"].sum()) * n
            if progress:
                progress(len(idx))
        if greedy and params.n > 1:  # greedy samples are identical: copy rather than recompute
            results = [r * params.n for r in results]
        return results

    def _stop_ids(self) -> set[int]:
        ids = {self.tokenizer.eos_token_id, self.tokenizer.pad_token_id}
        eos = self.model.generation_config.eos_token_id
        ids.update(eos if isinstance(eos, list) else [eos])
        return {i for i in ids if i is not None}

    def choice_probs(self, prompts, assistant_prefix, choices):
        torch = self.torch
        choice_ids = [self._single_token(c) for c in choices]
        texts = [self.render(p, assistant_prefix) for p in prompts]
        results: list[dict[str, float]] = [{} for _ in texts]
        for idx, enc in self._batches(texts, 1):
            with torch.inference_mode():
                logits = self.model(**enc, logits_to_keep=1).logits[:, -1, :].float()
            logp = torch.log_softmax(logits, dim=-1)[:, choice_ids]
            for row, i in enumerate(idx):
                results[i] = {c: math.exp(float(v)) for c, v in zip(choices, logp[row])}
            self.counters.scored_prompts += len(idx)
            self.counters.prompt_tokens += int(enc["attention_mask"].sum())
        return results

    def _single_token(self, choice: str) -> int:
        ids = self.tokenizer(choice, add_special_tokens=False).input_ids
        if len(ids) != 1:
            raise ValueError(f"verdict choice {choice!r} is {len(ids)} tokens for this tokenizer; choices must be single tokens")
        return ids[0]


def length_until_eos(ids: list[int], stop: set[int]) -> int:
    """Tokens before the first stop token (all of them if none)."""
    for i, t in enumerate(ids):
        if t in stop:
            return i
    return len(ids)


def load_backend(model_path: str | Path, config: BackendConfig | None = None) -> Backend:
    config = config or BackendConfig()
    if config.kind == "transformers":
        return TransformersBackend(model_path, config)
    if config.kind == "vllm":
        raise NotImplementedError("the vLLM backend is a GPU extra not built yet; use kind='transformers'")
    raise ValueError(f"unknown backend kind {config.kind!r} (expected transformers|vllm)")
