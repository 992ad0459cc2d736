"""Runs on a track start from its champion, register their model and face the gate; the lake answers in SQL
which model was champion when and why; a worse challenger is refused and the refusal recorded."""
import pytest

from selfimprove.flows.cli import main
from selfimprove.validation import InputError
from selfimprove.warehouse.registry import champion
from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides


def _on_track(tiny_model, **track):
    o = tiny_overrides(tiny_model)
    o.pop("model")  # a run on a track starts from its champion; the track's first one from its base
    return {**o, "track": {"name": "t", "base": str(tiny_model), **track}}


def test_a_track_promotes_by_the_gate_refuses_a_worse_challenger_and_takes_a_manual_promotion(
        tiny_model, lake, prefect_harness, capsys):
    from selfimprove.flows.svd import svd

    # round 1: from the base; a margin of -1 lets any trained model through
    first = svd(preset="quickstart", lake=lake.location, overrides=_on_track(tiny_model, margin=-1.0))["run_id"]
    (path1,), = query(lake, "SELECT path FROM checkpoints WHERE run_id = $r", {"r": first})[1]
    assert champion(lake, "t")["path"] == path1
    assert query(lake, "SELECT parent, track FROM models WHERE run_id = $r", {"r": first})[1] == [(str(tiny_model), "t")]

    # round 2 starts from round 1's champion; a margin no model can clear refuses it, and the champion stays
    second = svd(preset="quickstart", lake=lake.location, overrides=_on_track(tiny_model, margin=0.99))
    run2 = second["run_id"]
    assert query(lake, "SELECT model_path FROM runs WHERE run_id = $r", {"r": run2})[1] == [(path1,)]
    (promoted, reason, previous), = query(lake, "SELECT promoted, reason, previous_path FROM promotions WHERE run_id = $r",
                                          {"r": run2})[1]
    assert not promoted and "lower bound is not above the margin +0.990" in reason and previous == path1
    assert champion(lake, "t")["path"] == path1 and f"track t: {reason}" in second["summary"]

    # by hand: round 2's model becomes champion, recorded as manual; `models` lists the whole history
    assert main(["promote", run2, "--track", "t", "--lake", lake.location]) == 0
    (path2,), = query(lake, "SELECT path FROM checkpoints WHERE run_id = $r", {"r": run2})[1]
    assert champion(lake, "t")["path"] == path2
    capsys.readouterr()
    assert main(["models", "--track", "t", "--lake", lake.location]) == 0
    out = capsys.readouterr().out
    assert out.count("promoted") >= 2 and "refused" in out and f"champion of t: {run2}" in out


def test_a_run_on_a_track_cannot_start_from_another_model(tiny_model, lake):
    from selfimprove import config as configlib
    from selfimprove.tasks.rounds import on_track

    cfg = configlib.load("quickstart", overrides={"model": str(tiny_model), "track": {"name": "t"}})
    with pytest.raises(InputError, match="starts from its champion"):
        on_track(cfg, lake.location)
    fresh = configlib.load("quickstart", overrides={"track": {"name": "t", "base": str(tiny_model)}})
    assert on_track(fresh, lake.location).model == str(tiny_model)  # a new track: its base


def test_a_flow_without_the_gate_refuses_a_track(tiny_model, lake):
    from selfimprove.flows.sdzero import sdzero

    with pytest.raises(InputError, match="can be on a track, not sdzero"):
        sdzero.fn(preset="quickstart", lake=lake.location, overrides={"track": {"name": "t"}})
    assert not lake.storage.list("")
