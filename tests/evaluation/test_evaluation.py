import math
import threading
import time

import pytest

from selfimprove.evaluation.heldout import EvalConfig, bootstrap_ci, metrics, pass_at_k, paired_difference, per_item_accuracy
from selfimprove.scoring.scorers import ChoiceScorer, MathScorer, Scorer, math_equal, score


def rows(model, correct, samples_per_item=1):
    return [{"model": model, "dataset": "d", "item_id": f"i{k // samples_per_item}", "correct": c,
             "reason": "ok" if c else ("wrong" if c is False else "error:timeout"), "calls": 1, "n_tokens": 10}
            for k, c in enumerate(correct)]


def by_metric(ms):
    return {r["metric"]: r for r in ms}


def test_pass_at_1_with_interval_and_cost():
    m = by_metric(metrics(rows("base", [True, False] * 50), EvalConfig(bootstrap=500)))
    assert m["pass@1"]["value"] == 0.5 and m["pass@1"]["n"] == 100
    assert 0.35 < m["pass@1"]["ci_low"] < 0.5 < m["pass@1"]["ci_high"] < 0.65
    assert m["calls_per_item"]["value"] == 1 and m["tokens_per_item"]["value"] == 10


def test_unbiased_pass_at_k_matches_the_combinatorial_formula():
    for n, c, k in [(10, 3, 1), (10, 3, 5), (8, 0, 4), (8, 8, 2), (20, 1, 10)]:
        expected = 1 - (math.comb(n - c, k) / math.comb(n, k))
        assert abs(pass_at_k(n, c, k) - expected) < 1e-12
    assert pass_at_k(5, 3, 1) == pytest.approx(0.6)


def test_avg_at_k_and_pass_at_k_from_several_samples():
    # item 0: 1 of 4 right, item 1: 4 of 4, item 2: 0 of 4
    correct = [True, False, False, False] + [True] * 4 + [False] * 4
    cfg = EvalConfig(samples=4, temperature=0.8, pass_k=[1, 2, 4], bootstrap=200)
    m = by_metric(metrics(rows("m", correct, 4), cfg))
    assert m["pass@1"]["value"] == pytest.approx((0.25 + 1 + 0) / 3)
    assert m["pass@2"]["value"] == pytest.approx((0.5 + 1 + 0) / 3)
    assert m["pass@4"]["value"] == pytest.approx((1 + 1 + 0) / 3)
    assert m["calls_per_item"]["value"] == 4


def test_distinct_answers_per_item_count_what_was_extracted():
    samples = rows("m", [True, False, False, None] + [True] * 4, 4)
    for r, answer in zip(samples, ["7", "8", "7", None, "5", "5", "5", "5"]):
        r["extracted"] = answer
    m = by_metric(metrics(samples, EvalConfig(samples=4, temperature=0.8, bootstrap=50)))
    assert m["distinct_answers"]["value"] == pytest.approx((2 + 1) / 2)  # no answer is not an answer
    assert "distinct_answers" not in by_metric(metrics(rows("m", [True, False]), EvalConfig(bootstrap=50)))


def test_scorer_errors_are_excluded_not_counted_wrong():
    r = rows("m", [True, None, False, None])  # items i0..i3; i1 and i3 could not be scored
    assert per_item_accuracy(r) == {"i0": 1.0, "i2": 0.0}
    m = by_metric(metrics(r, EvalConfig(bootstrap=100)))
    assert m["pass@1"]["value"] == 0.5 and m["pass@1"]["n"] == 2 and m["error_rate"]["value"] == 0.5


def test_greedy_cannot_have_several_samples():
    with pytest.raises(ValueError, match="temperature"):
        EvalConfig(samples=4)


def test_paired_difference_counts_items_that_moved():
    base = rows("base", [False] * 80 + [True] * 20)
    tuned = rows("tuned", [True] * 30 + [False] * 50 + [True] * 20)
    d = paired_difference(base, tuned, EvalConfig(bootstrap=500), "tuned")
    assert abs(d["value"] - 0.30) < 1e-9 and d["ci_low"] > 0.15


def test_bootstrap_degenerate():
    assert bootstrap_ci([1.0] * 10, 100) == (1.0, 1.0)


def test_math_and_task_scorers():
    assert score(r"so \boxed{950}", "950").correct
    assert score("50 * 19 = 950.", "950", answer_format="boxed_or_last_number").correct
    assert score("50 * 19 = 950.", "950", answer_format="boxed").reason == "no_answer"
    assert score(r"\boxed{951}", "950").reason == "wrong"
    assert score(r"\boxed{-33}", "-33", scorer="task", task="basic_arithmetic").correct
    assert score(r"\boxed{-33}", "-33", scorer="task", task=None).correct is None  # no task: an error, not wrong
    assert math_equal("0.5", r"\frac{1}{2}") and not math_equal("2", "3")


def test_math_verify_works_off_the_main_thread():
    out = []
    t = threading.Thread(target=lambda: out.append(score(r"\boxed{\frac{6}{4}}", "1.5").correct))
    t.start()
    t.join()
    assert out == [True]


def test_a_slow_check_is_an_error_with_a_time_bound():
    class Slow(Scorer):
        def check(self, extracted, item):
            time.sleep(5)
            return True

    start = time.monotonic()
    s = Slow(timeout_s=0.2).score(r"\boxed{1}", {"answer": "1"})
    assert s.correct is None and s.reason == "error:timeout" and time.monotonic() - start < 2
    assert MathScorer(timeout_s=5).score(r"\boxed{2}", {"answer": "2"}).correct


