"""Rounds on a track: each starts from the champion, takes new seeds, keeps the held-out set, follows the
track's data policy and faces the gate; `--rounds` stops early by the track's rules; the lake answers in SQL
which model was champion when and why; a worse challenger is refused and the refusal recorded."""
import pytest
import yaml

from selfimprove.flows.cli import main
from selfimprove.inference.base import register_backend
from selfimprove.inference.scripted import ScriptedBackend, default_script
from selfimprove.validation import InputError
from selfimprove.warehouse import registry
from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides


def _on_track(tiny_model, name="t", **track):
    o = tiny_overrides(tiny_model)
    o.pop("model")  # a run on a track starts from its champion; the track's first one from its base
    o["cascade"] = {"stages": [{"strategy": "agreement", "threshold": 0.0}]}  # rounds are not about judges: no judge model
    return {**o, "track": {"name": name, "base": str(tiny_model), "guard_size": 6, **track}}


def _rows(lake, sql, **params):
    return query(lake, sql, params)[1]


def test_rounds_take_new_seeds_keep_the_heldout_set_follow_the_data_policy_and_stop_by_the_gate(
        tiny_model, lake, prefect_harness, capsys, tmp_path, monkeypatch):
    from selfimprove.flows import pipeline

    checked = []  # each round starts once: the CLI's check of round 1 is round 1's
    real = pipeline.check_start
    monkeypatch.setattr(pipeline, "check_start", lambda cfg, *a, **k: checked.append(cfg.track.round) or real(cfg, *a, **k))
    cfg = tmp_path / "track.yaml"
    cfg.write_text(yaml.safe_dump(_on_track(tiny_model, margin=-1.0, train_on="accumulated", start_from="base")))
    assert main(["run", "svd", "--rounds", "2", "--track", "t", "--config", str(cfg), "--lake", lake.location]) == 0
    out = capsys.readouterr().out
    first, second = runs = registry.rounds_of(lake, "t")
    assert first in out and second in out and "champion: " + second in out
    assert checked == [1, 2]

    # each round its own generated questions (its generator seed recorded), the same held-out items
    seeds = {r: _rows(lake, "SELECT question_key, source FROM seeds WHERE run_id = $r", r=r) for r in runs}
    assert not {k for k, _ in seeds[first]} & {k for k, _ in seeds[second]}
    assert {s for _, s in seeds[first]} == {"generated:basic_arithmetic:1234"}
    assert {s for _, s in seeds[second]} == {"generated:basic_arithmetic:101237"}
    items = [_rows(lake, "SELECT list(item_id ORDER BY item_id) FROM eval_items WHERE run_id = $r "
                         "AND dataset = 'arithmetic-heldout'", r=r) for r in runs]
    assert items[0] == items[1] and len(items[0][0][0]) == 8

    # round 2 sampled with round 1's champion, and fine-tuned the base on both rounds' examples
    (ckpt1,), = _rows(lake, "SELECT path FROM checkpoints WHERE run_id = $r", r=first)
    assert _rows(lake, "SELECT model_path FROM runs WHERE run_id = $r", r=second) == [(ckpt1,)]
    (own1,), = _rows(lake, "SELECT count(*) FROM train_examples WHERE run_id = $r", r=first)
    (own2, carried), = _rows(lake, "SELECT count(*) FILTER (origin_run IS NULL), count(*) FILTER (origin_run = $o) "
                                   "FROM train_examples WHERE run_id = $r", r=second, o=first)
    assert carried == own1 > 0
    assert _rows(lake, "SELECT base_model, examples FROM checkpoints WHERE run_id = $r", r=second) == [
        (str(tiny_model), own2 + carried)]
    assert _rows(lake, "SELECT round, parent, sampled_by FROM models WHERE run_id = $r", r=second) == [
        (2, str(tiny_model), ckpt1)]

    # every decision with its evidence: guard set, diversity (k = 4), the round's data and its precision
    decided = _rows(lake, "SELECT round, promoted, guard_pass1 IS NOT NULL, champion_guard_pass1 IS NOT NULL, pass_k_at, "
                          "diversity >= 1, examples, new_examples, precision BETWEEN 0 AND 1 FROM promotions ORDER BY round")
    assert decided == [(1, True, True, True, 4, True, own1, own1, True), (2, True, True, True, 4, True, own2 + carried, own2, True)]
    from selfimprove.reporting.summary import summary_items
    from selfimprove.warehouse.document import as_text

    summary = as_text(summary_items(lake, second))
    assert "track t, round 2: promoted: paired delta" in summary and f"compare --track t --lake {lake.location}" in summary

    # a margin no model clears refuses round 3, and one refusal stops the rounds (stop_after_refusals: 1)
    strict = tmp_path / "strict.yaml"
    strict.write_text(yaml.safe_dump(_on_track(tiny_model, margin=0.99, stop_after_refusals=1)))
    assert main(["run", "svd", "--rounds", "3", "--track", "t", "--config", str(strict), "--lake", lake.location]) == 0
    out = capsys.readouterr().out
    assert "stopped early: 1 refused round(s) in a row" in out
    third = registry.rounds_of(lake, "t")[-1]
    (promoted, reason, previous), = _rows(lake, "SELECT promoted, reason, previous_path FROM promotions WHERE run_id = $r",
                                          r=third)
    (ckpt2,), = _rows(lake, "SELECT path FROM checkpoints WHERE run_id = $r", r=second)
    assert not promoted and "lower bound is not above the margin +0.990" in reason and previous == ckpt2
    assert registry.champion(lake, "t")["path"] == ckpt2

    # by hand: round 3's model becomes champion, recorded as manual; `models` and `compare --track` tell it all
    assert main(["promote", third, "--track", "t", "--lake", lake.location]) == 0
    assert registry.champion(lake, "t")["run_id"] == third
    capsys.readouterr()
    assert main(["models", "--track", "t", "--lake", lake.location]) == 0
    out = capsys.readouterr().out
    assert out.count("promoted") >= 3 and "refused" in out and f"champion of t: {third}" in out
    assert main(["compare", "--track", "t", "--lake", lake.location]) == 0
    out = capsys.readouterr().out
    assert all(r in out for r in (first, second, third)) and "accumulated, base" in out and "new, champion" in out


