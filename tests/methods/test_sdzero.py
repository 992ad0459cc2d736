"""SD-Zero on the tiny model: rewards, splits, Phase-1 revision tuples and SRT rows, Phase-2 steps and syncs."""
import pytest
import torch

from selfimprove.inference.base import BackendConfig
from selfimprove.inference.transformers_backend import TransformersBackend
from selfimprove.verification.rewards import GroundTruthReward, Reward, SelfVerifiedReward
from selfimprove.methods.sdzero.config import SDZeroConfig, control_phrase, phases
from selfimprove.training.distill_config import DistillConfig


class EvenLength(Reward):
    """A deterministic stand-in grader for a random-weight model: both grades occur, and tests know which."""

    source = "even_length"

    def grade(self, seeds, texts):
        return [len(t) % 2 == 0 for t in texts]


SEEDS = [{"seed_id": f"s{i}", "domain": "math", "question": f"What is {i} + {i}?", "answer": str(2 * i)} for i in range(8)]


def test_ground_truth_reward_uses_the_scorer():
    r = GroundTruthReward("math")
    assert r.grade(SEEDS[:3], ["\\boxed{0}", "so 3", "I do not know"]) == [True, False, False]
    with pytest.raises(ValueError, match="seed 'x' has none"):
        r.grade([{"seed_id": "x", "domain": "math", "question": "?", "answer": None}], ["1"])


def test_self_verified_reward_is_the_agreement_label_or_nothing():
    cands = [{"candidate_id": f"{s}#{k}", "seed_id": s, "sample_index": k, "final_answer": a}
             for s, answers in {"s1": ["2", "2.0", "3", "2"], "s2": ["1", "2", "3", None]}.items()
             for k, a in enumerate(answers)]
    r = SelfVerifiedReward.from_candidates(SEEDS[1:3], cands, threshold=0.5)
    assert r.labels == {"s1": "2"}  # s2 has no answer with half the votes: no label
    assert r.grade(SEEDS[1:3] + SEEDS[1:2], ["it is \\boxed{2}", "\\boxed{2}", "7"]) == [True, None, False]


def split(seeds, distill_share, val_size=0, gradable=None):
    """The seeds of each phase, in their original order."""
    of = phases(seeds, distill_share, val_size, gradable)
    return {name: [s for s in seeds if of[s["seed_id"]] == name] for name in ("revise", "distill", "distill_val", "distill_ungraded")}


def test_phase_split_is_disjoint_stable_and_order_free():
    seeds = [{"seed_id": f"q{i}"} for i in range(200)]
    parts = split(seeds, 0.5, val_size=10)
    ids = {k: {s["seed_id"] for s in v} for k, v in parts.items()}
    assert sum(map(len, ids.values())) == 200 and len(set().union(*ids.values())) == 200  # disjoint, complete
    assert 70 < len(ids["distill"]) + 10 < 130 and len(ids["distill_val"]) == 10 and not ids["distill_ungraded"]
    again = split(list(reversed(seeds)), 0.5, val_size=10)
    assert {k: {s["seed_id"] for s in v} for k, v in again.items()} == ids
    # ungradable Phase-2 seeds are set apart; the held-out share is at most a third of the gradable ones
    odd = split(seeds, 0.5, val_size=50, gradable=lambda s: int(s["seed_id"][1:]) % 2 == 0)
    assert all(int(s["seed_id"][1:]) % 2 for s in odd["distill_ungraded"])
    assert {s["seed_id"] for s in odd["revise"]} == ids["revise"]  # Phase 1 does not depend on grading
    assert len(odd["distill_val"]) == (len(odd["distill"]) + len(odd["distill_val"])) // 3


def test_truncated_support_is_refused_for_training():
    with pytest.raises(ValueError, match="collapses training"):
        DistillConfig(support="truncated")


