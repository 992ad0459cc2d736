import pytest

from selfimprove.scoring.answers import (extract_boxed, extract_last_number, final_answer, final_part, format_problem,
                                 parse_verdict)


def test_boxed_takes_last_and_balances_braces():
    assert extract_boxed(r"first \boxed{1} then \boxed{\frac{1}{2}}") == r"\frac{1}{2}"
    assert extract_boxed(r"unclosed \boxed{3") is None
    assert extract_boxed("no box") is None


def test_final_part_drops_thinking():
    assert final_part("<think>scratch 41</think> answer \\boxed{42}") == "answer \\boxed{42}"
    assert final_part("plain") == "plain"


def test_final_answer_formats():
    text = "50 * 19 = 950, so 950."
    assert final_answer(text, "math", "boxed") is None
    assert final_answer(text, "math", "boxed_or_last_number") == "950"
    assert final_answer(r"maybe 3 but \boxed{4} then 5", "math", "boxed_or_last_number") == "4"
    assert final_answer("```python\nprint(1)\n```", "code") == "print(1)\n"
    assert extract_last_number("total 1,250.5 units") == "1250.5"
    with pytest.raises(ValueError):
        final_answer("x", "math", "loose")


def test_format_problem_reasons():
    assert format_problem("", None) == "empty"
    assert format_problem("<think>hm", "3", thinking=True) == "unclosed_think"
    assert format_problem("text", None) == "no_final_answer"
    assert format_problem("text", "3") is None


@pytest.mark.parametrize("text, want", [
    ("reasoning... [[Y]]", "Y"),
    ("[[Y]] on second thought [[N]]", "N"),
    ("[[ yes ]]", "Y"),
    ("The verdict: NO", "N"),
    ("Y because... final: N", "N"),
    ("I cannot decide", "unparseable"),
    ("", "unparseable"),
    ("Yesterday Nobody", "unparseable"),  # letters inside words are not verdicts
])
def test_parse_verdict(text, want):
    assert parse_verdict(text) == want
