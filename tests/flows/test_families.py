"""Any model: the tiny SVD flow end to end for each family (Llama 3, Qwen2, Qwen3 thinking, Gemma 3), and a base
model with no chat template given as a GGUF file to the CLI."""
import json

import pytest
import yaml

from selfimprove.warehouse.views import query
from tests.families import build_family_model, family_overrides
from tests.gguf_file import write_llama_gguf

# family → (what its rendered sampling prompt ends with, how its tokenizer splits the verdict choices after "[[")
EXPECTED = {
    "llama": ("<|start_header_id|>assistant<|end_header_id|>\n\n", {"Y": ["Y"], "N": ["N"]}),
    "qwen2": ("<|im_start|>assistant\n", {"Y": ["Y"], "N": ["N"]}),
    "qwen3": ("<|im_start|>assistant\n", {"Y": ["Y"], "N": ["N"]}),
    "gemma3": ("<start_of_turn>model\n", {"Y": ["Y"], "N": ["N"]}),
}


@pytest.fixture(scope="module")
def family_models(tmp_path_factory):
    root = tmp_path_factory.mktemp("families")
    return {name: build_family_model(root / name, name) for name in [*EXPECTED, "base"]}


def _run_facts(lake, run):
    q = lambda sql: query(lake, sql.replace("RUN", f"'{run}'"))[1]  # noqa: E731
    (config,), = q("SELECT config_json FROM runs WHERE run_id = RUN")
    return q, json.loads(config)["prompting"]


@pytest.mark.parametrize("family", list(EXPECTED))
def test_tiny_svd_flow_runs_for_every_family(family, family_models, lake, prefect_harness):
    from selfimprove.flows.svd import svd
    from selfimprove.verification.judges import make_items, neutralize

    thinking = "on" if family == "qwen3" else "auto"
    result = svd(preset="quickstart", lake=str(lake.root), overrides=family_overrides(family_models[family], thinking))
    q, prompting = _run_facts(lake, result["run_id"])
    (policy,) = prompting  # the policy judges itself: one model, checked once for every role
    ends_with, pieces = EXPECTED[family]
    assert policy["roles"] == ["policy", "judge"] and policy["prompt_format"] == "chat"
    assert policy["rendered"]["sample"].endswith(ends_with) and policy["verdict_tokens"] == pieces
    assert policy["verdict_rule"] == "single" and policy["thinks"] is (family == "qwen3")
    assert q("SELECT count(*) FROM candidates WHERE run_id = RUN") == [(8,)]
    # probability verdicts: every judge call carries P(Y), none is unparseable
    assert q("SELECT count(*), count(p_yes), count(*) FILTER (decision = 'unparseable') FROM judgments "
             "WHERE run_id = RUN AND stage IN ('factuality', 'correctness')")[0][1:] == (q(
        "SELECT count(*) FROM judgments WHERE run_id = RUN AND stage IN ('factuality', 'correctness')")[0][0], 0)
    accepted = q("SELECT count(*) FROM accepted WHERE run_id = RUN")[0][0]
    assert accepted > 0 and q("SELECT count(*) FROM train_examples WHERE run_id = RUN") == [(accepted,)]
    assert q("SELECT count(*) FROM checkpoints WHERE run_id = RUN") == [(1,)]
    assert q("SELECT model, count(*) FROM eval_samples WHERE run_id = RUN GROUP BY model ORDER BY model") == \
        [("base", 4), ("tuned", 4)]
    engine = lake.read_manifest(result["run_id"], "candidates")["backends"][0]["identity"]
    assert engine["prompt_format"] == "chat" and engine["thinking_switch"] is (family == "qwen3")
    if family == "qwen3":  # samples think; judges read only what follows </think>; training keeps the whole sample
        cands = [dict(zip(("candidate_id", "seed_id", "text", "final_answer"), r)) for r in
                 q("SELECT candidate_id, seed_id, text, final_answer FROM candidates WHERE run_id = RUN")]
        closed = {c["candidate_id"] for c in cands if "</think>" in c["text"]}
        assert closed, "the tiny Qwen3 model was taught to close its thoughts"
        # thinking on: the format pre-filter rejects exactly the samples whose thought never closed
        assert {c for (c,) in q("SELECT candidate_id FROM verdicts WHERE run_id = RUN AND reason = 'unclosed_think'")} \
            == {c["candidate_id"] for c in cands if c["text"].strip()} - closed
        seeds = {s: {"seed_id": s, "domain": "math", "question": "q"} for (s,) in q("SELECT seed_id FROM seeds WHERE run_id = RUN")}
        judged = [c for c in cands if c["candidate_id"] in closed]
        assert [it.answer for it in make_items(judged, seeds)] == \
            [neutralize(c["text"].rsplit("</think>", 1)[1].strip()) for c in judged]
        assert q("SELECT bool_and(t.completion = c.text AND contains(t.completion, '</think>')) FROM train_examples t "
                 "JOIN candidates c USING (run_id, candidate_id) WHERE t.run_id = RUN") == [(True,)]


