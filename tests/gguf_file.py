"""Write a tiny Llama-architecture checkpoint folder as a GGUF file (F32), the way a user's GGUF model arrives:
llama.cpp's tensor names and Q/K row order, the tokenizer in GGUF's metadata (a chat template only if the
folder has one). Also: a GGUF of an architecture transformers cannot load."""
from __future__ import annotations

import json
from pathlib import Path


def _rope_rows(weight, heads: int):
    """llama.cpp stores Q and K with each head's rotary halves interleaved (transformers undoes it on load)."""
    rows, cols = weight.shape
    return weight.reshape(heads, 2, rows // heads // 2, cols).swapaxes(1, 2).reshape(rows, cols)


def write_llama_gguf(folder: str | Path, out: str | Path) -> Path:
    import gguf
    import numpy as np
    from safetensors.numpy import load_file

    folder, out = Path(folder), Path(out)
    config = json.loads((folder / "config.json").read_text())
    tokenizer = json.loads((folder / "tokenizer.json").read_text())
    special = json.loads((folder / "tokenizer_config.json").read_text())
    writer = gguf.GGUFWriter(str(out), "llama")
    writer.add_context_length(config["max_position_embeddings"])
    writer.add_embedding_length(config["hidden_size"])
    writer.add_block_count(config["num_hidden_layers"])
    writer.add_feed_forward_length(config["intermediate_size"])
    writer.add_head_count(config["num_attention_heads"])
    writer.add_head_count_kv(config["num_key_value_heads"])
    writer.add_rope_freq_base(float(config.get("rope_theta") or config.get("rope_parameters", {}).get("rope_theta", 10000.0)))
    writer.add_layer_norm_rms_eps(config["rms_norm_eps"])
    writer.add_vocab_size(config["vocab_size"])
    vocab = sorted(tokenizer["model"]["vocab"].items(), key=lambda kv: kv[1])
    added = {t["content"]: t for t in tokenizer.get("added_tokens", [])}
    writer.add_tokenizer_model("gpt2")
    writer.add_token_list([t for t, _ in vocab])
    writer.add_token_types([gguf.TokenType.CONTROL if t in added else gguf.TokenType.NORMAL for t, _ in vocab])
    merges = tokenizer["model"]["merges"]
    writer.add_token_merges([m if isinstance(m, str) else " ".join(m) for m in merges])
    ids = dict(vocab)
    writer.add_bos_token_id(ids[special["bos_token"]])
    writer.add_eos_token_id(ids[special["eos_token"]])
    writer.add_pad_token_id(ids[special["pad_token"]])
    if special.get("chat_template"):
        writer.add_chat_template(special["chat_template"])
    names = gguf.get_tensor_name_map(gguf.MODEL_ARCH.LLAMA, config["num_hidden_layers"])
    for name, weight in load_file(folder / "model.safetensors").items():
        weight = weight.astype(np.float32)
        if name.endswith("q_proj.weight"):
            weight = _rope_rows(weight, config["num_attention_heads"])
        elif name.endswith("k_proj.weight"):
            weight = _rope_rows(weight, config["num_key_value_heads"])
        writer.add_tensor(names.get_name(name, try_suffixes=(".weight",)), weight)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return out


def write_foreign_gguf(out: str | Path, architecture: str = "rwkv7") -> Path:
    """A small, whole GGUF file that declares an architecture transformers has no GGUF loader for."""
    import gguf
    import numpy as np

    writer = gguf.GGUFWriter(str(out), architecture)
    writer.add_block_count(1)
    writer.add_tensor("token_embd.weight", np.zeros((4, 4), dtype=np.float32))
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_tensors_to_file()
    writer.close()
    return Path(out)
