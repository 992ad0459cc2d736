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


def _guard(lake, seeds, examples=None, pi=None, allow=False):
    from selfimprove.config import RunConfig
    from selfimprove.tasks.common import StageContext
    from selfimprove.tasks.stages import guard_contamination

    seeds_m = {"stage": "seeds", "files": [lake.write("seeds", "r", seeds), lake.write("eval_items", "r", [])]}
    files = [lake.write("train_examples", "r", examples)] if examples is not None else []
    files += [lake.write("privileged_info", "r", pi)] if pi is not None else []
    conf = RunConfig()
    conf.contamination.allow = allow
    return guard_contamination.fn(StageContext(lake=str(lake.root), run_id="r"), conf, seeds_m,
                                  {"stage": "select", "files": files})


def test_a_held_out_item_inside_a_completion_is_stopped(lake):
    """The seed is clean; the model's answer recites a held-out question (a memorised test item)."""
    from selfimprove.data.datasets import builtin
    from selfimprove.data.seeds import SeedSource
    from selfimprove.evaluation.contamination import ContaminationError

    leak = builtin("syllogism", SeedSource(size=200, seed=777))[7]
    seeds = [{"seed_id": "s0", "domain": "math", "question": "Calculate 3 + 4."}]
    examples = [{"candidate_id": "s0#1", "seed_id": "s0", "prompt": seeds[0]["question"],
                 "completion": "As in the exercise: " + leak["question"] + " So \\boxed{7}."}]
    with pytest.raises(ContaminationError, match=rf"(?s){leak['item_id']}.*s0#1"):
        _guard(lake, seeds, examples)


def test_privileged_information_that_trains_is_checked_and_other_phases_are_not(lake):
    """OPSD's teacher reads the PI of its distill seeds: a held-out item there leaks into training. PI rows of
    another phase never reach a teacher, so they are not training text."""
    from selfimprove.data.datasets import builtin
    from selfimprove.data.seeds import SeedSource
    from selfimprove.evaluation.contamination import ContaminationError

    leak = builtin("syllogism", SeedSource(size=200, seed=777))[9]
    seeds = [{"seed_id": f"s{i}", "domain": "math", "question": f"Calculate {i} + 4."} for i in range(2)]
    pi = [{"seed_id": "s0", "phase": "distill", "pi_text": "Worked solution. " + leak["question"], "pi_source": "rule"},
          {"seed_id": "s1", "phase": "revise", "pi_text": leak["question"], "pi_source": "rule"}]
    with pytest.raises(ContaminationError, match=rf"(?s)1 held-out item.*{leak['item_id']}.*s0:pi"):
        _guard(lake, seeds, pi=pi)
    assert _guard(lake, seeds, pi=[{**pi[1], "seed_id": "s0"}])["action"] == "clean"


def test_allow_contamination_through_the_cli_is_recorded(tiny_model, lake, tmp_path, prefect_harness, capsys):
    """A seed file holding a held-out syllogism question: `run rft` stops before training with one line naming the
    item; with --allow-contamination the run trains, and the run's config and the contamination table say so."""
    import json

    import yaml

    from selfimprove.data.datasets import builtin
    from selfimprove.data.seeds import SeedSource
    from selfimprove.flows.cli import main
    from selfimprove.warehouse.views import query
    from tests.tiny_model import tiny_overrides

    leak = builtin("syllogism", SeedSource(size=200, seed=777))[5]
    seeds = tmp_path / "seeds.jsonl"
    seeds.write_text(json.dumps({"seed_id": "leak", "question": leak["question"], "answer": "0"}) + "\n"
                     + json.dumps({"seed_id": "ok", "question": "Calculate 3 + 4.", "answer": "7"}) + "\n")
    o = {**tiny_overrides(tiny_model), "backend": {"kind": "scripted"}, "seeds": {"path": str(seeds)}}
    cfg = tmp_path / "run.yaml"
    cfg.write_text(yaml.safe_dump(o))
    args = ["run", "rft", "--config", str(cfg), "--lake", str(lake.root)]
    assert main(args) == 2
    said = [line for line in capsys.readouterr().err.splitlines() if line.startswith("selfimprove:")]
    assert len(said) == 1 and "contamination guard: 1 held-out item" in said[0], said
    (stopped,), = query(lake, "SELECT run_id FROM runs")[1]
    assert lake.read_manifest(stopped, "contamination") is None and lake.read_manifest(stopped, "train") is None

    assert main(args + ["--allow-contamination"]) == 0
    (run,), = query(lake, f"SELECT run_id FROM runs WHERE run_id <> '{stopped}'")[1]
    assert query(lake, f"SELECT item_id, kind, action, train_id FROM contamination WHERE run_id = '{run}' "
                       "ORDER BY train_id")[1] == [(leak["item_id"], "exact", "allowed", "leak#0")]
    (config,), = query(lake, f"SELECT config_json FROM runs WHERE run_id = '{run}'")[1]
    assert json.loads(config)["contamination"]["allow"] is True
    assert lake.read_manifest(run, "train")["steps"] > 0
