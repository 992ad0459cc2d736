"""Each round of a track takes only questions no earlier round took: from an inbox (normalised content
hash, `seeds.size` per round), or from the generator with a seed of its own per round."""
import json

import pytest

from selfimprove import config as configlib
from selfimprove.data.seeds import SeedError, question_key
from selfimprove.rounds.evidence import round_seed
from selfimprove.tasks.rounds import round_seeds
from selfimprove.validation import InputError


def _round(inbox, number=1, size=3):
    cfg = configlib.load("quickstart", overrides={"seeds": {"inbox": str(inbox), "size": size},
                                                  "track": {"name": "t", "round": number},
                                                  "evaluation": {"source": {"size": 4, "seed": 777}}})
    return cfg


def test_an_inbox_gives_each_round_only_new_questions_and_says_when_it_is_empty(tmp_path):
    inbox = tmp_path / "inbox"
    inbox.mkdir()
    (inbox / "week1.jsonl").write_text("".join(json.dumps({"question": f"What is {i} + {i}?", "answer": 2 * i}) + "\n"
                                               for i in range(4)))
    (inbox / "notes.txt").write_text("not a seed file")
    taken: set[str] = set()
    first, items = round_seeds(_round(inbox), taken)
    assert [r["seed_id"] for r in first] == ["week1:row-1", "week1:row-2", "week1:row-3"]  # size caps a round
    assert {(r["source"], r["source_row"]) for r in first} == {(str(inbox / "week1.jsonl"), n) for n in (1, 2, 3)}
    taken |= {question_key(r["question"]) for r in first}

    # week 2's file repeats a question (other case and spacing): only the new ones are taken, week 1's rest first
    (inbox / "week2.csv").write_text("question,answer\n\"what IS 0  +  0?\",0\nWhat is 9 + 9?,18\n")
    second, again = round_seeds(_round(inbox, 2), taken)
    assert [r["question"] for r in second] == ["What is 3 + 3?", "What is 9 + 9?"] and again == items
    taken |= {question_key(r["question"]) for r in second}
    with pytest.raises(InputError, match="no new seed question for round 3 of track t.*drop new files into the inbox"):
        round_seeds(_round(inbox, 3), taken)

    # a bad row anywhere in the inbox is named, file and row, before any seed is taken
    (inbox / "week3.jsonl").write_text('{"question": "fine"}\n{"answer": 1}\n')
    with pytest.raises(SeedError) as e:
        round_seeds(_round(inbox, 3), taken)
    assert (e.value.file, e.value.row, e.value.field) == (str(inbox / "week3.jsonl"), 2, "question")


def test_generated_rounds_draw_disjoint_questions_from_a_seed_of_their_own():
    cfg = configlib.load("quickstart", overrides={"seeds": {"size": 40}, "track": {"name": "t"},
                                                  "evaluation": {"source": {"size": 20, "seed": 777}}})
    one, items = round_seeds(cfg, set())
    later = configlib.load("quickstart", overrides={"seeds": {"size": 40, "seed": round_seed(1234, 2)}, "track": {"name": "t"},
                                                    "evaluation": {"source": {"size": 20, "seed": 777}}})
    two, same = round_seeds(later, {question_key(r["question"]) for r in one})
    keys = lambda rows: {question_key(r["question"]) for r in rows}  # noqa: E731
    assert len(two) == 40 and not keys(one) & keys(two) and same == items
    assert not keys(items) & (keys(one) | keys(two))  # the track's held-out set is never a training seed


def test_an_inbox_that_does_not_exist_is_one_line(tmp_path):
    with pytest.raises(SeedError, match="inbox not found"):
        round_seeds(_round(tmp_path / "nowhere"), set())



def test_a_round_with_nothing_new_is_refused_before_anything_is_written(tmp_path, lake):
    from selfimprove.evaluation.heldout import load_items
    from selfimprove.flows.pipeline import check_start

    inbox = tmp_path / "inbox"
    inbox.mkdir()
    cfg = _round(inbox)
    held_out = load_items(cfg.evaluation)[0]["question"]  # the only question in the inbox is a held-out item
    (inbox / "week1.jsonl").write_text(json.dumps({"question": held_out, "answer": 1}) + "\n")
    with pytest.raises(InputError, match="no new seed question for round 1 of track t"):
        check_start(cfg, lake.location)
    assert not lake.storage.list("")
