import json

import pytest

from selfimprove.data.seeds import SeedError, SeedSource, generate, question_key, read_file


def write_jsonl(path, rows):
    path.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows))
    return path


def test_reads_valid_jsonl(tmp_path):
    p = write_jsonl(tmp_path / "s.jsonl", [{"question": "1+1?", "answer": 2}, {"id": "b", "question": " 2+2? "}])
    rows = read_file(p)
    assert [r["seed_id"] for r in rows] == ["row-1", "b"]
    assert rows[0]["answer"] == "2" and rows[1]["answer"] is None and rows[1]["question"] == "2+2?"


def test_an_optional_solution_is_kept_for_opsd(tmp_path):
    p = write_jsonl(tmp_path / "s.jsonl", [{"question": "1+1?", "answer": 2, "solution": " one and one make two "},
                                           {"question": "2+2?", "solution": ""}])
    assert [r["solution"] for r in read_file(p)] == ["one and one make two", None]


@pytest.mark.parametrize("rows, row, field, words", [
    ([{"question": "ok"}, {"answer": "3"}], 2, "question", "missing"),
    ([{"question": "   "}], 1, "question", "empty"),
    ([{"question": 5}], 1, "question", "must be a string"),
    ([{"id": "a", "question": "x"}, {"id": "a", "question": "y"}], 2, "seed_id", "duplicate"),
    ([{"question": "x", "domain": "poetry"}], 1, "domain", "not one of"),
    ([{"question": "x", "solution": ["a"]}], 1, "solution", "must be a string"),
    ([{"question": "x"}, "{not json"], 2, None, "not valid JSON"),
])
def test_bad_rows_name_file_row_field(tmp_path, rows, row, field, words):
    p = write_jsonl(tmp_path / "bad.jsonl", rows)
    with pytest.raises(SeedError) as e:
        read_file(p)
    assert e.value.row == row and e.value.field == field
    assert str(p) in str(e.value) and words in str(e.value)


def test_csv_rows_count_the_header(tmp_path):
    p = tmp_path / "s.csv"
    p.write_text("question,answer\nfine,1\n,2\n")
    with pytest.raises(SeedError) as e:
        read_file(p)
    assert e.value.row == 3 and e.value.field == "question"


def test_missing_and_unsupported_files(tmp_path):
    with pytest.raises(SeedError, match="not found"):
        read_file(tmp_path / "nope.jsonl")
    (tmp_path / "s.txt").write_text("q")
    with pytest.raises(SeedError, match="unsupported"):
        read_file(tmp_path / "s.txt")


def test_generated_seeds_are_deterministic_and_exclusion_works():
    a = generate(SeedSource(size=10, seed=5))
    assert a == generate(SeedSource(size=10, seed=5))
    assert len({r["question"] for r in a}) == 10 and all(r["answer"] for r in a)
    b = generate(SeedSource(size=10, seed=5), exclude_questions={question_key(r["question"]) for r in a[:5]})
    assert not {r["question"] for r in b} & {r["question"] for r in a[:5]}
