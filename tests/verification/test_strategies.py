"""Judge strategies are a registry: a new one is one class; shared code asks the registry, not names."""
import pytest

from selfimprove.inference.scripted import ScriptedBackend
from selfimprove.verification.cascade import CascadeConfig, run_cascade
from selfimprove.verification.judges import StageConfig, prompts_used
from selfimprove.verification.strategy import STRATEGIES, Strategy, get_strategy, register_strategy
from selfimprove.verification.telemetry import stage_metrics
from selfimprove.verification.votes import Call, decide

SEEDS = [{"seed_id": f"s{i}", "domain": "math", "question": f"What is {i} + 2?", "answer": str(i + 2)} for i in range(4)]
CANDS = [{"candidate_id": f"s{i}#{k}", "seed_id": f"s{i}", "sample_index": k, "text": f"\\boxed{{{i + 2 + k}}}",
          "final_answer": str(i + 2 + k)} for i in range(4) for k in range(2)]


def test_builtins_declare_their_prompts_and_model_calls():
    assert not get_strategy("agreement").calls_model and get_strategy("factuality").calls_model
    assert prompts_used(StageConfig("cycle_consistency")) == ("cycle_infer", "cycle_compare")
    assert prompts_used(StageConfig("simple", reconsider=True)) == ("correctness", "reconsider")
    assert prompts_used(StageConfig("agreement", reconsider=True)) == ()


def test_a_new_model_free_strategy_is_one_class_and_telemetry_counts_no_calls():
    @register_strategy
    class ShortAnswer(Strategy):
        """Accepts answers of at most one character: no model call."""

        name, calls_model = "short_answer", False

        def judge(self, backend, items, stage, seed):
            return [decide([Call(0, "rule", "", it.answer, "Y" if len(it.answer) <= 1 else "N", model_call=False)], stage)
                    for it in items]

    try:
        stages = [StageConfig("short_answer"), StageConfig("correctness", votes=1, scoring="probability")]
        judgments, verdicts = run_cascade(ScriptedBackend(), SEEDS, CANDS, CascadeConfig(stages=stages, selection="all_valid"))
        assert {j["stage"] for j in judgments if not j["model_call"]} == {"short_answer"}
        metrics = {(m["stage"], m["metric"]): m["value"] for m in stage_metrics(judgments, verdicts, stages, {})}
        passed_rule = sum(1 for j in judgments if j["stage"] == "short_answer" and j["decision"] == "Y")
        assert metrics[("all", "judge_calls")] == passed_rule  # only the correctness calls count as model calls
        assert all(j["n_tokens"] == 0 for j in judgments)  # probability verdicts generate nothing
    finally:
        STRATEGIES.pop("short_answer")
    with pytest.raises(ValueError, match="unknown judge strategy 'short_answer'"):
        StageConfig("short_answer")


def test_sampled_judges_record_the_tokens_they_generated():
    stages = [StageConfig("cycle_consistency", votes=2, max_new_tokens=12), StageConfig("factuality", votes=2)]
    judgments, _ = run_cascade(ScriptedBackend(), SEEDS, CANDS, CascadeConfig(stages=stages, selection="all_valid"))
    assert all(j["model_call"] for j in judgments)
    assert all(0 < j["n_tokens"] <= 12 for j in judgments if j["call"] == "infer")
