"""Method views: a method's summary lines come from its registered view; advisory stages never warn."""
import json

from selfimprove.reporting.method_views import get_view, view_of


def _run(lake, run, method, stages):
    lake.write("runs", run, [{"flow": "svd", "config_json": json.dumps({"method": method, "cascade": {"stages": stages}})}])


def test_a_stage_at_chance_warns_only_when_it_gates(lake):
    _run(lake, "r", "svd", [{"strategy": "factuality", "gate": True}, {"strategy": "correctness", "gate": False}])
    lake.write("judge_metrics", "r", [{"stage": s, "metric": "auroc", "value": 0.5, "n": 40, "ci_low": 0.3, "ci_high": 0.7}
                                      for s in ("factuality", "correctness")])
    notes = view_of(lake, "r").chance_notes(lake, "r")
    assert any(n.startswith("WARNING: gating stage 'factuality'") for n in notes)
    assert any(n.startswith("note: advisory stage 'correctness'") for n in notes)
    assert not any("WARNING" in n and "correctness" in n for n in notes)


def test_each_method_names_its_view(lake):
    _run(lake, "a", "no_filter", [])
    _run(lake, "b", "sdzero_self_verified", [])
    assert view_of(lake, "a") is get_view("cascade") and view_of(lake, "b") is get_view("sdzero")
    assert get_view("sdzero").label({"method": "sdzero", "sdzero": {"reward": "ground_truth"}}) == "sdzero (ground_truth)"