@pytest.mark.parametrize("output,expected", [
    ("The answer is (B).", "B"), ("Answer: C", "C"), ("B", "B"), ("I think it is Paris.", "B"),
    ("Not Lyon... Answer: A", "A"), (r"\boxed{B}", "B"), ("A cube is round", None), ("no idea", None),
])
def test_choice_scorer_reads_letters_and_option_text(output, expected):
    item = {"choices": ["Lyon", "Paris", "Nice"], "answer": "B"}
    s = ChoiceScorer().score(output, item)
    assert s.extracted == expected
    assert s.correct is (expected == "B") or (expected is None and s.reason == "no_answer")


def test_choice_gold_given_as_option_text():
    assert ChoiceScorer().score("Answer: A", {"choices": ["Yes", "No"], "answer": "Yes"}).correct
    assert not ChoiceScorer().score("No, it does not follow.", {"choices": ["Yes", "No"], "answer": "Yes"}).correct


def test_uq_ttc_answers_with_an_accepted_candidate_or_its_fallback(tiny_model):
    from selfimprove.inference.base import BackendConfig
    from selfimprove.inference.transformers_backend import TransformersBackend
    from selfimprove.verification.cascade import CascadeConfig
    from selfimprove.verification.judges import StageConfig
    from selfimprove.generation.sampling import SamplingConfig
    from selfimprove.testtime.uq_ttc import UQTTCConfig, answer_with_cascade
    from selfimprove.evaluation.heldout import evaluate

    backend = TransformersBackend(tiny_model, BackendConfig(dtype="float32"))
    items = [{"item_id": f"i{k}", "dataset": "d", "domain": "math", "question": f"{k} + 1", "answer": str(k + 1),
              "scorer": "math"} for k in range(3)]
    ev = EvalConfig(max_new_tokens=8)
    sampling = SamplingConfig(n=3, max_new_tokens=8, answer_format="boxed_or_last_number")
    always = CascadeConfig(stages=[StageConfig("agreement", threshold=0.0)])
    never = CascadeConfig(stages=[StageConfig("agreement", threshold=1.1)])
    rows = answer_with_cascade(backend, items, UQTTCConfig(), sampling, always, ev, "m")
    for r in rows:  # accepted, or the first answer when no sample had one (the format filter)
        assert r["method"] in ("uq_ttc:accepted", "uq_ttc:fallback_first_answer") and r["calls"] == 3
    greedy = answer_with_cascade(backend, items, UQTTCConfig(fallback="greedy"), sampling, never, ev, "m")
    assert {r["method"] for r in greedy} == {"uq_ttc:fallback_greedy"} and all(r["calls"] == 4 for r in greedy)
    assert [r["output"] for r in greedy] == [r["output"] for r in evaluate(backend, items, ev, "m")]


def test_bootstrap_intervals_match_the_exact_resampling_distribution():
    """For n = 4 values with one 1, the resampled mean is k/4 with k ~ Binomial(4, 1/4): P(0) = 0.316, P(>= 3/4) =
    0.051, P(1) = 0.004. So the 2.5 % quantile is 0 and the 97.5 % quantile is 3/4, by hand."""
    assert math.comb(4, 0) * 0.75 ** 4 == pytest.approx(0.3164, abs=1e-4)
    assert 4 * 0.25 ** 3 * 0.75 + 0.25 ** 4 == pytest.approx(0.0508, abs=1e-4) and 0.25 ** 4 < 0.025
    assert bootstrap_ci([0.0, 0.0, 0.0, 1.0], 4000) == (0.0, 0.75)
    assert bootstrap_ci([1.0, 1.0, 0.0, 0.0], 4000) == (0.0, 1.0)  # P(0) = P(1) = 1/16 > 2.5 %
    assert bootstrap_ci([0.5] * 7, 100) == (0.5, 0.5)
    assert all(math.isnan(v) for v in bootstrap_ci([], 100))
    # the paired delta's interval is the same computation on per-item differences: diffs (0, 1, 0, 0)
    d = paired_difference(rows("base", [True, False, True, False]), rows("tuned", [True, True, True, False]),
                          EvalConfig(bootstrap=4000), "tuned")
    assert (d["value"], d["n"], d["ci_low"], d["ci_high"]) == (0.25, 4, 0.0, 0.75)


def test_agreement_and_majority_choice_by_hand():
    """maj@k's parts: each answer's share of all k samples (missing answers count in k, never as a group), and the
    majority pick that UQ-TTC falls back to."""
    from selfimprove.testtime.uq_ttc import _choose
    from selfimprove.verification.agreement import agreement_scores

    assert agreement_scores(["2", "2.0", "3", None]) == [0.5, 0.5, 0.25, 0.0]  # 2 == 2.0 by math-verify
    assert agreement_scores(["1/2", "0.5", "x", "x", "x"]) == [0.4, 0.4, 0.6, 0.6, 0.6]
    assert agreement_scores(["abc", "ABC ", "abd"], domain="code") == [2 / 3, 2 / 3, 1 / 3]
    cands = [{"candidate_id": f"c{i}", "final_answer": a} for i, a in enumerate([None, "3", "5", "5", "3", "5"])]
    assert _choose(cands, set(), "majority") == (cands[2], "fallback_majority")  # 5 x3 beats 3 x2; first 5 wins
    assert _choose(cands, {"c4"}, "majority") == (cands[4], "accepted")
    assert _choose(cands, set(), "first_answer") == (cands[1], "fallback_first_answer")
