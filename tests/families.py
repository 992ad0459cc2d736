"""Tiny random-weight models of the families people run, built offline in seconds: each with its family's
architecture class, its own tokenizer (byte-level BPE, or SentencePiece-style for Gemma) and special tokens,
and a chat template shaped like its family's (written here, not copied): Llama 3's headers, Qwen2's ChatML with a default system turn, Qwen3's
ChatML with a thinking switch, Gemma 3's turns with no system role, and a base model with no template at all.

The Qwen3 model is trained for a few seconds to answer `<think>…</think>` then a boxed number, so a thinking
run has closed thoughts to judge and train on.
"""
from __future__ import annotations

from pathlib import Path

from tests.tiny_model import CORPUS

LLAMA3 = (
    "{{ bos_token }}{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n"
    "{{ m['content'] | trim }}<|eot_id|>{% endfor %}"
    "{% if add_generation_prompt %}<|start_header_id|>assistant<|end_header_id|>\n\n{% endif %}"
)
QWEN2 = (
    "{% if messages[0]['role'] != 'system' %}<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n{% endif %}"
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)
# an assistant turn without a thought gets an empty one, as the generation prompt with thinking off has
QWEN3 = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' and '</think>' not in m['content'] %}<think>\n\n</think>\n\n{% endif %}"
    "{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n"
    "{% if enable_thinking is defined and enable_thinking is false %}<think>\n\n</think>\n\n{% endif %}{% endif %}"
)
GEMMA3 = (
    "{{ bos_token }}{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
    "<start_of_turn>{{ 'model' if m['role'] == 'assistant' else m['role'] }}\n{{ m['content'] | trim }}<end_of_turn>\n"
    "{% endfor %}{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)

# family → (architecture, specials, bos, eos, pad, template, added non-special tokens)
FAMILIES = {
    "llama": ("llama", ["<|begin_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>", "<|end_of_text|>"],
              "<|begin_of_text|>", "<|eot_id|>", "<|end_of_text|>", LLAMA3, []),
    "qwen2": ("qwen2", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>", QWEN2, []),
    "qwen3": ("qwen3", ["<|endoftext|>", "<|im_start|>", "<|im_end|>"], None, "<|im_end|>", "<|endoftext|>", QWEN3,
              ["<think>", "</think>"]),
    "gemma3": ("gemma3", ["<pad>", "<eos>", "<bos>", "<start_of_turn>", "<end_of_turn>"], "<bos>", "<end_of_turn>", "<pad>",
               GEMMA3, []),
    "base": ("llama", ["<s>", "</s>", "<unk>"], "<s>", "</s>", "<unk>", None, []),
}


def build_family_model(folder: str | Path, family: str, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    import torch
    from tokenizers import AddedToken, Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import AutoModelForCausalLM, PreTrainedTokenizerFast

    arch, specials, bos, eos, pad, template, added = FAMILIES[family]
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    if family == "gemma3":  # SentencePiece-style: a word carries its leading space as "▁", so "Y" alone is "▁Y"
        tok.pre_tokenizer, tok.decoder = pre_tokenizers.Metaspace(), decoders.Metaspace()
        alphabet = [chr(c) for c in range(32, 127)] + ["\n", "▁"]
    else:
        tok.pre_tokenizer, tok.decoder = pre_tokenizers.ByteLevel(add_prefix_space=False), decoders.ByteLevel()
        alphabet = pre_tokenizers.ByteLevel.alphabet()
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=specials, initial_alphabet=alphabet)
    tok.train_from_iterator(CORPUS * 20, trainer)
    if added:  # like Qwen3's <think>: one token each, kept when special tokens are skipped in decoding
        tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in added])
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=bos, eos_token=eos, pad_token=pad, unk_token=pad)
    if template:
        fast.chat_template = template
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(_config(arch, fast, hidden, layers))
    if family == "qwen3":
        _teach_thinking(model, fast)
    model.save_pretrained(folder, safe_serialization=True)
    return folder


def _config(arch: str, tokenizer, hidden: int, layers: int):
    from transformers import AutoConfig

    ids = dict(bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    kwargs = dict(vocab_size=len(tokenizer), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                  num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048, tie_word_embeddings=True, **ids)
    if arch == "gemma3":
        return AutoConfig.for_model("gemma3_text", head_dim=8, sliding_window=512, **kwargs)
    if arch == "qwen3":
        kwargs["head_dim"] = hidden // 4
    return AutoConfig.for_model(arch, **kwargs)


THOUGHT = "<think>\nadd the numbers\n</think>\n\nThe answer is \\boxed{7}."


def _teach_thinking(model, tokenizer, steps: int = 120) -> None:
    """A few seconds of training on one pattern: after any question, a closed thought, then a boxed answer."""
    import torch

    questions = ["Calculate 3 + 4.", "Solve 2 * 5.", "What is 9 - 2?", "Compute 12 + 7."]
    rows = [tokenizer.apply_chat_template([{"role": "user", "content": q}], add_generation_prompt=True, tokenize=False)
            + THOUGHT + tokenizer.eos_token for q in questions]
    batch = tokenizer(rows, return_tensors="pt", padding=True, add_special_tokens=False)
    labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-2)
    model.train()
    for _ in range(steps):
        loss = model(**batch, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()


def family_overrides(model_path, thinking: str = "auto") -> dict:
    """The tiny SVD flow, lean: 4 seeds x 2 candidates, advisory probability judges, 1 epoch, 4 held-out items."""
    judge = lambda s: {"strategy": s, "votes": 1, "scoring": "probability", "gate": False}  # noqa: E731
    return {
        "model": str(model_path),
        "seeds": {"size": 4},
        "sampling": {"n": 2, "max_new_tokens": 32, "answer_format": "boxed_or_last_number", "thinking": thinking},
        "cascade": {"stages": [{"strategy": "agreement", "threshold": 0.0}, judge("factuality"), judge("correctness")]},
        "training": {"epochs": 1, "batch_size": 4, "max_length": 96},
        "evaluation": {"source": {"size": 4, "seed": 777}, "max_new_tokens": 32},
        "backend": {"dtype": "float32", "batch_size": 16},
    }
