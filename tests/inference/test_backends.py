"""The Backend seam: the registry, the scripted engine, identity, and memory handed back on close."""
import pytest

from selfimprove.inference.base import (BACKENDS, Backend, BackendConfig, SamplingParams, backend_identity, load_backend,
                                        register_backend)
from selfimprove.inference.scripted import ScriptedBackend

ASK = [[{"role": "user", "content": "What is 12 + 30? Put the final answer in \\boxed{}."}]]


def test_every_engine_implements_the_whole_seam():
    for kind in ("transformers", "scripted"):
        cls = load_backend.__globals__["backend_class"](kind)
        assert issubclass(cls, Backend) and cls.kind == kind and not cls.__abstractmethods__
    with pytest.raises(ValueError, match="unknown backend kind 'nope'"):
        BackendConfig(kind="nope")


def test_scripted_engine_is_deterministic_and_counts_its_work():
    a, b = load_backend("scripted", BackendConfig(kind="scripted")), ScriptedBackend()
    params = SamplingParams(n=4, max_new_tokens=32, seed=3)
    out_a, out_b = a.generate(ASK, params), b.generate(ASK, params)
    assert [g.text for g in out_a[0]] == [g.text for g in out_b[0]]
    assert "\\boxed{42}" in out_a[0][0].text and "\\boxed{43}" in out_a[0][1].text  # right on even, off by one on odd
    assert a.counters.sequences == 4 and a.counters.generated_tokens == sum(g.n_tokens for g in out_a[0])
    probs = a.choice_probs(ASK, "[[", ["Y", "N"])[0]
    assert probs == b.choice_probs(ASK, "[[", ["Y", "N"])[0] and abs(sum(probs.values()) - 1) < 1e-9
    assert a.render(ASK[0], "so far").endswith("<|assistant|>\nso far") and a.count_tokens("a b c") == 3
    a.close()
    with pytest.raises(RuntimeError, match="closed"):
        a.generate(ASK, params)


def test_a_new_engine_is_one_registered_class(tiny_model):
    @register_backend("upper")
    class Upper(ScriptedBackend):
        """Scripted, but shouting: a third-party engine needs nothing but this class."""

        def generate(self, prompts, params, assistant_prefix="", progress=None):
            return [[type(g)(g.text.upper(), g.n_tokens) for g in gens]
                    for gens in super().generate(prompts, params, assistant_prefix, progress)]

    try:
        backend = load_backend(tiny_model, BackendConfig(kind="upper"))
        assert "THE ANSWER IS" in backend.generate(ASK, SamplingParams(n=1))[0][0].text
        assert backend.identity()["kind"] == "upper"
    finally:
        BACKENDS.pop("upper")


def test_identity_names_engine_weights_and_every_setting_that_changes_outputs(tiny_model, tmp_path):
    import shutil

    base = backend_identity(tiny_model, BackendConfig(dtype="float32"))
    assert base["kind"] == "transformers" and base["device"] == "cpu" and len(base["model"]) == 16
    for change in ({"dtype": "bfloat16"}, {"batch_size": 8}, {"transformers": {"batching": "static"}},
                   {"transformers": {"max_prompt_tokens": 512}}, {"kind": "scripted"}):
        assert backend_identity(tiny_model, BackendConfig(**{"dtype": "float32", **change})) != base
    # another engine's section is not read: it does not enter this engine's identity
    for other in ({"openai": {"timeout_s": 5, "base_url": "http://x/v1"}}, {"vllm": {"max_model_len": 64}}):
        assert backend_identity(tiny_model, BackendConfig(**{"dtype": "float32", **other})) == base
    copy = tmp_path / "copy"
    shutil.copytree(tiny_model, copy)
    assert backend_identity(copy, BackendConfig(dtype="float32")) == base  # named by weights, not by path
    loaded = load_backend(tiny_model, BackendConfig(dtype="float32"))
    assert loaded.identity() == base
    loaded.close()


