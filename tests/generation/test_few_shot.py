"""Few-shot examples: shown before each seed of their domain, in its prompt format; versioned by content; left out
of training rows; a bad file is one line naming its row and field."""
import json

import pytest

from selfimprove.generation import few_shot
from selfimprove.generation.sampling import SamplingConfig, seed_message
from selfimprove.validation import InputError


def _file(tmp_path, rows, name="shots.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return str(path)


def test_examples_precede_the_question_in_the_plain_format_and_stay_out_of_training(tmp_path):
    from selfimprove.inference import models, prompt_format
    from selfimprove.verification.selection import select
    from tests.families import build_family_model

    shots = _file(tmp_path, [{"question": "Calculate 1 + 1.", "answer": "1 + 1 = 2. \\boxed{2}"},
                             {"question": "Which is 2?", "answer": "Answer: A", "domain": "choice", "choices": ["2", "3"]}])
    config = SamplingConfig(prompt="sample_math", few_shot=shots)
    seed = {"seed_id": "s", "question": "Calculate 3 + 4.", "domain": "math"}
    turns = seed_message(seed, config)
    assert [t["role"] for t in turns] == ["user", "assistant", "user"]  # only the math example, then the seed
    assert "Calculate 1 + 1." in turns[0]["content"] and turns[1]["content"] == "1 + 1 = 2. \\boxed{2}"
    base = build_family_model(tmp_path / "base", "base")
    text = prompt_format.render(models.load_tokenizer(base), turns)
    assert text.startswith("Question: ") and "Answer: 1 + 1 = 2. \\boxed{2}</s>\n\nQuestion: " in text
    assert text.endswith("\nAnswer:") and text.count("Question: ") == 2
    rows = select([seed], [{"candidate_id": "s#0", "seed_id": "s", "sample_index": 0, "text": "7"}],
                  [{"candidate_id": "s#0", "accepted": True}], "first_valid", config)
    assert rows[0]["prompt"] == turns[-1]["content"] and "1 + 1" not in rows[0]["prompt"]


def test_the_file_content_is_in_the_version_and_bad_rows_get_one_line(tmp_path):
    path = _file(tmp_path, [{"question": "q", "answer": "a"}])
    first = few_shot.version(path)
    _file(tmp_path, [{"question": "q", "answer": "another worked answer"}])
    assert few_shot.version(path) != first and few_shot.version(None) == {}
    for rows, where in (([{"question": "q"}], "row 1, field 'answer'"),
                        ([{"question": "q", "answer": "a"}, {"question": "", "answer": "a"}], "row 2, field 'question'"),
                        ([{"question": "q", "answer": "a", "domain": "poetry"}], "row 1, field 'domain'")):
        bad = _file(tmp_path, rows, f"bad{len(rows)}{where[4]}.jsonl")
        with pytest.raises(InputError, match=where) as e:
            few_shot.examples(bad)
        assert "\n" not in str(e.value)
