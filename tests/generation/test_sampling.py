"""Candidate sampling: one engine call per stop rule, candidates cut at their complete answer, rows in seed order."""
from selfimprove.generation.sampling import SamplingConfig, sample
from selfimprove.inference.scripted import ScriptedBackend

SEEDS = [{"seed_id": "m1", "domain": "math", "question": "What is 12 + 30?"},
         {"seed_id": "c1", "domain": "choice", "question": "What is 2 + 2?", "choices": ["3", "4"]},
         {"seed_id": "m2", "domain": "math", "question": "What is 7 * 6?"}]


class Recording(ScriptedBackend):
    def __init__(self):
        super().__init__()
        self.calls = []

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        self.calls.append((len(prompts), params.stop))
        return super().generate(prompts, params, assistant_prefix, progress)


def test_candidates_end_at_their_answer_with_one_call_per_stop_rule():
    backend = Recording()
    rows = sample(backend, SEEDS, SamplingConfig(n=2))
    assert sorted(backend.calls) == [(1, "choice"), (2, "boxed")]
    assert [r["candidate_id"] for r in rows] == ["m1#0", "m1#1", "c1#0", "c1#1", "m2#0", "m2#1"]
    math = {r["candidate_id"]: r for r in rows if r["seed_id"] != "c1"}
    assert math["m1#0"]["text"] == "12 + 30 = 42. The answer is \\boxed{42}"  # the '.' after the answer is cut
    assert math["m1#1"]["final_answer"] == "43" and math["m2#0"]["final_answer"] == "42"
    assert {r["final_answer"] for r in rows if r["seed_id"] == "c1"} == {"A", "B"}


def test_without_the_stop_rule_the_whole_text_stays_and_one_call_serves_every_domain():
    backend = Recording()
    rows = sample(backend, SEEDS, SamplingConfig(n=2, stop_at_answer=False))
    assert backend.calls == [(3, None)]
    assert rows[0]["text"] == "12 + 30 = 42. The answer is \\boxed{42}."
