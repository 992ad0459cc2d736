from selfimprove.evaluation import EvalConfig, bootstrap_ci, metrics, paired_difference
from selfimprove.scorers import math_equal, score


def rows(model, correct):
    return [{"model": model, "item_id": f"i{k}", "correct": c, "reason": "ok" if c else "wrong"} for k, c in enumerate(correct)]


def test_pass_at_1_with_interval():
    m = {r["metric"]: r for r in metrics(rows("base", [True, False] * 50), EvalConfig(bootstrap=500))}
    assert m["pass@1"]["value"] == 0.5 and m["pass@1"]["n"] == 100
    assert 0.35 < m["pass@1"]["ci_low"] < 0.5 < m["pass@1"]["ci_high"] < 0.65


def test_paired_difference_counts_items_that_moved():
    base = rows("base", [False] * 80 + [True] * 20)
    tuned = rows("tuned", [True] * 30 + [False] * 50 + [True] * 20)
    d = paired_difference(base, tuned, EvalConfig(bootstrap=500), "tuned")
    assert abs(d["value"] - 0.30) < 1e-9 and d["ci_low"] > 0.15


def test_bootstrap_degenerate():
    assert bootstrap_ci([1.0] * 10, 100) == (1.0, 1.0)


def test_scorers():
    assert score(r"so \boxed{950}", "950").correct
    assert score("50 * 19 = 950.", "950", answer_format="boxed_or_last_number").correct
    assert not score("50 * 19 = 950.", "950", answer_format="boxed").correct
    assert score("nothing", "1", answer_format="boxed").reason == "no_answer"
    assert score(r"\boxed{-33}", "-33", scorer="task", task="basic_arithmetic").correct
    assert math_equal("0.5", r"\frac{1}{2}") and not math_equal("2", "3")


def test_math_verify_works_off_the_main_thread():
    import threading

    out = []
    t = threading.Thread(target=lambda: out.append(score(r"\boxed{\frac{6}{4}}", "1.5").correct))
    t.start()
    t.join()
    assert out == [True]
