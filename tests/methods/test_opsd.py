"""OPSD: the privileged information (PI) each source gives, the teacher context that alone reads it, the
divergence on PI-conditioned logits, and the flow end to end with each PI source."""
import pytest
import torch

from selfimprove.methods.opsd.config import OPSDConfig
from selfimprove.methods.opsd.privileged import PrivilegedContext, privileged_rows, teacher_messages
from selfimprove.training.distill_config import DistillConfig
from selfimprove.training.self_distill import Distiller, TeacherContext
from selfimprove.validation import InputError
from selfimprove.verification.rewards import Reward

SEEDS = [{"seed_id": f"s{i}", "domain": "math", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(9)]
SEEDS[1]["solution"] = "1 + 1 makes two."
ACCEPTED = {"s2": {"seed_id": "s2", "candidate_id": "s2#3", "completion": "2 + 2 = \\boxed{4}"}}


class Anything(Reward):
    source = "test"

    def grade(self, seeds, texts):
        return [len(t) % 2 == 0 for t in texts]


def _by_seed(rows):
    return {r["seed_id"]: r for r in rows}


def test_each_source_gives_its_pi_and_the_rows_record_it():
    gt = _by_seed(privileged_rows(SEEDS, "ground_truth", {}, "opsd_rule", val_size=2))
    assert sorted(s for s, r in gt.items() if r["phase"] == "distill_val") == sorted(
        s for s, r in gt.items() if r["pi_text"] is None) and sum(r["phase"] == "distill_val" for r in gt.values()) == 2
    distilled = [r for r in gt.values() if r["phase"] == "distill"]
    assert all(r["pi_source"] == "ground_truth" and r["pi_hash"] and r["prompt_hash"] for r in distilled)
    for r in distilled:  # the answer, and the worked solution where the seed has one
        seed = next(s for s in SEEDS if s["seed_id"] == r["seed_id"])
        assert seed["answer"] in r["pi_text"] and (("1 + 1 makes two." in r["pi_text"]) == (seed["seed_id"] == "s1"))

    sv = _by_seed(privileged_rows(SEEDS, "self_verified", ACCEPTED, "opsd_rule", val_size=0))
    assert sv["s2"]["phase"] == "distill" and "\\boxed{4}" in sv["s2"]["pi_text"] and sv["s2"]["candidate_id"] == "s2#3"
    assert all(r["phase"] == "no_pi" and r["pi_text"] is None for s, r in sv.items() if s != "s2")

    rule = privileged_rows(SEEDS, "rule", {}, "opsd_rule", val_size=0)
    assert len({r["pi_hash"] for r in rule}) == 1 and "digit" in rule[0]["pi_text"]
    # the held-out-reward seeds come from the gradable ones only
    val = privileged_rows(SEEDS, "rule", {}, "opsd_rule", val_size=3, gradable=lambda s: s["seed_id"] in ("s7", "s8"))
    assert {r["seed_id"] for r in val if r["phase"] == "distill_val"} <= {"s7", "s8"}


def test_opsd_config_refuses_what_cannot_work():
    with pytest.raises(InputError, match="opsd.pi"):
        OPSDConfig(pi="hint")
    with pytest.raises(InputError, match="opsd.reward"):
        OPSDConfig(pi="ground_truth", reward="self_verified")
    assert OPSDConfig(pi="rule").reward_source == "self_verified" and OPSDConfig().reward_source == "ground_truth"
    assert OPSDConfig().distill.divergence == "jsd" and OPSDConfig(distill={"steps": 2}).distill.divergence == "jsd"


def _record_inputs(model, into: list):
    """Every input_ids the model is run on (forward and generate), decoded later."""
    forward, generate = model.forward, model.generate

    def seen_forward(*args, **kwargs):
        into.append(kwargs.get("input_ids", args[0] if args else None))
        return forward(*args, **kwargs)

    def seen_generate(*args, **kwargs):
        into.append(kwargs["input_ids"])
        return generate(*args, **kwargs)

    model.forward, model.generate = seen_forward, seen_generate


@pytest.mark.parametrize("source", ["ground_truth", "self_verified", "rule"])
def test_the_student_never_reads_the_pi_and_the_teacher_always_does(tiny_model, source):
    rows = privileged_rows(SEEDS, source, ACCEPTED, "opsd_rule", val_size=0)
    seeds = [s for s, r in zip(SEEDS, rows) if r["phase"] == "distill"][:4]
    d = Distiller(tiny_model, DistillConfig(batch_size=4, max_new_tokens=6, top_k=16), "sample_math",
                  PrivilegedContext(rows), device="cpu")
    student_inputs, teacher_inputs = [], []
    _record_inputs(d.student, student_inputs)
    _record_inputs(d.teacher, teacher_inputs)
    metrics, samples = d.step(seeds, Anything(), seed=1)
    assert metrics["loss_tokens"] == sum(s["n_tokens"] for s in samples) > 0  # every rollout trained on
    decode = lambda batch: [d.tokenizer.decode(row, skip_special_tokens=True) for row in batch.tolist()]  # noqa: E731
    students = [t for batch in student_inputs for t in decode(batch)]
    teachers = [t for batch in teacher_inputs for t in decode(batch)]
    pis = {r["seed_id"]: r["pi_text"] for r in rows if r["pi_text"]}
    assert students and teachers
    for text in students:  # rollouts and the student's forward: the question, never its PI or the reference header
        assert "Reference for you alone" not in text and not any(pi in text for pi in pis.values())
    for seed, text in zip(seeds, teachers):
        assert pis[seed["seed_id"]] in text and seed["question"] in text
    assert {(s["pi_source"], s["pi_hash"]) for s in samples} == {(source, r["pi_hash"]) for r in rows
                                                                 if r["seed_id"] in {x["seed_id"] for x in seeds}}


class SameAsStudent(TeacherContext):
    """A teacher that reads exactly what the student reads: no privileged information at all."""

    def sequence(self, d, seed, prompt, y, correct):
        return prompt + y


def test_the_divergence_is_taken_on_the_pi_conditioned_logits(tiny_model):
    from selfimprove.training.divergence import divergence

    rows = privileged_rows(SEEDS, "ground_truth", {}, "opsd_rule", val_size=0)
    context = PrivilegedContext(rows)
    d = Distiller(tiny_model, DistillConfig(top_k=16, learning_rate=3e-3), "sample_math", context, device="cpu")
    seed = SEEDS[1]
    prompt, y = d.prompt_ids(seed["question"]), d.text_ids("it is 2") + [d.eos]
    student, teacher, s_pos, t_pos = d.contexts(seed, prompt, y, True)
    assert student == prompt + y and [student[p + 1] for p in s_pos] == y == [teacher[p + 1] for p in t_pos]
    assert teacher[:-len(y)] == d.chat_ids(teacher_messages(seed["question"], context.pi["s1"]["pi_text"], "sample_math"))
    with torch.no_grad():  # the teacher's logits at y's positions after chat(x + PI), by hand
        direct = d.teacher(input_ids=torch.tensor([teacher])).logits[0, t_pos].float()
        used = d._logits_at(d.teacher, [teacher], [t_pos])
        s_logits = d._logits_at(d.student, [student], [s_pos])
    assert torch.allclose(direct, used, atol=5e-2)  # bf16 autocast on one side
    with_pi = float(divergence(s_logits, used, "jsd", 16).mean())

    same = Distiller(tiny_model, DistillConfig(top_k=16), "sample_math", SameAsStudent(), device="cpu")
    loss, _ = same.update([seed], [prompt], [y], [True])
    # without PI there is nothing to learn (the teacher is the student); the PI moves the teacher's distributions
    assert float(loss.abs().max()) < 1e-3 * with_pi, (float(loss.abs().max()), with_pi)

    with torch.no_grad():  # a teacher far from the student (random weights barely react to the PI): updates on
        for p in d.teacher.parameters():  # fixed rollouts must close the gap to its PI-conditioned distributions
            p.add_(0.5 * torch.randn_like(p))
    seeds = [s for s, r in zip(SEEDS, rows) if r["phase"] == "distill"][:4]
    prompts = [d.prompt_ids(s["question"]) for s in seeds]
    responses = d.rollout(prompts, greedy=False, seed=3)
    losses = [float(d.update(seeds, prompts, responses, [None] * 4)[0].mean()) for _ in range(12)]
    assert losses[-1] < 0.7 * losses[0] and losses == sorted(losses, reverse=True), losses


def opsd_overrides(model_path, **opsd):
    from tests.tiny_model import tiny_overrides

    return {**tiny_overrides(model_path), "seeds": {"size": 12},
            "opsd": {"agreement_threshold": 0.0, **opsd,
                     "distill": {"steps": 3, "batch_size": 2, "max_new_tokens": 8, "eval_every": 1, "val_size": 2,
                                 "top_k": 16}}}


def test_opsd_flow_with_each_pi_source(tiny_model, lake, prefect_harness, capsys):
    from selfimprove.flows.cli import main
    from selfimprove.flows.opsd import opsd
    from selfimprove.warehouse.views import query

    runs = {"ground_truth": opsd(lake=str(lake.root), overrides=opsd_overrides(tiny_model))["run_id"],
            "rule": opsd(lake=str(lake.root), overrides=opsd_overrides(tiny_model), pi="rule")["run_id"]}
    result = opsd(lake=str(lake.root), overrides=opsd_overrides(tiny_model, warm_start=True), pi="self_verified")
    runs["self_verified"] = result["run_id"]
    assert "OPSD seeds: what the teacher read" in result["summary"] and "OPSD: on-policy" in result["summary"]
    for source, run in runs.items():
        q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
        phases = dict(q("SELECT phase, count(*) FROM privileged_info WHERE run_id = RUN GROUP BY 1"))
        assert sum(phases.values()) == 12 and phases["distill_val"] == 2
        # every rollout is of a seed with PI, and names that PI by source and content hash
        assert q("SELECT count(*), count(p.pi_text) FROM distill_samples s JOIN privileged_info p USING (run_id, seed_id, "
                 "pi_hash) WHERE run_id = RUN") == [(6, 6)]
        assert q("SELECT DISTINCT pi_source, teacher FROM distill_log WHERE run_id = RUN") == [(source, "privileged")]
        assert q("SELECT DISTINCT pi_source FROM distill_samples WHERE run_id = RUN") == [(source,)]
        models = {m for (m,) in q("SELECT DISTINCT model FROM eval_metrics WHERE run_id = RUN")}
        assert {"base", "tuned"} <= models and ("sft" in models) == (source == "self_verified")
        judged = lake.read_manifest(run, "judge") is not None
        assert judged == (source == "self_verified")  # only a PI that quotes the cascade's choice judges
    sv = lambda sql: query(lake, sql.replace("RUN", f"'{runs['self_verified']}'"))[1]  # noqa: E731
    # a self_verified PI is the accepted example of its seed, and a seed with none is skipped
    assert sv("SELECT count(*) FROM privileged_info p JOIN train_examples e USING (run_id, seed_id) WHERE run_id = RUN "
              "AND p.phase = 'distill' AND p.candidate_id <> e.candidate_id") == [(0,)]
    (start,), = sv("SELECT base_model FROM checkpoints WHERE run_id = RUN AND method = 'opsd'")
    assert start.endswith("-full")  # the warm start: OPSD starts from the SFT checkpoint
    # a ground-truth PI graded by ground truth samples nothing; the others sample the same candidates (shared)
    assert lake.read_manifest(runs["ground_truth"], "candidates") is None
    assert lake.read_manifest(runs["self_verified"], "candidates")["reused_from"] == runs["rule"]
    assert main(["compare", *runs.values(), "--lake", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert all(f"opsd ({label})" in out for label in ("ground_truth PI", "rule PI", "self_verified PI + SFT")), out[-2500:]


def test_cli_pi_is_opsd_s_and_must_agree_with_the_method(lake, capsys):
    from selfimprove.flows.cli import main

    assert main(["run", "svd", "--pi", "rule", "--lake", str(lake.root)]) == 2
    assert "--pi belongs to `run opsd`" in capsys.readouterr().err
    assert main(["run", "opsd", "--method", "opsd", "--pi", "rule", "--lake", str(lake.root)]) == 2
    assert "method opsd sets opsd.pi to ground_truth, not rule" in capsys.readouterr().err
