"""The Backend seam: every inference engine implements this one interface.

`generate` turns chat prompts into n sampled completions each; `choice_probs` reads the
next-token probabilities of a few fixed choices (e.g. "Y"/"N") after an assistant prefix,
which is how probability judges and constrained verdicts avoid unparseable output;
`render` is the chat template (plus an assistant prefix) as the engine applies it;
`count_tokens` counts tokens as the engine's tokenizer does; `identity()` names everything
that changes outputs (engine kind, weights, dtype, settings), so stage versions tell engines
apart; `close()` frees the model and its memory. Callers never reach into an engine's model
or tokenizer.

Engines register by kind (`BACKENDS`); `load_backend` builds one from a `BackendConfig`.
Built-ins: `transformers` (the default), `vllm` (a `vllm serve` child), `openai` (any
OpenAI-compatible server) and `scripted` (deterministic, no weights: tests and examples). Counters record calls and tokens so stages can report cost and tests can prove
what was (not) recomputed.
"""
from __future__ import annotations

import importlib
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar, Sequence

from selfimprove.inference.prompt_format import FORMATS, render as render_prompt, verdict_tokens
from selfimprove.inference.prompt_format import describe as describe_format
from selfimprove.validation import AtLeast0, AtLeast1, OpenShare, Positive

Messages = list[dict]
Progress = Callable[[int], None]