def test_phase1_revises_inside_the_assistant_turn_and_keeps_correct_revisions(tiny_model):
    from selfimprove.methods.sdzero.revision import revise, training_rows
    from selfimprove.generation.sampling import SamplingConfig, sample

    backend = TransformersBackend(tiny_model, BackendConfig(dtype="float32"))
    cands = sample(backend, SEEDS, SamplingConfig(n=3, max_new_tokens=12))
    rows = revise(backend, SEEDS, cands, EvenLength(), SDZeroConfig(init_per_seed=2, revise_max_new_tokens=12),
                  "sample_math", "boxed_or_last_number")
    assert len(rows) == 16 and {r["candidate_id"] for r in rows} == {f"s{i}#{k}" for i in range(8) for k in (0, 1)}
    for r in rows:
        assert r["init_reward"] == (len(r["init_text"]) % 2 == 0)
        assert r["control"] == ("correct" if r["init_reward"] else "wrong")
        assert r["kept"] == r["revised_reward"] == (len(r["revised_text"]) % 2 == 0)
        assert r["reward_source"] == "even_length"
    assert backend.counters.generate_calls == 8 + 16  # sampling, then one revision per tuple
    # the revision prompt is the chat prompt with y_init and P_r already inside the assistant turn
    prompt = backend.render([{"role": "user", "content": "q"}], "Y" + control_phrase(False))
    assert prompt.endswith("<|im_start|>assistant\nY" + control_phrase(False))

    train = training_rows(rows, SEEDS, backend.render, "sample_math")
    kept = [r for r in rows if r["kept"]]
    assert len(train) == 2 * len(kept)
    for r, rev, gen in zip(kept, train[::2], train[1::2]):
        chat = backend.render([{"role": "user", "content": f"What is {r['seed_id'][1:]} + {r['seed_id'][1:]}?\n"
                                                          "Give the result as \\boxed{number}."}])
        phrase = control_phrase(r["init_reward"])
        assert (rev["loss"], rev["prompt"], rev["completion"]) == ("revision", chat + r["init_text"] + phrase, r["revised_text"])
        assert (gen["loss"], gen["prompt"], gen["completion"]) == ("generation", chat, r["init_text"] + phrase + r["revised_text"])


def test_srt_trains_on_text_rows_with_loss_on_the_completion_only(tiny_model, tmp_path):
    from selfimprove.training.sft import TrainConfig, train

    rows = [{"prompt": "<|im_start|>user\nq<|im_end|>\n<|im_start|>assistant\n1 + 1" + control_phrase(True),
             "completion": "\\boxed{2}", "format": "text"}] * 4
    out = train(tiny_model, rows, tmp_path / "srt", TrainConfig(epochs=1, batch_size=4, max_length=256))
    assert out["steps"] == 1 and (tmp_path / "srt" / "model.safetensors").exists()
    with pytest.raises(ValueError, match="mix chat and text"):
        train(tiny_model, rows + [{"prompt": "q", "completion": "a"}], tmp_path / "x", TrainConfig())


def test_phase2_contexts_align_the_second_copy_with_the_student(tiny_model):
    from selfimprove.methods.sdzero.teacher import RevisionContext
    from selfimprove.training.self_distill import Distiller

    d = Distiller(tiny_model, DistillConfig(), "sample_math", RevisionContext(), device="cpu")
    prompt, y = d.prompt_ids("What is 1 + 1?"), d.tokenizer("it is 2", add_special_tokens=False).input_ids + [d.eos]
    student, teacher, s_pos, t_pos = d.contexts(SEEDS[0], prompt, y, correct=False)
    assert [student[p + 1] for p in s_pos] == y == [teacher[p + 1] for p in t_pos]
    text = d.tokenizer.decode(teacher)
    assert text.count("it is 2") == 2 and control_phrase(False).strip() in text
    assert teacher.count(d.eos) == text.count("<|im_end|>")  # the first copy of y does not end the turn


