"""The embedded SmolLM2-135M-Instruct model on a few questions (minutes): `pytest -m slow`."""
import pytest

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def backend():
    from selfimprove.inference.transformers_backend import TransformersBackend
    from selfimprove.inference.models import default_checkpoint

    return TransformersBackend(default_checkpoint())


def test_real_model_samples_answers_and_judges(backend):
    from selfimprove.verification.cascade import CascadeConfig, run_cascade
    from selfimprove.verification.judges import StageConfig
    from selfimprove.generation.sampling import SamplingConfig, sample
    from selfimprove.data.seeds import SeedSource, generate

    seeds = generate(SeedSource(size=8))
    cands = sample(backend, seeds, SamplingConfig(n=4, answer_format="boxed_or_last_number"))
    assert len(cands) == 32 and sum(c["final_answer"] is not None for c in cands) >= 24
    stages = [StageConfig("agreement", threshold=0.5), StageConfig("correctness", scoring="probability", gate=False)]
    judgments, verdicts = run_cascade(backend, seeds, cands, CascadeConfig(stages=stages))
    assert len(verdicts) == 32
    assert all(0.0 <= j["p_yes"] <= 1.0 for j in judgments if j["stage"] == "correctness")


def test_real_model_held_out_accuracy_is_in_the_measured_range(backend):
    from selfimprove.evaluation.heldout import EvalConfig, evaluate, load_items, metrics
    from selfimprove.data.seeds import SeedSource

    cfg = EvalConfig(source=SeedSource(size=60, seed=777))
    rows = evaluate(backend, load_items(cfg), cfg, "base")
    acc = {m["metric"]: m["value"] for m in metrics(rows, cfg)}["pass@1"]
    assert 0.10 <= acc <= 0.45  # measured 0.265 on 200 items of this distribution
