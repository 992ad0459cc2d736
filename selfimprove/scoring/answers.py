"""Reading answers out of model text: final-answer part, boxed answers, verdict tokens."""
from __future__ import annotations

import re

THINK_CLOSE = "</think>"


def final_part(text: str) -> str:
    """What judges see: the text after the last closing think tag, or all of it."""
    if THINK_CLOSE in text:
        return text.rsplit(THINK_CLOSE, 1)[1].strip()
    return text.strip()


def extract_boxed(text: str) -> str | None:
    """Content of the last \\boxed{...}, braces balanced; None when absent or unclosed."""
    start = text.rfind("\\boxed{")
    while start != -1:
        depth, i = 0, start + len("\\boxed")
        for j in range(i, len(text)):
            if text[j] == "{":
                depth += 1
            elif text[j] == "}":
                depth -= 1
                if depth == 0:
                    return text[i + 1:j].strip()
        start = text.rfind("\\boxed{", 0, start)
    return None


_FENCE = re.compile(r"```[^\n]*\n(.*?)```", re.DOTALL)


def extract_code(text: str) -> str | None:
    blocks = _FENCE.findall(text)
    return blocks[-1] if blocks else None


_NUMBER = re.compile(r"-?\d[\d,]*(?:\.\d+)?(?:/\d+)?")

ANSWER_FORMATS = ("boxed", "boxed_or_last_number")


def extract_last_number(text: str) -> str | None:
    found = _NUMBER.findall(text)
    return found[-1].replace(",", "") if found else None


LETTERS = "ABCDEFGHIJ"
_LETTER_FORMS = r"\(([{0}])\)|\b([{0}])[).:](?!\w)|answer(?: is)?:?\s*\**([{0}])\b|^\s*([{0}])\s*$"


def extract_choice(text: str, choices: list[str]) -> str | None:
    """The letter of the last option the text names: a letter like (B), 'B)', 'answer: B', or an option's text
    (inside the last \\boxed{} when there is one)."""
    text = final_part(text)
    boxed = extract_boxed(text)
    if boxed:
        text = boxed
    letters = LETTERS[:len(choices)]
    hits: list[tuple[int, int]] = []  # (end position, option index)
    if letters:
        for m in re.finditer(_LETTER_FORMS.format(letters), text, re.IGNORECASE | re.MULTILINE):
            letter = next(g for g in m.groups() if g)
            if letter.isupper() or m.group(3):
                hits.append((m.end(), LETTERS.index(letter.upper())))
    for i, c in enumerate(choices):
        for m in re.finditer(rf"(?<!\w){re.escape(c.strip())}(?!\w)", text, re.IGNORECASE):
            hits.append((m.end(), i))
    return LETTERS[max(hits)[1]] if hits else None


def final_answer(text: str, domain: str, answer_format: str = "boxed", choices: list[str] | None = None) -> str | None:
    """The candidate's final answer by its domain: a fenced code block for code; the letter of the option named
    for multiple choice (`choices`); for math/science the last \\boxed{} (paper), or with
    `boxed_or_last_number` the last number when nothing is boxed (small models often ignore the boxing
    instruction)."""
    if answer_format not in ANSWER_FORMATS:
        raise ValueError(f"answer_format must be one of {ANSWER_FORMATS}, got {answer_format!r}")
    part = final_part(text)
    if domain == "code":
        return extract_code(part)
    if domain == "choice":
        return extract_choice(part, choices or [])
    boxed = extract_boxed(part)
    if boxed is None and answer_format == "boxed_or_last_number":
        return extract_last_number(part)
    return boxed


def format_problem(text: str, final: str | None, thinking: bool = False) -> str | None:
    """The static pre-filter: why a candidate cannot be judged, or None if it can."""
    if not text.strip():
        return "empty"
    if thinking and THINK_CLOSE not in text:
        return "unclosed_think"
    if final is None:
        return "no_final_answer"
    return None


_BRACKETED = re.compile(r"\[\[\s*(Y|N|YES|NO)\s*\]\]", re.IGNORECASE)
_STANDALONE = re.compile(r"(?<![A-Za-z])(YES|NO|Y|N)(?![A-Za-z])")


def parse_verdict(text: str) -> str:
    """`Y`, `N` or `unparseable`: last [[Y]]/[[N]], else last standalone YES/NO/Y/N (upper case)."""
    for pattern in (_BRACKETED, _STANDALONE):
        found = pattern.findall(text)
        if found:
            return "Y" if found[-1].upper() in ("Y", "YES") else "N"
    return "unparseable"


def normalize_answer(answer: str) -> str:
    """Plain-text normal form used to group answers when math equivalence is not available."""
    a = answer.strip().strip("$").strip()
    a = re.sub(r"\\text\{([^}]*)\}", r"\1", a)
    a = re.sub(r"\s+", "", a).rstrip(".").lower()
    return a
