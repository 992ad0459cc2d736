"""Models by file, prompt formats and verdict tokens: what each tokenizer gets, and one line for what cannot run."""
import json

import pytest

from selfimprove.inference import models, prompt_format
from selfimprove.validation import ModelError
from tests.families import build_family_model
from tests.gguf_file import write_foreign_gguf, write_llama_gguf


@pytest.fixture(scope="module")
def base(tmp_path_factory):
    return build_family_model(tmp_path_factory.mktemp("base"), "base")


def test_a_gguf_file_converts_once_to_the_same_weights(base, tmp_path, monkeypatch):
    import torch

    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))
    gguf = write_llama_gguf(base, tmp_path / "m.gguf")
    path = models.resolve(str(gguf))
    assert path == tmp_path / "cache" / "models" / f"gguf-{models.file_sha256(gguf)[:16]}"
    ids = torch.tensor([[5, 6, 7, 8, 9]])
    original, converted = models.load_causal_lm(base), models.load_causal_lm(path)
    assert torch.equal(original(ids).logits, converted(ids).logits)  # F32 in, F32 out: the same model
    tokenizer = models.load_tokenizer(path, prompt_format=None)
    assert (tokenizer.bos_token, tokenizer.eos_token) == ("<s>", "</s>")  # from the file's metadata, not swapped
    assert json.loads((path / models.SOURCE_FILE).read_text())["architecture"] == "llama"
    assert models.resolve(str(gguf)) == path and models.model_identity(path) == models.model_identity(path)


def test_models_that_cannot_run_get_one_line(base, tmp_path, monkeypatch):
    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))
    gguf = write_llama_gguf(base, tmp_path / "m.gguf")
    cut = tmp_path / "cut.gguf"
    cut.write_bytes(gguf.read_bytes()[: gguf.stat().st_size // 2])
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "empty-folder").mkdir()
    cases = {str(cut): "not a whole GGUF file", str(write_foreign_gguf(tmp_path / "f.gguf")): "architecture 'rwkv7'",
             str(tmp_path / "absent.gguf"): "no such GGUF file", str(tmp_path / "notes.txt"): "not a .gguf model",
             str(tmp_path / "empty-folder"): "a folder without config.json"}
    for model, reason in cases.items():
        with pytest.raises(ModelError, match=reason) as e:
            models.resolve(model)
        assert "\n" not in str(e.value) and repr(model) in str(e.value)
    assert not (tmp_path / "cache" / "models").exists() or not any(
        p.name.startswith("gguf-") for p in (tmp_path / "cache" / "models").iterdir())  # nothing half-converted
    no_eos = tmp_path / "no-eos"
    import shutil

    shutil.copytree(base, no_eos)
    config = json.loads((no_eos / "tokenizer_config.json").read_text())
    config["eos_token"] = None
    (no_eos / "tokenizer_config.json").write_text(json.dumps(config))
    with pytest.raises(ModelError, match="no EOS token"):
        models.load_tokenizer(no_eos)


def test_plain_format_for_a_base_model_and_its_training_row(base):
    tokenizer = models.load_tokenizer(base)
    assert prompt_format.resolve(base) == "plain" and prompt_format.describe(base)["prompt_format"] == "plain"
    turn = [{"role": "user", "content": "What is 2 + 3?"}]
    assert prompt_format.render(tokenizer, turn) == "Question: What is 2 + 3?\nAnswer:"
    row = prompt_format.render(tokenizer, turn + [{"role": "assistant", "content": " 5"}], add_generation_prompt=False)
    assert row == "Question: What is 2 + 3?\nAnswer: 5</s>\n\n"
    with pytest.raises(ModelError, match="prompt_format chat, but its tokenizer has no chat template"):
        models.load_tokenizer(base, prompt_format="chat")


def test_thinking_switch_and_a_template_without_system_role(tmp_path):
    qwen3 = build_family_model(tmp_path / "q", "qwen3")
    tokenizer = models.load_tokenizer(qwen3)
    turn = [{"role": "user", "content": "hi"}]
    assert prompt_format.render(tokenizer, turn, "on").endswith("<|im_start|>assistant\n")
    assert prompt_format.render(tokenizer, turn, "off").endswith("<think>\n\n</think>\n\n")
    assert prompt_format.thinks(qwen3, "auto") and not prompt_format.thinks(qwen3, "off")
    gemma = build_family_model(tmp_path / "g", "gemma3")
    text = prompt_format.render(models.load_tokenizer(gemma), [{"role": "system", "content": "Be brief."}, *turn])
    assert text == "<bos><start_of_turn>user\nBe brief.\n\nhi<end_of_turn>\n<start_of_turn>model\n"


def test_verdict_tokens_are_read_after_the_prefix(tmp_path):
    gemma = models.load_tokenizer(build_family_model(tmp_path / "g", "gemma3"))
    found = prompt_format.verdict_tokens(gemma, "[[", ["Y", "N"])
    # SentencePiece-style: "Y" alone is "▁Y", another token than the "Y" that follows "[["
    assert gemma.tokenize("Y") == ["▁Y"] and found.pieces == {"Y": ["Y"], "N": ["N"]} and found.rule == "single"
    assert found.ids["Y"] != gemma.convert_tokens_to_ids("▁Y")
    words = prompt_format.verdict_tokens(gemma, "[[", ["Yes", "No"])
    assert words.rule == "first_token" and words.ids == {"Yes": found.ids["Y"], "No": found.ids["N"]}
    with pytest.raises(ValueError, match="share their first token"):
        prompt_format.verdict_tokens(gemma, "[[", ["Yes", "Yeah"])
