"""An experiment: methods x repeats on fresh seeds, each placebo after the run it controls, resumable after a kill,
and its table."""
import pytest

from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides


def test_arms_put_each_placebo_after_the_method_it_controls():
    from selfimprove.flows.experiment import arms
    from selfimprove.validation import InputError

    assert arms(["random_keep", "svd", "rft"]) == [("svd", None), ("random_keep", "svd"), ("rft", None)]
    with pytest.raises(InputError, match="random_keep controls a method of its flow"):
        arms(["random_keep", "rft"])
    with pytest.raises(InputError, match="nope: not a method"):
        arms(["svd", "nope"])


def test_an_experiment_of_two_methods_by_two_repeats_resumes_after_a_kill(tiny_model, lake, prefect_harness,
                                                                          monkeypatch):
    from selfimprove.flows import pipeline
    from selfimprove.flows.cli import main
    from selfimprove.flows.experiment import experiment

    real = pipeline.evaluate_models

    def killed(ctx, cfg, *args):  # the machine goes away in the last arm, after it trained
        if cfg.experiment.endswith("/2/random_keep"):
            raise RuntimeError("the machine went away")
        return real(ctx, cfg, *args)

    monkeypatch.setattr(pipeline, "evaluate_models", killed)
    overrides = {**tiny_overrides(tiny_model), "majority": {"enabled": True}}
    with pytest.raises(RuntimeError, match="went away"):
        experiment.fn(methods=["svd", "random_keep"], repeats=2, lake=lake.location, overrides=overrides,
                      experiment_id="e1")
    first = dict(query(lake, "SELECT run_id, status FROM runs")[1])
    assert sorted(first.values()) == ["completed", "completed", "completed", "failed"]
    finished = {r: lake.read_manifest(r, "train")["finished_at"] for r in first}
    updated = dict(query(lake, "SELECT run_id, updated_at FROM runs WHERE status = 'completed'")[1])

    monkeypatch.setattr(pipeline, "evaluate_models", real)
    result = experiment.fn(methods=["svd", "random_keep"], repeats=2, lake=lake.location, overrides=overrides,
                           experiment_id="e1")
    after = dict(query(lake, "SELECT run_id, status FROM runs")[1])
    assert after.keys() == first.keys() and set(after.values()) == {"completed"}  # the failed run resumed, no new one
    assert {r: lake.read_manifest(r, "train")["finished_at"] for r in first} == finished  # nothing trained again
    assert dict(query(lake, "SELECT run_id, updated_at FROM runs WHERE run_id IN (SELECT unnest($r))",
                      {"r": list(updated)})[1]) == updated  # a completed arm is not even started again
    arms = query(lake, "SELECT json_extract_string(config_json, '$.experiment'), run_id, reuse, "
                       "json_extract(config_json, '$.seeds.seed')::INT, json_extract(config_json, '$.sampling.seed')::INT "
                       "FROM runs ORDER BY 1")[1]
    assert [a[0] for a in arms] == ["e1/1/random_keep", "e1/1/svd", "e1/2/random_keep", "e1/2/svd"]
    by = {a[0]: a for a in arms}
    assert by["e1/1/random_keep"][2] == by["e1/1/svd"][1] and by["e1/2/random_keep"][2] == by["e1/2/svd"][1]
    assert by["e1/1/svd"][3:] == (1234, 0) and by["e1/2/svd"][3:] == (1234 + 1009, 1)  # fresh seeds per repeat
    for repeat in (1, 2):  # the placebo: the svd run's candidates, exactly its count of examples, one per seed
        svd, placebo = by[f"e1/{repeat}/svd"][1], by[f"e1/{repeat}/random_keep"][1]
        assert lake.read_manifest(placebo, "candidates")["reused_from"] == svd
        kept = query(lake, "SELECT run_id, count(*), count(DISTINCT seed_id) FROM train_examples WHERE run_id IN ($a, $b) "
                           "GROUP BY run_id", {"a": svd, "b": placebo})[1]
        (n, _), (m, seeds) = sorted((k, s) for _, k, s in kept)
        assert n == m == seeds > 0
        assert query(lake, "SELECT json_extract(config_json, '$.filter.keep')::INT FROM runs WHERE run_id = $r",
                     {"r": placebo})[1] == [(n,)]
    # the same held-out items in every run
    items = query(lake, "SELECT run_id, list(item_id ORDER BY item_id) FROM eval_items GROUP BY run_id")[1]
    assert len({tuple(i) for _, i in items}) == 1
    table = result["summary"]
    assert "experiment e1: 2 method(s), 2 repeat(s)" in table and "vs random_keep" in table
    assert sorted(result["runs"]) == sorted(first)
    assert main(["compare", "--experiment", "e1", "--lake", lake.location]) == 0
    assert main(["compare", "--experiment", "nope", "--lake", lake.location]) == 2

    # compare: the svd run against the placebo that reused it, the base model's maj@4, tokens per point
    from selfimprove.reporting.compare import compare_runs
    from selfimprove.reporting.evidence import eval_rows, paired

    svd, placebo = by["e1/1/svd"][1], by["e1/1/random_keep"][1]
    cols, (row,), notes = compare_runs(lake, [svd])
    got = dict(zip(cols, row))
    delta = paired([(eval_rows(lake, placebo, "tuned"), eval_rows(lake, svd, "tuned"))], "x")
    assert got["vs placebo (points)"].endswith(f"({placebo})") and f"{delta[0] * 100:+.1f}" in got["vs placebo (points)"]
    assert got["base maj@k"].endswith("at k=4")
    assert got["tokens per point"] == "no gain" or float(got["tokens per point"].replace(",", "")) > 0
    assert bool(notes) == (delta[1] <= 0 <= delta[2])  # said in words exactly when the interval holds 0
    assert "base maj@k %" in table and "(k=4)" in table and table.count("—") < 4


def test_the_interval_over_repeats_is_students_t():
    from selfimprove.reporting.experiment import t_interval

    mean, low, high = t_interval([0.30, 0.35, 0.40])  # sd 0.05, n 3: half-width t(0.975, 2) 4.303 x 0.05 / sqrt 3
    assert (round(mean, 4), round(low, 4), round(high, 4)) == (0.35, 0.2258, 0.4742)
    assert t_interval([0.3]) == (0.3, None, None)
    from statistics import stdev

    many = [0.3, 0.4] * 20  # df 39: the 30-df quantile, a little wider than exact, never narrower
    assert abs(t_interval(many)[2] - 0.35 - 2.042 * stdev(many) / 40 ** 0.5) < 1e-12


def test_every_repeat_scores_the_same_heldout_items():
    from selfimprove import config as configlib
    from selfimprove.data.seeds import question_key
    from selfimprove.tasks.rounds import round_seeds

    def split(seed: int, fixed: bool):
        seeds, items = round_seeds(configlib.requested("quickstart", None, {"seeds": {"seed": seed},
                                                                          "evaluation": {"fixed": fixed}}), set())
        return {question_key(s["question"]) for s in seeds}, [i["item_id"] for i in items], items

    # left to themselves, the held-out items skip each repeat's seeds, so two repeats score different sets
    assert split(0, False)[1] != split(1009, False)[1]
    (seeds_a, ids_a, items), (seeds_b, ids_b, _) = split(0, True), split(1009, True)
    assert ids_a == ids_b and len(ids_a) == 200  # fixed: one set for every repeat
    assert not (seeds_a | seeds_b) & {question_key(i["question"]) for i in items}  # and no seed is a held-out item
    assert len(seeds_a) == len(seeds_b) == 240