@register_backend("scripted-api")
class _ServedScript(ScriptedBackend):
    """A champion answered by a server (it cannot load the challenger's checkpoint, which transformers scores)."""

    loads_checkpoints = False


def test_a_worse_challenger_is_refused_and_the_refusal_recorded(tiny_model, lake, prefect_harness):
    from selfimprove.flows.rounds import rounds

    o = _on_track(tiny_model, "w", guard=None, diversity_k=0, stop_after_refusals=1)
    o["backend"] = {**o["backend"], "kind": "scripted-api"}  # the champion answers arithmetic right; the tiny model cannot
    result = rounds.fn(rounds=2, lake=lake.location, overrides=o)
    assert len(result["runs"]) == 1 and "1 refused round(s) in a row" in result["stopped"]
    (promoted, delta, hi, champ, chall, reason), = _rows(
        lake, "SELECT promoted, delta, ci_high, champion_pass1, challenger_pass1, reason FROM promotions WHERE track = 'w'")
    assert not promoted and delta < -0.5 and hi < 0 and champ > 0.5 > chall and reason.startswith("refused: paired delta -")
    assert registry.champion(lake, "w") is None  # the track stays on its base
    assert _rows(lake, "SELECT count(*) FROM models WHERE track = 'w'") == [(1,)]  # the refused model is registered


GUARD_ANSWERS: dict[str, str] = {}


def _knows_the_guard_set(prompt: str, k: int) -> str:
    """Arithmetic as the default script answers it, and the guard set's syllogisms from their answers."""
    for question, answer in GUARD_ANSWERS.items():
        if question in prompt:
            return f"It follows: {answer}."
    return default_script(prompt, k)


@register_backend("scripted-guard-api")
class _ServedGuardChampion(_ServedScript):
    """A served champion that also answers the guard set right; the tiny challenger cannot."""

    def __init__(self, model_path="scripted", config=None, script=None):
        super().__init__(model_path, config, script or _knows_the_guard_set)


