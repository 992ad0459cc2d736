"""Segmented paged attention: the same attention as transformers' dense `paged|sdpa`, request by request."""
import pytest

from selfimprove.inference import transformers_backend
from selfimprove.inference.base import BackendConfig, SamplingParams, backend_identity, load_backend

# prompts of several lengths, more than one batch of them, so steps mix prefill chunks and decodes
ASK = [[{"role": "user", "content": "word " * (3 + 7 * i)}] for i in range(7)]


def _texts(backend, attention, params):
    backend.config.transformers.attention = attention
    return [[g.text for g in gens] for gens in backend.generate(ASK, params)]


@pytest.mark.parametrize("temperature", [0.7, 1.0])
def test_segmented_attention_gives_the_dense_outputs_in_float32(tiny_model, monkeypatch, temperature):
    # small blocks and steps: prompts share blocks, prefills run in chunks over a cached part
    monkeypatch.setattr(transformers_backend, "BLOCK_TOKENS", 4)
    monkeypatch.setattr(transformers_backend, "STEP_TOKENS", 24)
    backend = load_backend(tiny_model, BackendConfig(dtype="float32", batch_size=6))
    params = SamplingParams(n=2, max_new_tokens=16, seed=5, temperature=temperature)
    dense = _texts(backend, "dense", params)
    assert _texts(backend, "segmented", params) == dense
    assert len({t for texts in dense for t in texts}) > 3  # not one text everywhere
    assert backend.model.config._attn_implementation == "sdpa"  # the model leaves batching as it came in


def test_attention_is_part_of_the_identity(tiny_model):
    base = backend_identity(tiny_model, BackendConfig(dtype="float32"))
    assert backend_identity(tiny_model, BackendConfig(dtype="float32", transformers={"attention": "dense"})) != base
    with pytest.raises(ValueError, match="attention must be segmented or dense"):
        BackendConfig(transformers={"attention": "flash"})


def test_segmented_applies_on_cpu_to_models_without_sliding_window_layers():
    from transformers import Gemma2Config, LlamaConfig, MistralConfig

    from selfimprove.inference import paged_attention

    assert paged_attention.applies(LlamaConfig(), "cpu")
    assert not paged_attention.applies(LlamaConfig(), "cuda:0")  # transformers' flash paged attention there
    assert not paged_attention.applies(Gemma2Config(), "cpu")  # alternating sliding and full layers
    assert not paged_attention.applies(MistralConfig(sliding_window=4096), "cpu")