@dataclass
class SamplingParams:
    """How to decode. temperature 0 means greedy."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 50  # 0 disables top-k truncation; 50 is transformers' own default
    max_new_tokens: int = 64
    n: int = 1  # completions per prompt
    seed: int = 0
    thinking: str = "auto"  # on | off | auto: the template's thinking switch (prompt_format.py)
    stop: str | None = None  # a stop rule (scoring/answer_end.py): engines that can end a sequence at its answer do


@dataclass
class Generation:
    text: str
    n_tokens: int


@dataclass
class ClientSettings:
    """How an engine behind HTTP is asked (openai; vllm, whose engine is a local `vllm serve`).

    Parameters:
        max_concurrency: requests in flight at once.
        timeout_s: per request (vllm: per 4,096 new tokens a request may generate, since one request carries
            `batch_size` prompts x n samples to a local engine).
        max_retries: retries (exponential backoff) on 408, 409, 429, 5xx, timeouts.
    """

    max_concurrency: AtLeast1 = 16
    timeout_s: Positive = 120.0
    max_retries: AtLeast0 = 4


@dataclass
class TransformersSettings:
    """The transformers engine's settings (`backend: {kind: transformers, transformers: {...}}`).

    Parameters:
        batching: `continuous` (paged attention, `generate_batch`: a finished sequence's slot goes to the next one
            at once) or `static` (padded batches through `generate`). They draw different random streams, so it is
            part of the engine's identity.
        max_prompt_tokens: longer prompts are truncated.
        sampler: `topk_first` (top-k, then temperature and top-p within the k, one draw among them) or `reference`
            (transformers' own chain over the whole vocabulary, as lakes before it were sampled). The same
            distribution, another random stream (`inference/decoding.py`): part of the engine's identity.
        attention: continuous batching's attention, `segmented` (within each request: decoding requests as one
            padded batch, prefilling ones one at a time; `inference/paged_attention.py`) or `dense`
            (transformers' `paged|sdpa`: one masked attention over every request of a step, quadratic in the
            requests in flight). The same attention up to float order: part of the engine's identity. It applies on
            CPU only, and models with sliding-window layers always run `dense`; on a GPU transformers picks its
            own (flash paged attention where installed).
    """

    batching: str = "continuous"
    max_prompt_tokens: AtLeast1 = 1024
    sampler: str = "topk_first"
    attention: str = "segmented"

    def __post_init__(self) -> None:
        if self.batching not in ("continuous", "static"):
            raise ValueError(f"backend batching must be continuous or static, got {self.batching!r}")
        if self.sampler not in ("topk_first", "reference"):
            raise ValueError(f"backend sampler must be topk_first or reference, got {self.sampler!r}")
        if self.attention not in ("segmented", "dense"):
            raise ValueError(f"backend attention must be segmented or dense, got {self.attention!r}")


@dataclass
class VLLMSettings(ClientSettings):
    """The vLLM engine's settings (`backend: {kind: vllm, vllm: {...}}`); those that change outputs are
    part of the backend identity.

    Parameters:
        max_model_len: context length the engine reserves KV cache for.
        gpu_memory_utilization: share of GPU memory the engine may take (GPU only).
        tensor_parallel_size: GPUs one model is split over.
        data_parallel_size: engine replicas.
        enable_prefix_caching: share the prefill of prompts with a common prefix (judge votes,
            candidates of one seed); off changes speed, not outputs.
        cpu_kvcache_space_gib: KV-cache space on CPU (VLLM_CPU_KVCACHE_SPACE).
        enforce_eager: no CUDA graphs / compilation; slower, starts faster.
        max_num_seqs: sequences the scheduler keeps in flight.
        startup_timeout_s: how long the engine may take to come up.
    """

    max_model_len: AtLeast1 = 1024
    gpu_memory_utilization: OpenShare = 0.85
    tensor_parallel_size: AtLeast1 = 1
    data_parallel_size: AtLeast1 = 1
    enable_prefix_caching: bool = True
    cpu_kvcache_space_gib: AtLeast1 = 2
    enforce_eager: bool = True
    max_num_seqs: AtLeast1 = 256
    startup_timeout_s: Positive = 600.0


@dataclass
class OpenAISettings(ClientSettings):
    """An OpenAI-compatible server's settings (`backend: {kind: openai, openai: {...}}`).

    Parameters:
        base_url: the server, e.g. http://127.0.0.1:8000/v1.
        model: the served model name (None: the server's only model).
        api_key_env: the environment variable holding the API key (the key itself is never in a config, manifest
            or log).
        tokenizer: a local folder with the served model's tokenizer (for `render`, and the start check).
        send_seed: send a per-request seed (vLLM on CPU refuses them).
        checkpoint_kind: the engine that evaluates checkpoints this run trains: the server does not serve them.
    """

    base_url: str | None = None
    model: str | None = None
    api_key_env: str | None = "OPENAI_API_KEY"
    tokenizer: str | None = None
    send_seed: bool = True
    checkpoint_kind: str = "transformers"


@dataclass
class BackendConfig:
    """Which engine and how it runs: the settings every engine reads, then one section per engine (only the
    active engine's section is read, and only it enters the engine's identity).

    Parameters:
        kind: a registered engine (`BACKENDS`): transformers | vllm | openai | scripted.
        device: auto → cuda if available, else cpu.
        dtype: weights and activations; bfloat16 is ~30 % faster than float32 on this CPU.
        batch_size: sequences per forward batch (transformers); requests per call (vllm).
        prompt_format: auto | chat | plain: the model's chat template, or selfimprove's plain-text format
            for base models (`prompt_format.py`); auto picks chat when the tokenizer has a template.
        transformers: the transformers engine's settings.
        vllm: the vLLM engine's settings.
        openai: an OpenAI-compatible server's settings.
    """

    # settings that moved into an engine's section: a config still naming them is told where they went
    MOVED: ClassVar[dict[str, str]] = {
        **{k: f"transformers.{k}" for k in ("batching", "max_prompt_tokens", "sampler")},
        **{k: f"openai.{k}" for k in ("base_url", "model", "api_key_env", "tokenizer", "send_seed", "checkpoint_kind")},
        **{k: f"openai.{k} (vllm.{k} for vllm)" for k in ("max_concurrency", "timeout_s", "max_retries")}}

    kind: str = "transformers"
    device: str = "auto"
    dtype: str = "bfloat16"
    batch_size: AtLeast1 = 64
    prompt_format: str = "auto"
    transformers: TransformersSettings = field(default_factory=TransformersSettings)
    vllm: VLLMSettings = field(default_factory=VLLMSettings)
    openai: OpenAISettings = field(default_factory=OpenAISettings)

    def __post_init__(self) -> None:
        for name, cls in (("transformers", TransformersSettings), ("vllm", VLLMSettings), ("openai", OpenAISettings)):
            if isinstance(getattr(self, name), dict):
                setattr(self, name, cls(**getattr(self, name)))
        if self.kind not in BACKENDS:
            raise ValueError(f"unknown backend kind {self.kind!r}; known: {sorted(BACKENDS)}")
        if self.dtype not in ("bfloat16", "float16", "float32"):
            raise ValueError(f"backend dtype must be bfloat16, float16 or float32, got {self.dtype!r}")
        if self.batch_size < 1:
            raise ValueError("backend batch_size must be >= 1")
        if self.prompt_format not in FORMATS:
            raise ValueError(f"backend prompt_format must be one of {FORMATS}, got {self.prompt_format!r}")


@dataclass
class Counters:
    generate_calls: int = 0  # prompts sent to generate
    sequences: int = 0  # completions returned
    prompt_tokens: int = 0
    generated_tokens: int = 0
    scored_prompts: int = 0  # prompts sent to choice_probs

    def as_dict(self) -> dict:
        return dict(self.__dict__)


class Backend(ABC):
    """One loaded model behind one engine. Subclasses register with `@register_backend(kind)`."""

    kind: ClassVar[str] = ""
    keep_warm: ClassVar[bool] = False  # slow to start: stages that follow each other share one (tasks.common)
    loads_checkpoints: ClassVar[bool] = True  # False: it answers with a model served elsewhere (openai)

    def __init__(self, model_path: str | Path, config: BackendConfig) -> None:
        self.model_path, self.config = str(model_path), config
        self.counters = Counters()

    @classmethod
    def describe(cls, model_path: str | Path, config: BackendConfig) -> dict:
        """What makes this engine's outputs what they are, known before loading anything."""
        from .models import model_identity

        path = Path(model_path)
        if not (path / "config.json").exists():
            return {"kind": cls.kind, "model": str(model_path), **cls.settings(config)}
        return {"kind": cls.kind, "model": model_identity(path), **cls.settings(config),
                **describe_format(path, config.prompt_format)}

    @classmethod
    def settings(cls, config: BackendConfig) -> dict:
        """The config fields that change this engine's outputs."""
        return {"dtype": config.dtype, "batch_size": config.batch_size}

    @classmethod
    def check(cls, config: BackendConfig) -> None:
        """Raise ValueError with one line when this engine cannot run with `config` (before any run starts)."""

    def identity(self) -> dict:
        """`describe()` of this engine, computed once (a served model is not asked again at the end of a stage)."""
        if getattr(self, "_identity", None) is None:
            self._identity = self.describe(self.model_path, self.config)
        return self._identity

    @abstractmethod
    def generate(self, prompts: Sequence[Messages], params: SamplingParams, assistant_prefix: str | Sequence[str] = "",
                 progress: Progress | None = None) -> list[list[Generation]]:
        """`params.n` completions per prompt. `assistant_prefix`: text the assistant turn starts with
        (the completion continues it), one for all prompts or one per prompt."""

    @abstractmethod
    def choice_probs(self, prompts: Sequence[Messages], assistant_prefix: str,
                     choices: Sequence[str]) -> list[dict[str, float]]:
        """Per prompt, the probability of each choice as the next token after the prefix (a choice of several
        tokens by its first one: `prompt_format.verdict_tokens`), rendered with thinking off."""

    @abstractmethod
    def render(self, messages: Messages, assistant_prefix: str = "", thinking: str = "auto") -> str:
        """The prompt text the engine feeds the model: its prompt format (chat template or plain), the
        generation prompt (with the thinking switch where the template has one), the prefix."""

    @abstractmethod
    def count_tokens(self, text: str) -> int:
        """Tokens in `text` for this engine's tokenizer (no special tokens added)."""

    def run_notes(self) -> dict:
        """What a stage's manifest should know about this engine beyond its identity (start-up, repeatability)."""
        return {}

    def close(self) -> None:
        """Free the model and its memory; the backend is unusable afterwards."""

    def __enter__(self) -> "Backend":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


# calls and tokens of every backend closed in this process, by model path (tests count recomputation with it)
LEDGER: dict[str, Counters] = {}


def record_usage(backend: Backend, spent: dict | None = None) -> None:
    """Add `spent` (default: everything the backend counted) to the process-wide tally of its model."""
    total = LEDGER.setdefault(backend.model_path, Counters())
    for key, value in (spent or backend.counters.as_dict()).items():
        setattr(total, key, getattr(total, key) + value)


def usage(model_path: str | Path) -> Counters:
    """What every backend of `model_path` closed in this process has done, summed."""
    return LEDGER.get(str(model_path), Counters())


class LocalTokenizer:
    """`render`, `count_tokens` and verdict tokens from the checkpoint's own tokenizer (`self.tokenizer`, loaded
    with its prompt format): engines that feed prompts rendered here share one template path, so they see the
    same text."""

    def render(self, messages, assistant_prefix="", thinking="auto"):
        return render_prompt(self.tokenizer, messages, thinking) + assistant_prefix

    def count_tokens(self, text: str) -> int:
        return len(self.tokenizer(text, add_special_tokens=False).input_ids)

    def verdict_ids(self, assistant_prefix: str, choices) -> list[int]:
        """The token each choice is scored by after the prefix (cached per prefix and choices)."""
        cache = self.__dict__.setdefault("_verdict_ids", {})
        key = (assistant_prefix, tuple(choices))
        if key not in cache:
            found = verdict_tokens(self.tokenizer, assistant_prefix, list(choices), f"the tokenizer of {self.model_path}")
            cache[key] = [found.ids[c] for c in choices]
        return cache[key]


def prefixes_for(prompts: Sequence, assistant_prefix: str | Sequence[str]) -> list[str]:
    """One assistant prefix per prompt."""
    prefixes = [assistant_prefix] * len(prompts) if isinstance(assistant_prefix, str) else list(assistant_prefix)
    if len(prefixes) != len(prompts):
        raise ValueError(f"{len(prefixes)} assistant prefixes for {len(prompts)} prompts")
    return prefixes


def length_until_eos(ids: list[int], stop: set[int]) -> int:
    """Tokens before the first stop token (all of them if none)."""
    for i, t in enumerate(ids):
        if t in stop:
            return i
    return len(ids)


# kind → "module:Class"; imported on first use so a CPU-only install never imports another engine's stack
BACKENDS: dict[str, str | type[Backend]] = {
    "transformers": "selfimprove.inference.transformers_backend:TransformersBackend",
    "scripted": "selfimprove.inference.scripted:ScriptedBackend",
    "vllm": "selfimprove.inference.vllm_backend:VLLMBackend",
    "openai": "selfimprove.inference.openai_backend:OpenAIBackend",
}


def register_backend(kind: str):
    """Class decorator: make an engine available as `backend.kind: <kind>`."""
    def deco(cls: type[Backend]) -> type[Backend]:
        cls.kind = kind
        BACKENDS[kind] = cls
        return cls
    return deco


def backend_class(kind: str) -> type[Backend]:
    entry = BACKENDS.get(kind)
    if entry is None:
        raise ValueError(f"unknown backend kind {kind!r}; known: {sorted(BACKENDS)}")
    if isinstance(entry, str):
        module, _, name = entry.partition(":")
        entry = getattr(importlib.import_module(module), name)
        BACKENDS[kind] = entry
    return entry


def for_checkpoint(config: BackendConfig) -> BackendConfig:
    """The engine config for a checkpoint this run trained: the same, unless the engine answers with a
    model served elsewhere, which cannot load it."""
    from dataclasses import replace

    return config if backend_class(config.kind).loads_checkpoints else replace(config, kind=config.openai.checkpoint_kind)


def load_backend(model_path: str | Path, config: BackendConfig | None = None) -> Backend:
    config = config or BackendConfig()
    return backend_class(config.kind)(model_path, config)


def backend_identity(model_path: str | Path, config: BackendConfig) -> dict:
    """`identity()` of the backend `load_backend` would build, without building it."""
    return backend_class(config.kind).describe(model_path, config)
