"""The cascade on the tiny model: call counts, early exit, selection, probability verdicts."""
from collections import Counter

import pytest

from selfimprove.inference.base import BackendConfig
from selfimprove.inference.transformers_backend import TransformersBackend
from selfimprove.verification.cascade import CascadeConfig, run_cascade
from selfimprove.verification.judges import StageConfig
from selfimprove.verification.votes import combine

SEEDS = [{"seed_id": f"s{i}", "domain": "math", "question": f"Calculate {i} + {i}."} for i in range(3)]


def candidates(n=3):
    # seed s0's answers agree (2/3), s1's differ, s2's candidate 0 has no final answer
    answers = {"s0": ["4", "4", "5"], "s1": ["1", "2", "3"], "s2": [None, "6", "6"]}
    return [{"candidate_id": f"{s}#{k}", "seed_id": s, "sample_index": k,
             "text": f"so \\boxed{{{a}}}" if a else "I am not sure", "final_answer": a}
            for s, ans in answers.items() for k, a in enumerate(ans[:n])]


@pytest.fixture(scope="module")
def backend(tiny_model):
    return TransformersBackend(tiny_model, BackendConfig(dtype="float32", batch_size=32))


def always(stage, **kw):
    # at_least_k with k=0 always passes: every stage runs to full depth
    return StageConfig(stage, rule="at_least_k", k=0, max_new_tokens=6, **kw)


def test_full_depth_costs_2v_plus_v_plus_v_calls(backend):
    v = 3
    cfg = CascadeConfig(stages=[always("cycle_consistency", votes=v), always("factuality", votes=v),
                                always("correctness", votes=v)], selection="all_valid")
    judgments, verdicts = run_cascade(backend, SEEDS, candidates(), cfg)
    per_candidate = Counter(j["candidate_id"] for j in judgments)
    judged = [c["candidate_id"] for c in candidates() if c["final_answer"]]
    assert set(per_candidate) == set(judged)
    assert all(per_candidate[c] == 2 * v + v + v for c in judged)
    calls = Counter((j["stage"], j["call"]) for j in judgments if j["candidate_id"] == "s0#0")
    assert calls == {("cycle_consistency", "infer"): v, ("cycle_consistency", "compare"): v,
                     ("factuality", "verdict"): v, ("correctness", "verdict"): v}
    # the format pre-filter rejects before any judge call, as a verdict
    assert {v["candidate_id"]: v["rejected_at_stage"] for v in verdicts}["s2#0"] == "format"


def test_early_exit_and_unanimity(backend):
    cfg = CascadeConfig(stages=[StageConfig("agreement", threshold=0.6), always("factuality", votes=2)],
                        selection="all_valid")
    judgments, verdicts = run_cascade(backend, SEEDS, candidates(), cfg)
    by_id = {v["candidate_id"]: v for v in verdicts}
    # s0: '4' has share 2/3 ≥ 0.6 and passes on; '5' (1/3) stops at agreement with no later calls
    assert by_id["s0#0"]["accepted"] and by_id["s0#1"]["accepted"]
    assert by_id["s0#2"]["rejected_at_stage"] == "agreement"
    assert not [j for j in judgments if j["candidate_id"] == "s0#2" and j["stage"] == "factuality"]
    assert all(by_id[f"s1#{k}"]["rejected_at_stage"] == "agreement" for k in range(3))
    assert not combine(["Y", "Y", "unparseable"], StageConfig("correctness", rule="unanimous"))
    assert combine(["Y", "N", "Y"], StageConfig("correctness", rule="majority"))


def test_first_valid_stops_at_the_first_accepted_candidate(backend):
    cfg = CascadeConfig(stages=[always("correctness", votes=1)], selection="first_valid")
    judgments, verdicts = run_cascade(backend, SEEDS, candidates(), cfg)
    by_id = {v["candidate_id"]: v for v in verdicts}
    assert by_id["s0#0"]["accepted"] and by_id["s0#1"]["rejected_at_stage"] == "not_judged"
    assert by_id["s2#0"]["rejected_at_stage"] == "format" and by_id["s2#1"]["accepted"]
    assert by_id["s2#2"]["rejected_at_stage"] == "not_judged"
    assert {j["candidate_id"] for j in judgments} == {"s0#0", "s1#0", "s2#1"}


