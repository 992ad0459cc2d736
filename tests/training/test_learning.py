"""Training learns, and only from what it should: on the tiny model, the SFT rows TRL builds mask every prompt
token and none of the completion; a few steps on one repeated row lower that row's loss, measured by the model
itself before and after; the saved checkpoint's weights differ from its base. The same for the self-distillation
loop: its loss reads the response tokens only, and its steps move the student."""
import pytest
import torch

from selfimprove.inference.models import model_identity
from selfimprove.training.sft import TrainConfig, build_trainer, train

ROW = {"prompt": "Calculate 12 + 7.", "completion": "12 + 7 = 19. The answer is \\boxed{19}."}


def _prompt_ids(tokenizer, prompt: str) -> list[int]:
    return tokenizer.apply_chat_template([{"role": "user", "content": prompt}], add_generation_prompt=True,
                                         tokenize=True, return_dict=False)


def _completion_nll(model_dir, row) -> float:
    """Mean negative log-likelihood of the completion's tokens after the chat prompt, computed by hand."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    tok = AutoTokenizer.from_pretrained(model_dir)
    model = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    prompt = _prompt_ids(tok, row["prompt"])
    full = tok.apply_chat_template([{"role": "user", "content": row["prompt"]},
                                    {"role": "assistant", "content": row["completion"]}], tokenize=True, return_dict=False)
    assert full[:len(prompt)] == prompt
    ids = torch.tensor([full])
    with torch.no_grad():
        logp = torch.log_softmax(model(ids).logits[0, :-1].float(), -1)
    targets = ids[0, 1:]
    per_token = -logp.gather(-1, targets[:, None])[:, 0]
    return float(per_token[len(prompt) - 1:].mean())


@pytest.mark.parametrize("text_rows", [False, True], ids=["chat", "text"])
def test_the_sft_rows_mask_every_prompt_token_and_no_completion_token(tiny_model, tmp_path, text_rows):
    rows = [ROW, {"prompt": "What is 3 * 4? Think first.", "completion": "3 * 4 = 12, \\boxed{12}"}]
    trainer, tok = build_trainer(tiny_model, rows, tmp_path, TrainConfig(batch_size=2, max_length=256))
    if text_rows:  # SD-Zero's rows: the prompt is rendered already and may end inside the assistant turn
        rendered = [{"prompt": tok.decode(_prompt_ids(tok, r["prompt"])) + "So:\n", "completion": r["completion"],
                     "format": "text"} for r in rows]
        trainer, tok = build_trainer(tiny_model, rendered, tmp_path, TrainConfig(batch_size=2, max_length=256))
    batch = trainer.data_collator([trainer.train_dataset[i] for i in range(len(rows))])
    for i, row in enumerate(rows):
        ids, labels = batch["input_ids"][i].tolist(), batch["labels"][i].tolist()
        mask = batch["attention_mask"][i].tolist()
        length = sum(mask)
        prompt = _prompt_ids(tok, row["prompt"]) if not text_rows else tok(rendered[i]["prompt"]).input_ids
        assert ids[:len(prompt)] == prompt
        assert labels[:len(prompt)] == [-100] * len(prompt)  # every prompt token masked
        assert labels[len(prompt):length] == ids[len(prompt):length]  # every completion token in the loss
        assert length > len(prompt) + 3 and all(lab == -100 for lab in labels[length:])  # padding masked
        completion = tok.decode(ids[len(prompt):length])
        assert row["completion"] in completion and completion.rstrip().endswith(tok.eos_token)


@pytest.mark.parametrize("precision", ["fp32", "bf16"])
def test_a_few_steps_on_one_repeated_row_lower_its_loss_and_change_the_weights(tiny_model, tmp_path, precision):
    before = _completion_nll(tiny_model, ROW)
    out = train(tiny_model, [ROW] * 8, tmp_path / "ckpt",
                TrainConfig(epochs=3, batch_size=4, learning_rate=1e-2, warmup_ratio=0.0, lr_scheduler="constant",
                            max_length=128, precision=precision))
    after = _completion_nll(tmp_path / "ckpt", ROW)
    print(f"completion NLL before {before:.3f}, after 6 steps {after:.3f}")
    assert out["steps"] == 6 and len(out["log"]) == 6
    assert after < 0.7 * before, (before, after)  # measured on the tiny model: 5.94 -> 3.61
    assert out["log"][-1]["loss"] < out["log"][0]["loss"]
    assert model_identity(tmp_path / "ckpt") != model_identity(tiny_model)
    # it learned this completion, not text in general
    assert _completion_nll(tmp_path / "ckpt", {**ROW, "completion": "Blue is a colour."}) > after


@pytest.mark.parametrize("cpu_bf16, auto", [(True, "bf16"), (False, "fp32")])
def test_auto_precision_is_bf16_mixed_precision_where_the_cpu_has_bf16_units(tiny_model, tmp_path, monkeypatch,
                                                                             cpu_bf16, auto):
    import torch

    from selfimprove.training import sft

    monkeypatch.setattr(sft, "cpu_has_bf16", lambda: cpu_bf16)
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert sft.resolve_precision("auto") == auto and sft.resolve_precision("fp32") == "fp32"
    trainer, _ = build_trainer(tiny_model, [ROW] * 2, tmp_path, TrainConfig(batch_size=2))
    assert trainer.args.bf16 == (auto == "bf16")
    assert {p.dtype for p in trainer.model.parameters()} == {torch.float32}  # master weights stay fp32
    with pytest.raises(ValueError, match="training.precision must be one of"):
        TrainConfig(precision="fp8")


def test_the_self_distillation_loss_reads_the_response_tokens_only_and_moves_the_student(tiny_model, tmp_path):
    from selfimprove.methods.sdzero.teacher import RevisionContext
    from selfimprove.training.distill_config import DistillConfig
    from selfimprove.training.self_distill import Distiller, distill

    from tests.methods.test_sdzero import SEEDS, EvenLength

    d = Distiller(tiny_model, DistillConfig(top_k=16, learning_rate=3e-3), "sample_math", RevisionContext(), device="cpu")
    prompts = [d.prompt_ids(s["question"]) for s in SEEDS[:2]]
    responses = d.rollout(prompts, greedy=False, seed=3)
    with torch.no_grad():
        for p in d.teacher.parameters():
            p.add_(0.3 * torch.randn_like(p))
    # the gradient of the loss reaches the student's logits at the response positions and nowhere else
    student, _, s_pos, _ = d.contexts(SEEDS[0], prompts[0], responses[0], True)
    seen = {}

    def keep(module, inputs, logits):
        logits.retain_grad()
        seen["logits"] = logits

    hook = d.student.lm_head.register_forward_hook(keep)
    try:
        d.update(SEEDS[:1], prompts[:1], responses[:1], [True])
    finally:
        hook.remove()
    grad = seen["logits"].grad[0]  # (sequence, vocab)
    touched = {i for i in range(grad.shape[0]) if grad[i].abs().sum() > 0}
    first = len(prompts[0]) - 1  # the logits at the prompt's last token predict the response's first
    assert touched == set(range(first, first + len(responses[0]))) == set(s_pos)

    out = distill(tiny_model, SEEDS[:4], SEEDS[4:6], EvenLength(),
                  DistillConfig(steps=3, batch_size=2, max_new_tokens=8, eval_every=3, keep_best=False, top_k=16,
                                learning_rate=1e-2), "sample_math", tmp_path / "student", RevisionContext())
    assert out["saved_step"] == 3 and model_identity(tmp_path / "student") != model_identity(tiny_model)