def test_measured_guard_and_diversity_evidence_refuse_a_round(tiny_model, lake, prefect_harness):
    """The gate's guard and diversity refusals on evidence the flow measured, not built by hand. The margin lets
    any held-out delta through, so the refusal can only come from the guard set or the diversity floor."""
    from selfimprove.data.datasets import builtin
    from selfimprove.data.seeds import SeedSource
    from selfimprove.flows.rounds import rounds

    GUARD_ANSWERS.update({i["question"]: i["answer"] for i in builtin("syllogism", SeedSource(size=200, seed=777))})
    o = _on_track(tiny_model, "g", margin=-2.0, guard_size=6, guard_tolerance=0.1, diversity_k=0, stop_after_refusals=1)
    o["backend"] = {**o["backend"], "kind": "scripted-guard-api"}
    rounds.fn(rounds=1, lake=lake.location, overrides=o)
    (promoted, guard, champion_guard, reason, low, high), = _rows(
        lake, "SELECT promoted, guard_pass1, champion_guard_pass1, reason, guard_ci_low, guard_ci_high FROM promotions "
              "WHERE track = 'g'")
    assert not promoted and champion_guard == 1.0 and guard < 0.5, (guard, champion_guard)
    assert low <= guard - 1.0 <= high < -0.1  # the paired interval, recorded, lies below -tolerance
    assert reason == (f"refused: guard set pass@1 fell by {1.0 - guard:.3f}; its interval [{low:+.3f}, {high:+.3f}] "
                      "lies below -0.100 (the tolerance)")

    o = _on_track(tiny_model, "d", margin=-2.0, guard=None, diversity_k=2, diversity_floor=3.0, stop_after_refusals=1)
    rounds.fn(rounds=1, lake=lake.location, overrides=o)
    (promoted, diversity, reason, low, high), = _rows(
        lake, "SELECT promoted, diversity, reason, diversity_ci_low, diversity_ci_high FROM promotions WHERE track = 'd'")
    assert not promoted and diversity <= high <= 2.0  # 2 samples per item: at most 2 distinct answers, under the floor
    assert reason == (f"refused: {diversity:.2f} [{low:.2f}, {high:.2f}] distinct answers per seed is below the floor "
                      "3.00, the whole interval")
    assert registry.champion(lake, "g") is None and registry.champion(lake, "d") is None


def test_a_run_on_a_track_cannot_start_from_another_model(tiny_model, lake):
    from selfimprove import config as configlib
    from selfimprove.tasks.rounds import on_track

    cfg = configlib.load("quickstart", overrides={"model": str(tiny_model), "track": {"name": "t"}})
    with pytest.raises(InputError, match="starts from its champion"):
        on_track(cfg, lake.location)
    fresh = configlib.load("quickstart", overrides={"track": {"name": "t", "base": str(tiny_model)}})
    first = on_track(fresh, lake.location)
    assert first.model == str(tiny_model) and first.track.round == 1 and first.seeds.seed == fresh.seeds.seed
    with pytest.raises(InputError, match="guard set is another domain"):
        on_track(configlib.load("quickstart", overrides={"track": {"name": "t", "guard": "arithmetic"}}), lake.location)


def test_a_flow_without_the_gate_refuses_a_track(tiny_model, lake):
    from selfimprove import config as configlib
    from selfimprove.flows.pipeline import start_run

    cfg = configlib.load("quickstart", overrides={"track": {"name": "t"}})
    with pytest.raises(InputError, match="can be on a track, not evaluate"):
        with start_run("evaluate", cfg, "quickstart", lake.location):
            pass
    assert not lake.storage.list("")


def test_rounds_need_a_track(lake, capsys):
    assert main(["run", "svd", "--rounds", "2", "--lake", lake.location]) == 2
    assert "--rounds runs on a track" in capsys.readouterr().err


def test_a_round_that_crashed_is_resumed_by_the_next_rounds_call_not_started_over(tiny_model, lake, prefect_harness,
                                                                                  monkeypatch):
    from selfimprove.flows import pipeline
    from selfimprove.flows.rounds import rounds

    o = _on_track(tiny_model, "c", guard=None, diversity_k=0, margin=-1.0)
    real_gate = pipeline.face_gate

    def crash(*args, **kwargs):
        raise RuntimeError("the machine went away")

    monkeypatch.setattr(pipeline, "face_gate", crash)
    with pytest.raises(RuntimeError, match="went away"):
        rounds.fn(rounds=1, lake=lake.location, overrides=o)
    (crashed, status), = _rows(lake, "SELECT run_id, status FROM runs")
    assert status == "failed" and registry.rounds_of(lake, "c") == []
    sampled = lake.read_manifest(crashed, "candidates")["finished_at"]

    monkeypatch.setattr(pipeline, "face_gate", real_gate)
    result = rounds.fn(rounds=1, lake=lake.location, overrides=o)
    assert result["runs"] == [crashed] and registry.rounds_of(lake, "c") == [crashed]
    assert lake.read_manifest(crashed, "candidates")["finished_at"] == sampled  # its finished stages were kept
    assert registry.champion(lake, "c")["run_id"] == crashed
