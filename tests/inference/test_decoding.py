"""The transformers engine's sampler and answer stop: the same distribution as transformers' own chain, reproducible
draws, and sequences that end once their answer is complete, in static and continuous batching alike."""
import math

import pytest
import torch
from transformers.generation.logits_process import TemperatureLogitsWarper, TopKLogitsWarper, TopPLogitsWarper

from selfimprove.inference import decoding
from selfimprove.inference.base import BackendConfig, SamplingParams, backend_identity, load_backend
from selfimprove.scoring import answer_end

ASK = [[{"role": "user", "content": f"What is {a} + {b}?"}] for a, b in ((1, 2), (30, 12), (7, 7))]


@pytest.mark.parametrize("temperature, top_k, top_p", [(0.8, 50, 0.95), (1.3, 20, 0.5), (0.7, 200, 1.0)])
def test_topk_first_keeps_transformers_distribution(temperature, top_k, top_p):
    scores = torch.randn(32, 5000, generator=torch.Generator().manual_seed(top_k)) * 4  # float32: no ties
    warped = scores.clone()
    for warper in (TemperatureLogitsWarper(temperature), TopKLogitsWarper(top_k), TopPLogitsWarper(top_p)):
        warped = warper(None, warped)
    reference = torch.softmax(warped, dim=-1)
    weights, index = decoding.TopKFirst(temperature, top_k, top_p).nucleus(scores)
    ours = torch.zeros_like(reference).scatter_(-1, index, weights)
    ours = ours / ours.sum(-1, keepdim=True)
    assert torch.equal(ours > 0, reference > 0)  # the same nucleus, token for token
    assert torch.allclose(ours, reference, atol=1e-6)


def test_topk_first_draws_one_kept_token_reproducibly():
    scores = torch.randn(64, 3000, generator=torch.Generator().manual_seed(1))
    sampler = decoding.TopKFirst(0.8, 10, 0.9)
    torch.manual_seed(5)
    first = sampler(None, scores)
    torch.manual_seed(5)
    assert torch.equal(first, sampler(None, scores))
    drawn = first.argmax(-1)
    assert torch.all(torch.isfinite(first).sum(-1) == 1) and torch.all(first.max(-1).values == 0)
    weights, index = sampler.nucleus(scores)
    assert all(weights[r][index[r] == drawn[r]].item() > 0 for r in range(64))  # a token of its row's nucleus


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_engine_samples_through_topk_first_and_repeats_per_seed(tiny_model, monkeypatch, batching):
    calls = []

    class Counted(decoding.TopKFirst):
        def __call__(self, input_ids, scores):
            calls.append(len(scores))
            return super().__call__(input_ids, scores)

    monkeypatch.setattr(decoding, "TopKFirst", Counted)
    backend = load_backend(tiny_model, BackendConfig(dtype="float32", batch_size=4, transformers={"batching": batching}))
    params = SamplingParams(n=2, max_new_tokens=8, seed=3)
    first = [[g.text for g in gens] for gens in backend.generate(ASK, params)]
    assert calls, "the engine never called the sampler"
    assert first == [[g.text for g in gens] for gens in backend.generate(ASK, params)]
    assert any(len(set(texts)) > 1 for texts in first)  # samples, not one greedy text


def test_sampler_is_part_of_the_identity(tiny_model):
    base = backend_identity(tiny_model, BackendConfig(dtype="float32"))
    assert backend_identity(tiny_model, BackendConfig(dtype="float32", transformers={"sampler": "reference"})) != base
    with pytest.raises(ValueError, match="sampler must be topk_first or reference"):
        BackendConfig(transformers={"sampler": "fast"})


@pytest.mark.parametrize("batching", ["static", "continuous"])
def test_a_sequence_ends_once_its_answer_is_complete(tiny_model, monkeypatch, batching):
    # a rule met by any first token: every sequence must end right after it, in either batching
    monkeypatch.setitem(answer_end.RULES, "first_token", lambda text, start: len(text) if text else None)
    backend = load_backend(tiny_model, BackendConfig(dtype="float32", batch_size=4, transformers={"batching": batching}))
    for temperature in (0.0, 0.9):
        free = backend.generate(ASK, SamplingParams(n=2, max_new_tokens=12, seed=1, temperature=temperature))
        stopped = backend.generate(ASK, SamplingParams(n=2, max_new_tokens=12, seed=1, temperature=temperature,
                                                       stop="first_token"))
        assert max(g.n_tokens for gens in free for g in gens) > 3
        for gens in stopped:
            for g in gens:
                # a token that decodes to nothing (a special one) does not complete it; the first with text does
                assert g.text and answer_end.answer_end(g.text, "first_token") is not None
                assert g.n_tokens < 12