def test_continuous_batching_matches_static_batches(tiny_model):
    """Greedy outputs agree token for token in float32; sampling returns n completions per prompt in order,
    counts like the static path, reports progress per prompt, and leaves the model usable for scoring."""
    prompts = [[{"role": "user", "content": f"Calculate {i} + {3 * i}."}] for i in range(7)]
    engines = {b: load_backend(tiny_model, BackendConfig(dtype="float32", batch_size=4, transformers={"batching": b}))
               for b in ("continuous", "static")}  # 7 prompts > 4 slots: the continuous engine batches continuously
    greedy = {b: e.generate(prompts, SamplingParams(temperature=0, n=2, max_new_tokens=12)) for b, e in engines.items()}
    assert [[g.text for g in r] for r in greedy["continuous"]] == [[g.text for g in r] for r in greedy["static"]]
    done = []
    continuous = engines["continuous"]
    before = continuous.counters.as_dict()
    params = SamplingParams(n=3, temperature=1.0, top_p=1.0, top_k=0, max_new_tokens=12, seed=5)
    sampled = continuous.generate(prompts, params, progress=done.append)
    assert [len(r) for r in sampled] == [3] * 7 and sum(done) == 7
    again = continuous.generate(prompts, params)  # the same seed draws the same samples
    assert [[g.text for g in r] for r in again] == [[g.text for g in r] for r in sampled]
    assert len({g.text for r in sampled for g in r}) > 7  # the n samples of a prompt are drawn apart
    after = continuous.counters.as_dict()
    assert after["sequences"] - before["sequences"] == 42 and after["generate_calls"] - before["generate_calls"] == 14
    assert after["generated_tokens"] - before["generated_tokens"] == 2 * sum(g.n_tokens for r in sampled for g in r)
    assert continuous.model.config._attn_implementation == engines["static"].model.config._attn_implementation
    probs = {b: e.choice_probs(prompts[:2], "[[", ["Y", "N"]) for b, e in engines.items()}
    assert probs["continuous"] == probs["static"]
    assert "continuous batching" in continuous.run_notes()["reproducibility"]
    assert continuous.generate([], params) == []
    for engine in engines.values():
        engine.close()


def _rss_mib() -> float:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * 4096 / 2**20


def test_closing_a_backend_gives_its_memory_back(tmp_path_factory):
    """A ~100 MB model: RSS grows when it loads and returns near its level before the backend was built."""
    from tests.tiny_model import build_tiny_model

    folder = build_tiny_model(tmp_path_factory.mktemp("mid-model"), hidden=512, layers=8)
    warm = load_backend(folder, BackendConfig(dtype="float32"))  # first load pays for imports and caches once
    warm.generate(ASK, SamplingParams(temperature=0, max_new_tokens=4))
    warm.close()
    before = _rss_mib()
    backend = load_backend(folder, BackendConfig(dtype="float32"))
    backend.generate(ASK, SamplingParams(temperature=0, max_new_tokens=4))
    loaded = _rss_mib()
    backend.close()  # the object stays referenced: close() itself must let the weights go
    after = _rss_mib()
    print(f"RSS before {before:.0f} MiB, loaded {loaded:.0f} MiB, after close {after:.0f} MiB")
    assert loaded - before > 60  # the weights were really resident
    assert after - before < 0.2 * (loaded - before)


def test_models_by_name_default_folder_or_cached_hub_id(tiny_model, tmp_path, monkeypatch):
    import shutil

    import huggingface_hub.constants

    from selfimprove.inference.models import resolve

    assert resolve(str(tiny_model)) == tiny_model
    cache = tmp_path / "hub"
    snap = cache / "models--acme--tiny" / "snapshots" / ("a" * 40)
    shutil.copytree(tiny_model, snap)
    (cache / "models--acme--tiny" / "refs").mkdir()
    (cache / "models--acme--tiny" / "refs" / "main").write_text("a" * 40)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(cache))
    assert resolve("acme/tiny") == snap  # the standard cache, offline
    from selfimprove.validation import ModelError

    with pytest.raises(ModelError, match=r"'acme/absent': not in the Hugging Face cache .*huggingface-cli download acme/absent"):
        resolve("acme/absent")
    with pytest.raises(ModelError, match="not 'default', a .gguf file"):
        resolve(str(tmp_path / "nowhere" / "deep" / "x"))


def test_a_setting_that_moved_into_an_engine_section_says_where():
    from selfimprove import config
    from selfimprove.validation import InputError

    with pytest.raises(InputError, match="moved: set backend.openai.base_url") as e:
        config.from_dict({"backend": {"kind": "openai", "base_url": "http://x/v1"}}, "my.yaml")
    assert "my.yaml" in str(e.value)
    with pytest.raises(InputError, match="moved: set backend.transformers.batching"):
        config.from_dict({"backend": {"batching": "static"}})
    assert config.from_dict({"backend": {"openai": {"base_url": "http://x/v1"}}}).backend.openai.base_url == "http://x/v1"
