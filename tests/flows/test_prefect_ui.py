"""What a user sees of a run in the Prefect UI, read back through Prefect's API from a local server:
the stage lines in a flow run's logs, the artifacts and their descriptions, and a failed run's status."""
import pytest

from selfimprove.warehouse.views import query
from tests.tiny_model import tiny_overrides


def _flow_run_id(state) -> str:
    return str(state.state_details.flow_run_id)


def _logs(flow_run_id: str) -> list[str]:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import LogFilter, LogFilterFlowRunId
    from prefect.logging.handlers import APILogHandler

    APILogHandler().flush()  # logs travel to the API in batches
    with get_client(sync_client=True) as client:
        logs = client.read_logs(log_filter=LogFilter(flow_run_id=LogFilterFlowRunId(any_=[flow_run_id])), limit=200)
    return [log.message for log in logs]


def _artifacts(flow_run_id: str) -> list:
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId

    with get_client(sync_client=True) as client:
        return client.read_artifacts(artifact_filter=ArtifactFilter(flow_run_id=ArtifactFilterFlowRunId(any_=[flow_run_id])))


@pytest.fixture(scope="module")
def first_and_rerun(tiny_model, prefect_harness, tmp_path_factory):
    """A run, then a rerun of it from `train` the way the `svd-from-train` deployment starts one."""
    from selfimprove.flows.svd import svd
    from selfimprove.warehouse import Lake

    lake = Lake(tmp_path_factory.mktemp("ui-lake"))
    first = svd(preset="quickstart", lake=str(lake.root), overrides=tiny_overrides(tiny_model), return_state=True)
    first_run = first.result()["run_id"]
    rerun = svd(preset="quickstart", lake=str(lake.root), overrides=tiny_overrides(tiny_model), reuse=first_run,
                from_stage="train", return_state=True)
    return lake, first_run, rerun.result()["run_id"], _flow_run_id(rerun)


def test_a_reruns_logs_say_what_each_stage_did_and_where_reused_stages_came_from(first_and_rerun):
    lake, first_run, rerun, flow_run_id = first_and_rerun
    logs = _logs(flow_run_id)
    lines = {m.split("]")[0].lstrip("["): m for m in logs if m.startswith("[")}
    for stage in ("seeds", "candidates", "judge", "select", "contamination"):
        assert f"copied from run {first_run} (pinned by from_stage)" in lines[stage], lines.get(stage)
    for stage in ("train", "eval-base", "eval-tuned"):
        assert lines[stage].startswith(f"[{stage}] computed; version "), lines.get(stage)
    assert "rows: candidates 24" in lines["candidates"] and "0 model calls" in lines["candidates"]
    calls = int(lines["eval-base"].split(" model calls")[0].rsplit(" ", 1)[1].replace(",", ""))
    assert calls == 8  # one greedy call per held-out item
    # the lake says the same: the runs row names the reused run and the first recomputed stage
    assert query(lake, "SELECT reuse, from_stage, status, flow_run_id FROM runs WHERE run_id = $r", {"r": rerun})[1] == \
        [(first_run, "train", "completed", flow_run_id)]


def test_a_runs_artifacts_have_descriptions_provenance_and_training_progress(first_and_rerun):
    lake, first_run, rerun, flow_run_id = first_and_rerun
    artifacts = _artifacts(flow_run_id)
    keyed = {a.key: a for a in artifacts if a.key}
    assert {"run-summary", "run-stages", "verdicts-by-reason", "judge-telemetry", "run-sql"} <= set(keyed)
    assert all(a.description for a in artifacts), [a.key or a.type for a in artifacts if not a.description]
    summary = keyed["run-summary"].data
    assert f"reused run {first_run}: the stages before train are pinned" in summary
    assert "```" not in summary  # Markdown tables and paragraphs wrap; a code block would scroll sideways
    assert f"- **seeds**: how: copied from run {first_run} (pinned by from_stage); version: " in summary
    progress = [a for a in artifacts if a.type == "progress"]
    tuning = [a for a in progress if a.description.startswith("fine-tuning:")]
    assert tuning and tuning[0].data == 100.0 and "100% (" in tuning[0].description
    assert any(a.description.startswith("eval tuned: 100% (8 of 8 prompts)") for a in progress)


def test_a_failing_run_is_marked_failed_with_its_stage_and_reason(first_and_rerun, tiny_model, monkeypatch, capsys):
    from prefect.client.orchestration import get_client

    from selfimprove.flows.cli import main
    from selfimprove.flows.svd import svd

    lake, first_run, _, _ = first_and_rerun

    def broken(*args, **kwargs):
        raise RuntimeError("selection crashed (simulated)")

    monkeypatch.setattr("selfimprove.tasks.stages.select", broken)
    state = svd(preset="quickstart", lake=str(lake.root), overrides=tiny_overrides(tiny_model), cache=False,
                return_state=True)  # without the cache, so selection runs (and fails) instead of being copied
    assert state.is_failed()
    (run, status, stage, reason), = query(lake, "SELECT run_id, status, stage, reason FROM runs WHERE flow_run_id = $f",
                                          {"f": _flow_run_id(state)})[1]
    assert (status, stage, reason) == ("failed", "select", "RuntimeError: selection crashed (simulated)")
    with get_client(sync_client=True) as client:
        assert client.read_flow_run(_flow_run_id(state)).state.is_failed()
    assert any("failed: RuntimeError: selection crashed" in m for m in _logs(_flow_run_id(state)))
    assert main(["compare", first_run, run, "--lake", str(lake.root)]) == 0
    err = capsys.readouterr().err
    assert f"run {run} is not completed (failed at stage select: RuntimeError" in err and first_run not in err