def test_base_model_from_a_gguf_file_runs_svd_and_eval_from_the_cli(family_models, tmp_path, lake, prefect_harness,
                                                                     monkeypatch, capsys):
    """The issue's user: a base model without a chat template, kept as GGUF, passed as a file."""
    from selfimprove.flows.cli import main
    from selfimprove.inference import models

    monkeypatch.setenv("SELFIMPROVE_CACHE", str(tmp_path / "cache"))
    gguf = write_llama_gguf(family_models["base"], tmp_path / "tiny-base.gguf")
    overrides = {**family_overrides(str(gguf)), "cascade": {"stages": [
        {"strategy": "agreement", "threshold": 0.0},
        {"strategy": "correctness", "votes": 1, "scoring": "probability", "gate": False}]}}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(overrides))
    assert main(["run", "svd", "--config", str(cfg), "--lake", str(lake.root)]) == 0
    printed = capsys.readouterr()
    assert "'loss'" not in printed.out + printed.err  # a quiet run: TRL's per-step dicts only with --verbose
    (run,), = query(lake, "SELECT run_id FROM runs")[1]
    q, (policy,) = _run_facts(lake, run)
    converted = models.gguf_checkpoint_dir(gguf)
    assert policy["path"] == str(converted) and policy["prompt_format"] == "plain"
    assert policy["rendered"]["sample"].startswith("Question: ") and policy["rendered"]["sample"].endswith("\nAnswer:")
    assert policy["rendered"]["judge:correctness"].endswith("\nAnswer:[[")
    (model_hash,), = q("SELECT model_hash FROM runs WHERE run_id = RUN")[0:1]
    assert model_hash == models.model_identity(converted)  # its identity is its weights' hash
    assert q("SELECT count(*) FILTER (error IS NOT NULL), count(*) FROM candidates WHERE run_id = RUN") == [(0, 8)]
    assert q("SELECT count(*) FROM eval_samples WHERE run_id = RUN AND model = 'tuned'") == [(4,)]
    # the tuned checkpoint carries the plain template it was trained with
    (path,), = q("SELECT path FROM checkpoints WHERE run_id = RUN")
    assert "Question: " in (models.load_tokenizer(path, prompt_format=None).chat_template or "")
    # converted once: a second use of the file finds the checkpoint (same folder, same weights)
    stamp = (converted / "model.safetensors").stat().st_mtime_ns
    capsys.readouterr()
    assert main(["eval", "--model", str(gguf), "--lake", str(lake.root)]) == 0
    assert (converted / "model.safetensors").stat().st_mtime_ns == stamp
    assert query(lake, "SELECT count(DISTINCT run_id) FROM eval_samples WHERE model_hash = "
                       f"'{model_hash}'")[1] == [(2,)]