def test_phase2_steps_lower_the_divergence_and_sync_copies_the_student(tiny_model, tmp_path):
    from selfimprove.methods.sdzero.teacher import RevisionContext
    from selfimprove.training.self_distill import Distiller, distill

    cfg = DistillConfig(batch_size=4, learning_rate=3e-3, max_new_tokens=12, top_k=16)
    d = Distiller(tiny_model, cfg, "sample_math", RevisionContext(), device="cpu")
    metrics, samples = d.step(SEEDS[:4], EvenLength(), seed=1)  # a whole on-policy step: rollout, grade, update
    assert metrics["graded"] == 4 and metrics["loss_tokens"] == sum(s["n_tokens"] for s in samples)
    assert all(s["divergence"] is not None and s["control"] in ("correct", "wrong") for s in samples)
    with torch.no_grad():  # a teacher that disagrees, and fixed responses: updates must close the gap
        for p in d.teacher.parameters():
            p.add_(0.5 * torch.randn_like(p))
    prompts = [d.prompt_ids(s["question"]) for s in SEEDS[:4]]
    responses = d.rollout(prompts, greedy=False, seed=3)
    teacher_before = [p.detach().clone() for p in d.teacher.parameters()]
    student_before = [p.detach().clone() for p in d.student.parameters()]
    losses = [float(d.update(SEEDS[:4], prompts, responses, [True, False, True, False])[0].mean()) for _ in range(15)]
    assert losses[-1] < 0.5 * losses[0], losses
    # fifteen updates moved the student and left the teacher exactly where it was
    assert all(torch.equal(a, b) for a, b in zip(teacher_before, d.teacher.parameters()))
    assert not all(torch.equal(a, b) for a, b in zip(student_before, d.student.parameters()))
    assert all(p.grad is None or not p.grad.any() for p in d.teacher.parameters())
    d.sync()
    assert all(torch.equal(a, b) for a, b in zip(d.teacher.parameters(), d.student.parameters()))

    out = distill(tiny_model, SEEDS[:6], SEEDS[6:], EvenLength(),
                  DistillConfig(steps=4, batch_size=2, max_new_tokens=8, sync_every=2, eval_every=1, patience=100),
                  "sample_math", tmp_path / "student", RevisionContext())
    assert [s["step"] for s in out["steps"]] == [0, 1, 2, 3, 4]
    assert [(s["step"], s["reason"], s["source_step"]) for s in out["syncs"]] == [(2, "every_n", 2), (4, "every_n", 4)]
    assert [s["teacher_syncs"] for s in out["steps"]] == [0, 0, 1, 1, 2]
    assert len(out["samples"]) == 8 and (tmp_path / "student" / "model.safetensors").exists()


class FadingReward(Reward):
    """Right on every call to the held-out seeds until it has been asked `good_calls` times, then wrong:
    a student that only gets worse after the start."""

    source = "fading"

    def __init__(self, val_ids, good_calls):
        self.val_ids, self.left = val_ids, good_calls

    def grade(self, seeds, texts):
        if seeds and seeds[0]["seed_id"] in self.val_ids:
            self.left -= 1
            return [self.left >= 0] * len(seeds)
        return [True] * len(seeds)


def test_plateau_sync_and_the_saved_model_use_the_best_student(tiny_model, tmp_path):
    from safetensors.torch import load_file

    from selfimprove.methods.sdzero.teacher import RevisionContext
    from selfimprove.training.self_distill import distill

    out = distill(tiny_model, SEEDS[:6], SEEDS[6:], FadingReward({"s6"}, good_calls=1),
                  DistillConfig(steps=4, batch_size=2, max_new_tokens=8, eval_every=2, patience=1, learning_rate=1e-2),
                  "sample_math", tmp_path / "student", RevisionContext())
    assert [s["val_reward"] for s in out["steps"]] == [1.0, None, 0.0, None, 0.0]
    # both checks regress: each plateau sync puts the step-0 student back before copying it to the teacher
    assert [(s["step"], s["reason"], s["source_step"]) for s in out["syncs"]] == [(2, "plateau", 0), (4, "plateau", 0)]
    assert out["saved_step"] == 0 and [s["step"] for s in out["steps"] if s["saved"]] == [0]
    start, saved = load_file(tiny_model / "model.safetensors"), load_file(tmp_path / "student" / "model.safetensors")
    assert all(torch.equal(start[k], saved[k]) for k in start)  # training moved it, and keep_best put it back

    out = distill(tiny_model, SEEDS[:6], SEEDS[6:], FadingReward({"s6"}, good_calls=1),
                  DistillConfig(steps=2, batch_size=2, max_new_tokens=8, eval_every=2, keep_best=False, learning_rate=1e-2),
                  "sample_math", tmp_path / "last", RevisionContext())
    assert out["saved_step"] == 2 and out["syncs"][0]["source_step"] == 2
    last = load_file(tmp_path / "last" / "model.safetensors")
    assert not all(torch.equal(start[k], last[k]) for k in start)


