"""Stage versions name the engine: another dtype or engine recomputes every model stage; the same one copies."""
from selfimprove import config as configlib
from selfimprove.inference.base import usage
from tests.tiny_model import tiny_overrides

MODEL_STAGES = ("candidates", "judge", "eval-base")


def test_dtype_or_engine_change_recomputes_model_stages_and_nothing_else(tiny_model, lake, prefect_harness):
    from selfimprove.flows.svd import svd

    o = tiny_overrides(tiny_model)
    o["training"]["min_examples"] = 10_000  # about the model stages, not training
    first = svd(preset="quickstart", lake=str(lake.root), overrides=o)["run_id"]

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
