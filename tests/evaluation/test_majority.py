"""maj@k, the test-time baseline: the most frequent answer of k samples (ties to the answer reached first), scored,
with the k samples' calls and tokens on the row; checked against answers worked out by hand."""
import re

from selfimprove.evaluation.heldout import EvalConfig, metrics
from selfimprove.generation.sampling import SamplingConfig
from selfimprove.inference.scripted import ScriptedBackend
from selfimprove.testtime.majority import answer_by_majority, majority_index

# per question, what sample k answers (None: no final answer)
ANSWERS = {"2 + 3": ["7", "5", "5", "7"],  # a tie, 2 against 2: the answer reached first, 7, wrong
           "4 + 2": [None, "4", "6", "6"],  # 6 twice beats 4 once: right
           "1 + 1": [None, None, None, None],  # no answer at all: the first sample, scored wrong
           "3 + 3": ["6.0", "5", "6", "5"]}  # 6.0 and 6 are one answer (math-verify): a tie, 6.0 first


def _script(prompt: str, k: int) -> str:
    question = re.search(r"(\d \+ \d)", prompt.rsplit("<|user|>", 1)[-1]).group(1)
    answer = ANSWERS[question][k]
    return "I am not sure" if answer is None else f"It is \\boxed{{{answer}}}"


def test_majority_index_breaks_ties_by_the_answer_reached_first():
    assert majority_index(["7", "5", "5", "7"]) == 0
    assert majority_index([None, "4", "6", "6"]) == 2
    assert majority_index([None, None]) == 0
    assert majority_index(["6.0", "5", "6", "5"]) == 0


def test_maj_at_k_on_the_scripted_engine_matches_the_hand_computed_answers():
    items = [{"dataset": "hand", "item_id": f"i{n}", "domain": "math", "question": f"What is {q}?",
              "answer": str(eval(q)), "scorer": "math"} for n, q in enumerate(ANSWERS)]
    config = EvalConfig(answer_format="boxed", bootstrap=0)
    rows = answer_by_majority(ScriptedBackend(script=_script), items, 4, SamplingConfig(temperature=0.8), config,
                              "base+majority")
    got = {r["item_id"]: (r["extracted"], r["correct"]) for r in rows}
    assert got == {"i0": ("7", False), "i1": ("6", True), "i2": (None, False), "i3": ("6.0", True)}
    assert {r["method"] for r in rows} == {"majority@4"} and all(r["calls"] == 4 for r in rows)
    words = lambda answers: sum(4 if a is None else 3 for a in answers)  # noqa: E731  ("It is \boxed{x}": 3 words)
    assert [r["n_tokens"] for r in rows] == [words(a) for a in ANSWERS.values()]
    pass1 = next(m for m in metrics(rows, config) if m["metric"] == "pass@1")
    assert pass1["value"] == 0.5