def sdzero_overrides(model_path):
    from tests.tiny_model import tiny_overrides

    return {**tiny_overrides(model_path), "seeds": {"size": 12},
            "sdzero": {"agreement_threshold": 0.0, "revise_max_new_tokens": 12,
                       "distill": {"steps": 3, "batch_size": 2, "max_new_tokens": 8, "eval_every": 1, "val_size": 2,
                                   "sync_every": 2, "sync_on_plateau": False, "top_k": 16}}}


def test_sdzero_flow_both_rewards_end_to_end(tiny_model, lake, prefect_harness, capsys, tmp_path):
    from selfimprove.flows.sdzero import sdzero
    from selfimprove.flows.cli import main
    from selfimprove.warehouse.views import query

    runs = {}
    # ground truth on the scripted engine, which revises every answer right: every tuple is kept and SRT trains;
    # self-verified on the tiny model, whose revisions rarely match their agreement label
    scripted = {**sdzero_overrides(tiny_model), "backend": {"kind": "scripted"}}
    overrides = {"ground_truth": scripted, "self_verified": sdzero_overrides(tiny_model)}
    for reward in ("ground_truth", "self_verified"):
        result = sdzero(lake=str(lake.root), overrides=overrides[reward], reward=reward)
        runs[reward] = result["run_id"]
        assert "Phase 1: revision tuples" in result["summary"] and "Phase 2: on-policy" in result["summary"]
    for reward, run in runs.items():
        q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
        phase = dict(q("SELECT phase, count(*) FROM seed_phases WHERE run_id = RUN GROUP BY 1"))
        assert sum(phase.values()) == 12 and phase["revise"] > 0
        assert phase.get("distill_val", 0) == min(2, (phase.get("distill", 0) + phase.get("distill_val", 0)) // 3)
        assert reward == "self_verified" or "distill_ungraded" not in phase
        # Phase 1 covers exactly the revise seeds, two y_init each, and keeps exactly the correct revisions
        assert q("SELECT count(*), count(DISTINCT seed_id) FROM revisions WHERE run_id = RUN") == [(2 * phase["revise"], phase["revise"])]
        assert q("SELECT count(*) FROM revisions r JOIN seed_phases p USING (run_id, seed_id) "
                 "WHERE run_id = RUN AND p.phase <> 'revise'") == [(0,)]
        assert q("SELECT DISTINCT reward_source FROM revisions WHERE run_id = RUN") == [(reward,)]
        assert q("SELECT count(*) FROM revisions WHERE run_id = RUN AND kept <> coalesce(revised_reward, false)") == [(0,)]
        (kept,), = q("SELECT count(*) FROM revisions WHERE run_id = RUN AND kept")
        # the scripted engine revises every answer right; the tiny model's revisions match their label by chance
        assert kept == 2 * phase["revise"] if reward == "ground_truth" else kept < 2 * phase["revise"]
        assert q("SELECT count(*) FROM train_examples WHERE run_id = RUN") == [(2 * kept,)]
        # Phase 2 ran on the other seeds only, every step recorded, syncs every 2 steps
        assert [s for (s,) in q("SELECT step FROM distill_log WHERE run_id = RUN ORDER BY step")] == [0, 1, 2, 3]
        assert q("SELECT count(*) FROM distill_samples WHERE run_id = RUN") == [(6,)]
        assert q("SELECT DISTINCT p.phase FROM distill_samples d JOIN seed_phases p USING (run_id, seed_id) "
                 "WHERE run_id = RUN") == [("distill",)]
        assert q("SELECT step, reason FROM teacher_syncs WHERE run_id = RUN") == [(2, "every_n")]
        models = {m for (m,) in q("SELECT DISTINCT model FROM eval_metrics WHERE run_id = RUN")}
        assert {"base", "tuned"} <= models and ("srt" in models) == (kept > 0)
        (start,), = q("SELECT base_model FROM checkpoints WHERE run_id = RUN AND method = 'sdzero'")
        assert ("-full" in start) == (kept > 0)  # Phase 2 starts from the SRT checkpoint when there is one
    # the ground-truth run's SRT rows export as plain-text prompt/completion (rendered, ending inside the turn)
    import datasets

    out = tmp_path / "srt-rows"
    assert main(["export", runs["ground_truth"], "--out", str(out), "--lake", str(lake.root)]) == 0
    train = datasets.load_dataset(str(out), cache_dir=str(tmp_path / "hf-cache"))["train"]
    (n_rows,), = query(lake, f"SELECT count(*) FROM train_examples WHERE run_id = '{runs['ground_truth']}'")[1]
    assert train.num_rows == n_rows > 0 and isinstance(train[0]["prompt"], str) and "messages" not in train.column_names
    assert main(["export", runs["ground_truth"], "--out", str(tmp_path / "sg"), "--format", "sharegpt",
                 "--lake", str(lake.root)]) == 2
    assert "rendered text rows" in capsys.readouterr().err and not (tmp_path / "sg").exists()
    # the second reward source reuses the first run's seeds; it samples 8 per seed for its agreement labels
    assert lake.read_manifest(runs["self_verified"], "seeds")["reused_from"] == runs["ground_truth"]
    assert [query(lake, f"SELECT count(*) FROM candidates WHERE run_id = '{r}'")[1] for r in runs.values()] == [[(48,)], [(96,)]]
    assert main(["compare", *runs.values(), "--lake", str(lake.root)]) == 0
    out = capsys.readouterr().out
    assert "sdzero (ground_truth)" in out and "sdzero_self_verified (self_verified)" in out

    # redo Phase 2 only (the sdzero-from-distill deployment): Phase 1 and SRT are the first run's; on a track,
    # the Phase-2 model faces the promotion gate against the model the run started from
    overrides = scripted
    overrides["sdzero"]["distill"]["seed"] = 5
    overrides["track"] = {"name": "z", "base": overrides.pop("model"), "guard_size": 4, "diversity_k": 2}
    again = sdzero(lake=str(lake.root), overrides=overrides, reuse=runs["ground_truth"], from_stage="distill")["run_id"]
    for stage in ("candidates", "revise", "train"):
        assert lake.read_manifest(again, stage)["reused_from"] == runs["ground_truth"]
    assert lake.read_manifest(again, "distill").get("reused_from") is None
    assert query(lake, f"SELECT round, model_id, pass_k_at, guard_pass1 IS NOT NULL FROM promotions WHERE run_id = '{again}'")[1] == [
        (1, f"{again}-sdzero", 2, True)]

    from selfimprove.reporting.report import write_report

    write_report(lake, again, tmp_path / "report")
    page = (tmp_path / "report" / "report.html").read_text()
    assert (tmp_path / "report" / "distill.png").exists() and "Self-distillation" in page
    assert "Rounds of track z" in page and f"{again} (this run)" in page


def test_cli_sdzero_needs_answers_for_ground_truth(tmp_path, lake, capsys):
    from selfimprove.flows.cli import main

    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text('{"question": "1+1", "answer": "2"}\n{"question": "2+2"}\n')
    assert main(["run", "sdzero", "--config", _seed_config(tmp_path, seeds), "--lake", str(lake.root)]) == 2
    err = capsys.readouterr().err
    assert "row 2" in err and "'answer'" in err and "--method sdzero_self_verified" in err
    assert main(["run", "svd", "--reward", "self_verified", "--lake", str(lake.root)]) == 2
    assert not list(lake.root.glob("*/*/*.parquet"))


def _seed_config(tmp_path, seeds):
    path = tmp_path / "config.json"
    path.write_text('{"seeds": {"path": "%s"}}' % seeds)
    return str(path)
