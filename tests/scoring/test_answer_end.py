"""Stop rules: where a final answer ends, per domain, and what sampling keeps of a candidate."""
import pytest

from selfimprove.scoring.answer_end import answer_end, cut, rule_for


@pytest.mark.parametrize("rule, text, kept", [
    ("boxed", r"so \boxed{\frac{1}{2}}. Then \boxed{3}", r"so \boxed{\frac{1}{2}}"),
    ("boxed", r"unclosed \boxed{\frac{1}{2}", r"unclosed \boxed{\frac{1}{2}"),
    ("boxed", r"<think>\boxed{1}</think> so \boxed{2} more", r"<think>\boxed{1}</think> so \boxed{2}"),
    ("boxed", r"<think>maybe \boxed{1} or", r"<think>maybe \boxed{1} or"),  # nothing is final inside thinking
    ("fence", "Here:\n```python\ndef f():\n    return 1\n```\nIt returns 1.", "Here:\n```python\ndef f():\n    return 1\n```"),
    ("fence", "```python\ndef f():\n", "```python\ndef f():\n"),
    ("choice", "B fits best.\nAnswer: B\nBecause", "B fits best.\nAnswer: B"),
    ("choice", "The answer is (C). Indeed", "The answer is (C)"),
    ("choice", "Answer: B", "Answer: B"),  # the letter could still grow into a word: not complete yet
    ("choice", "the answer is a trick", "the answer is a trick"),  # lower-case 'a' is a word, not an option
])
def test_cut_keeps_the_text_up_to_the_complete_answer(rule, text, kept):
    assert cut(text, rule) == kept
    assert (answer_end(text, rule) is None) == (kept == text)


def test_rules_by_domain_and_off():
    assert [rule_for(d) for d in ("math", "science", "code", "choice", None)] == ["boxed", "boxed", "fence", "choice", "boxed"]
    assert cut(r"\boxed{1} and more", None) == r"\boxed{1} and more"