def test_probability_verdicts_are_never_unparseable(backend):
    # a threshold inside the P(Y) range this model gives: both decisions occur, each decided by the threshold alone
    probe = StageConfig("correctness", votes=1, scoring="probability", threshold=0.5)
    p_yes = sorted(j["p_yes"] for j in run_cascade(backend, SEEDS, candidates(),
                                                   CascadeConfig(stages=[probe], selection="all_valid"))[0])
    middle = (p_yes[len(p_yes) // 2 - 1] + p_yes[len(p_yes) // 2]) / 2
    stage = StageConfig("correctness", votes=5, scoring="probability", threshold=middle)
    judgments, verdicts = run_cascade(backend, SEEDS, candidates(), CascadeConfig(stages=[stage], selection="all_valid"))
    assert judgments and all(0.0 <= j["p_yes"] <= 1.0 for j in judgments)
    assert all(j["decision"] == ("Y" if j["p_yes"] >= middle else "N") for j in judgments)
    assert {j["decision"] for j in judgments} == {"Y", "N"}  # never "unparseable", and not one answer for all
    # a deterministic prompt is asked once, not five times
    assert Counter(j["candidate_id"] for j in judgments)["s0#0"] == 1


def test_stage_config_validation():
    with pytest.raises(ValueError, match="unknown judge strategy"):
        StageConfig("vibes")
    with pytest.raises(ValueError, match="unique"):
        CascadeConfig(stages=[StageConfig("correctness"), StageConfig("correctness")])


def test_reconsider_adds_one_turn_per_vote_and_only_it_votes(backend):
    stage = StageConfig("relevance", votes=2, reconsider=True, max_new_tokens=6)
    judgments, _ = run_cascade(backend, SEEDS, candidates(), CascadeConfig(stages=[stage], selection="all_valid"))
    mine = [j for j in judgments if j["candidate_id"] == "s0#0"]
    assert Counter(j["call"] for j in mine) == {"verdict": 2, "reconsider": 2}
    assert all(j["decision"] == "" for j in mine if j["call"] == "verdict")
    assert all(j["decision"] in ("Y", "N", "unparseable") for j in mine if j["call"] == "reconsider")


def test_constrained_votes_are_independent_draws(backend):
    stage = StageConfig("correctness", votes=4, scoring="constrained", temperature=1.0)
    judgments, _ = run_cascade(backend, SEEDS, candidates(), CascadeConfig(stages=[stage], selection="all_valid"))
    per = Counter(j["candidate_id"] for j in judgments)
    assert set(per.values()) == {4}
    assert all(j["decision"] in ("Y", "N") and j["p_yes"] is not None for j in judgments)
    # the tiny model's P(Y) sits near one half, so 4 independent draws over 8 candidates disagree somewhere
    assert len({j["decision"] for j in judgments}) == 2


def test_advisory_stages_after_the_last_gate_judge_every_round_in_one_call():
    from selfimprove.inference.scripted import ScriptedBackend

    class Counting(ScriptedBackend):
        scored: list[int] = []

        def choice_probs(self, prompts, assistant_prefix, choices):
            self.scored.append(len(prompts))
            return super().choice_probs(prompts, assistant_prefix, choices)

    # first_valid with an agreement gate at 0.5: s0 is decided in round 0, s2 (no answer first) in round 1
    backend = Counting()
    cfg = CascadeConfig(stages=[StageConfig("agreement", threshold=0.5),
                                StageConfig("factuality", scoring="probability", gate=False)])
    judgments, verdicts = run_cascade(backend, SEEDS, candidates(), cfg)
    rounds = {j["candidate_id"]: j["round"] for j in judgments if j["stage"] == "factuality"}
    assert rounds == {"s0#0": 0, "s2#1": 1}  # each judged once, its round recorded
    assert backend.scored == [2]  # one call for both rounds' survivors
    assert [v["candidate_id"] for v in verdicts if v["accepted"]] == ["s0#0", "s2#1"]
