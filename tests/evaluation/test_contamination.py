import pytest

from selfimprove.evaluation.contamination import ContaminationConfig, find_overlaps

TEMPLATE = "Consider these statements carefully and decide whether the conclusion logically follows from them: "


def heldout():
    items = [{"dataset": "logic", "item_id": f"h{i}", "question": TEMPLATE + f"all {i} cats are animals and some animals swim near river {i}"}
             for i in range(30)]
    items.append({"dataset": "math", "item_id": "m0", "question": "Calculate 12 + 7."})
    return items


def test_exact_match_after_normalisation_is_flagged():
    flagged = find_overlaps([("t1", "calculate  12 + 7 .")], heldout(), ContaminationConfig())
    assert [(f["item_id"], f["kind"], f["train_id"]) for f in flagged] == [("m0", "exact", "t1")]


def test_ngram_overlap_with_a_rewrapped_item_is_flagged_but_the_shared_template_is_not():
    train = [("t1", "Question: " + heldout()[3]["question"][len(TEMPLATE):] + " Please answer."),
             ("t2", TEMPLATE + "some dogs bark loudly at night when the moon is full and bright")]
    flagged = find_overlaps(train, heldout(), ContaminationConfig(ngram=6))
    assert [f["item_id"] for f in flagged] == ["h3"] and flagged[0]["kind"] == "6-gram" and flagged[0]["overlap"] >= 0.5


def test_short_items_only_match_exactly():
    flagged = find_overlaps([("t1", "Calculate 12 + 7 - 3.")], heldout(), ContaminationConfig())
    assert flagged == []


@pytest.fixture
def planted(lake):
    """A run whose accepted training example is a held-out syllogism question, word for word."""
    from selfimprove.data.datasets import builtin
    from selfimprove.data.seeds import SeedSource

    leak = builtin("syllogism", SeedSource(size=200, seed=777))[5]
    seeds = [{"seed_id": "s0", "domain": "math", "question": "Calculate 3 + 4."},
             {"seed_id": "s1", "domain": "math", "question": leak["question"]}]
    examples = [{"candidate_id": f"{s['seed_id']}#0", "seed_id": s["seed_id"], "prompt": s["question"], "completion": "Yes"}
                for s in seeds]
    seeds_m = {"stage": "seeds", "files": [lake.write("seeds", "r", seeds), lake.write("eval_items", "r", [])]}
    train_m = {"stage": "select", "files": [lake.write("train_examples", "r", examples)]}
    return leak, seeds_m, train_m


def test_the_guard_stops_a_planted_overlap_and_the_override_is_recorded(lake, planted):
    from selfimprove.config import RunConfig
    from selfimprove.evaluation.contamination import ContaminationError
    from selfimprove.tasks.stages import guard_contamination
    from selfimprove.warehouse.views import query

    leak, seeds_m, train_m = planted
    from selfimprove.tasks.common import StageContext

    ctx = StageContext(lake=str(lake.root), run_id="r")
    conf = RunConfig()
    with pytest.raises(ContaminationError, match=rf"(?s)1 held-out item.*syllogism-heldout/{leak['item_id']}.*s1#0.*--allow-contamination"):
        guard_contamination.fn(ctx, conf, seeds_m, train_m)
    assert lake.read_manifest("r", "contamination") is None  # a stopped guard is not a finished stage
    conf.contamination.allow = True
    m = guard_contamination.fn(ctx, conf, seeds_m, train_m)
    assert m["flagged"] == 1 and m["action"] == "allowed"
    assert query(lake, "SELECT item_id, kind, action FROM contamination")[1] == [(leak["item_id"], "exact", "allowed")]
