from selfimprove.verification.calibration import best_threshold, calibration_stages, recommend
from selfimprove.verification.judges import StageConfig
from selfimprove.verification.telemetry import auroc, stage_metrics


def test_auroc_matches_pairwise_definition():
    scores = [0.1, 0.4, 0.35, 0.8, 0.4]
    labels = [False, False, True, True, True]
    pairs = [(p, n) for p, y in zip(scores, labels) if y for n, z in zip(scores, labels) if not z]
    want = sum((p > n) + 0.5 * (p == n) for p, n in pairs) / len(pairs)
    assert auroc(scores, labels) == want
    assert auroc([1, 2], [True, True]) is None


def test_best_threshold_separates():
    assert best_threshold([0.1, 0.2, 0.7, 0.9], [False, False, True, True]) == 0.7


def synthetic(n=60):
    """An agreement stage that tracks correctness and a judge that says Y at random."""
    judgments, labels = [], {}
    for i in range(n):
        cid, correct = f"c{i}", i % 3 == 0
        labels[cid] = correct
        share = 0.75 if correct else 0.25
        judgments.append({"candidate_id": cid, "stage": "agreement", "call": "agreement", "model_call": False, "decision": "Y" if share >= 0.5 else "N",
                          "p_yes": share, "vote_index": 0})
        judgments.append({"candidate_id": cid, "stage": "correctness", "call": "verdict", "model_call": True, "decision": "Y" if i % 2 else "N",
                          "p_yes": 0.9 if i % 2 else 0.1, "vote_index": 0})
    return judgments, labels


def test_recommend_keeps_signal_and_drops_chance():
    stages = [StageConfig("agreement", threshold=0.5, gate=False), StageConfig("correctness", scoring="probability", gate=False)]
    judgments, labels = synthetic()
    verdicts = [{"candidate_id": c, "accepted": True} for c in labels]
    metrics = stage_metrics(judgments, verdicts, stages, labels)
    by = {(m["stage"], m["metric"]): m for m in metrics}
    assert by[("agreement", "auroc")]["value"] == 1.0 and by[("agreement", "precision")]["value"] == 1.0
    assert by[("correctness", "auroc")]["ci_low"] < 0.5 < by[("correctness", "auroc")]["ci_high"]
    chosen, notes = recommend(metrics, judgments, labels, stages)
    assert [c["strategy"] for c in chosen] == ["agreement"]
    assert any(n.startswith("correctness") and "left out" in n for n in notes)


def test_calibration_stages_are_all_advisory():
    stages = calibration_stages()
    assert {s.strategy for s in stages} >= {"agreement", "cycle_consistency", "factuality", "correctness"}
    assert not any(s.gate for s in stages)


def test_calibrate_flow_on_tiny_model(tiny_model, lake, prefect_harness):
    from selfimprove.flows.calibrate import calibrate
    from selfimprove.warehouse.views import query

    result = calibrate(model=str(tiny_model), seeds_size=4, lake=str(lake.root),
                       overrides={"sampling": {"n": 3, "max_new_tokens": 12}, "backend": {"dtype": "float32"}})
    run = result["run_id"]
    (judged,), = query(lake, f"SELECT count(*) FROM verdicts WHERE run_id = '{run}' AND rejected_at_stage IS DISTINCT FROM 'format'")[1]
    assert judged > 0
    # every verifier ran on every candidate that passed the format filter (all advisory, all_valid)
    per_stage = query(lake, f"SELECT stage, count(DISTINCT candidate_id) FROM judgments WHERE run_id = '{run}' GROUP BY 1")[1]
    assert dict(per_stage) == {s.name: judged for s in calibration_stages()}
    assert query(lake, f"SELECT count(*) FROM judge_metrics WHERE run_id = '{run}' AND metric = 'base_precision'")[1] == [(5,)]
    assert "recommended cascade" in result["summary"]


def test_a_judge_redundant_after_agreement_is_left_out():
    """The judge alone tracks correctness (it says Y to every agreeing candidate), but among the
    candidates that agreement keeps it adds nothing: it is not recommended."""
    judgments, labels = [], {}
    for i in range(90):
        cid, correct, agrees = f"c{i}", i % 3 == 0, i % 3 == 0 or i % 9 == 1
        labels[cid] = correct
        judgments.append({"candidate_id": cid, "stage": "agreement", "call": "agreement", "model_call": False, "p_yes": 0.75 if agrees else 0.25,
                          "decision": "Y" if agrees else "N", "vote_index": 0})
        p = 0.9 if agrees else 0.1
        judgments.append({"candidate_id": cid, "stage": "correctness", "call": "verdict", "model_call": True, "p_yes": p,
                          "decision": "Y" if p > 0.5 else "N", "vote_index": 0})
    stages = [StageConfig("agreement", threshold=0.5, gate=False), StageConfig("correctness", scoring="probability", gate=False)]
    metrics = stage_metrics(judgments, [], stages, labels)
    assert {m["stage"]: m["ci_low"] for m in metrics if m["metric"] == "auroc"}["correctness"] > 0.5
    chosen, notes = recommend(metrics, judgments, labels, stages)
    assert [c["strategy"] for c in chosen] == ["agreement"]
    assert any(n.startswith("correctness") and "left out" in n for n in notes)
