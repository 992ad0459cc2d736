"""Stage versions name the engine: another dtype or engine recomputes every model stage; the same one copies."""
from selfimprove import config as configlib
from selfimprove.inference.base import load_backend, usage
from tests.tiny_model import tiny_overrides

MODEL_STAGES = ("candidates", "judge", "eval-base")


def test_dtype_or_engine_change_recomputes_model_stages_and_nothing_else(tiny_model, lake, prefect_harness, monkeypatch):
    from selfimprove.flows.svd import svd
    from selfimprove.tasks import common

    common.release_engines()  # an engine another test left warm
    loads = []
    monkeypatch.setattr(common, "load_backend", lambda path, config: loads.append(path) or load_backend(path, config))
    o = tiny_overrides(tiny_model)
    o["training"]["min_examples"] = 10_000  # about the model stages, not training
    first = svd(preset="quickstart", lake=str(lake.root), overrides=o)["run_id"]
    # sampling, judging and the base evaluation ask one checkpoint with one setting: it is loaded once
    assert len(loads) == 1 and not common._WARM  # and released when the flow ends

    before = usage(tiny_model).as_dict()
    same = svd(preset="quickstart", lake=str(lake.root), overrides=o)["run_id"]
    assert usage(tiny_model).as_dict() == before  # same engine: every stage copied, zero model calls
    assert all(lake.read_manifest(same, s)["reused_from"] == first for s in MODEL_STAGES)

    bf16 = configlib.merge(o, {"backend": {"dtype": "bfloat16"}})
    second = svd(preset="quickstart", lake=str(lake.root), overrides=bf16)["run_id"]
    after = usage(tiny_model).as_dict()
    for stage in MODEL_STAGES:
        assert "reused_from" not in lake.read_manifest(second, stage), stage
        assert lake.read_manifest(second, stage)["backends"][0]["identity"]["dtype"] == "bfloat16"
    assert lake.read_manifest(second, "seeds")["reused_from"] == first  # no engine: copied
    # 6 seeds x 4 samples again, the judges' calls again, 8 greedy evaluation items again
    assert after["sequences"] - before["sequences"] >= 24 + 8
    assert after["scored_prompts"] + after["generate_calls"] > before["scored_prompts"] + before["generate_calls"] + 6 + 8

    scripted = configlib.merge(o, {"backend": {"kind": "scripted"}})
    third = svd(preset="quickstart", lake=str(lake.root), overrides=scripted)["run_id"]
    for stage in MODEL_STAGES:
        manifest = lake.read_manifest(third, stage)
        assert "reused_from" not in manifest and manifest["backends"][0]["identity"]["kind"] == "scripted"


def test_editing_any_scorers_prompt_changes_the_evaluation_version(tmp_path, monkeypatch):
    """The evaluation stage hashes every prompt a scorer may ask in, found from the scorers' table: a prompt added
    for a new scorer, or an edit to an existing one, is a new version without listing it anywhere else."""
    import shutil

    from selfimprove import prompts
    from selfimprove.data import datasets
    from selfimprove.evaluation.heldout import EvalConfig, eval_prompts
    from selfimprove.tasks.common import version_of

    folder = tmp_path / "prompts"
    shutil.copytree(prompts.FOLDER, folder)
    monkeypatch.setattr(prompts, "FOLDER", folder)
    prompts.load.cache_clear()
    config = EvalConfig()
    version = lambda: version_of("eval-base", {}, [], eval_prompts(config))  # noqa: E731
    try:
        before = version()
        (folder / "sample_choice.txt").write_text((folder / "sample_choice.txt").read_text() + "\nBe brief.")
        prompts.load.cache_clear()
        edited = version()
        assert edited != before
        (folder / "sample_proof.txt").write_text("Prove: {question}")
        monkeypatch.setitem(datasets.PROMPT_FOR_SCORER, "proof", "sample_proof")
        assert "sample_proof" in eval_prompts(config) and version() != edited
    finally:
        prompts.load.cache_clear()
