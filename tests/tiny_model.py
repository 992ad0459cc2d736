"""A tiny random-weight Llama model with a byte-level BPE tokenizer, built offline in seconds, and the
run overrides that size a flow for it."""
from __future__ import annotations

from pathlib import Path

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['role'] == 'assistant' %}{% generation %}{{ m['content'] }}<|im_end|>{% endgeneration %}"
    "{% else %}{{ m['content'] }}<|im_end|>{% endif %}\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)

CORPUS = [
    "Calculate 12 + 7. The answer is \\boxed{19}.",
    "Solve for x: 3*x = 12. So x = 4 and the result is \\boxed{4}.",
    "Yes No Y N [[Y]] [[N]] question answer verdict correct wrong error",
    "0 1 2 3 4 5 6 7 8 9 + - * / = ( ) { } \\boxed",
    "Write the single question this answer responds to. Reply with the verdict.",
]


def build_tiny_model(folder: str | Path, seed: int = 0, hidden: int = 32, layers: int = 2) -> Path:
    import torch
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    specials = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
    trainer = trainers.BpeTrainer(vocab_size=512, special_tokens=specials,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet())
    tok.train_from_iterator(CORPUS * 20, trainer)
    fast = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
                                   pad_token="<|endoftext|>", unk_token="<|endoftext|>")
    fast.chat_template = CHAT_TEMPLATE
    fast.save_pretrained(folder)
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=len(fast), hidden_size=hidden, intermediate_size=2 * hidden, num_hidden_layers=layers,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=2048,
                         bos_token_id=fast.bos_token_id, eos_token_id=fast.eos_token_id, pad_token_id=fast.pad_token_id,
                         tie_word_embeddings=True)
    LlamaForCausalLM(config).save_pretrained(folder, safe_serialization=True)
    return folder


def tiny_overrides(model_path, gate_judges=False, votes=2):
    judge = lambda s: {"strategy": s, "votes": votes, "max_new_tokens": 8, "gate": gate_judges}  # noqa: E731
    return {
        "model": str(model_path),
        "seeds": {"size": 6},
        "sampling": {"n": 4, "max_new_tokens": 16, "answer_format": "boxed_or_last_number"},
        "cascade": {"stages": [{"strategy": "agreement", "threshold": 0.0}, judge("cycle_consistency"),
                               judge("factuality"), judge("correctness")]},
        "training": {"epochs": 1, "batch_size": 4, "max_length": 64},
        "evaluation": {"source": {"size": 8, "seed": 777}, "max_new_tokens": 16},
        "backend": {"dtype": "float32", "batch_size": 16},
    }
