"""The HTML run report, checked in a real headless browser where Debian's chromium is installed."""
import os
import shutil
import subprocess

import pytest

from tests.tiny_model import tiny_overrides


@pytest.fixture(scope="module")
def finished_run(tiny_model, prefect_harness, tmp_path_factory):
    from selfimprove.flows.svd import svd
    from selfimprove.warehouse import Lake

    lake = Lake(tmp_path_factory.mktemp("report-lake"))
    run = svd(preset="quickstart", lake=str(lake.root), overrides=tiny_overrides(tiny_model))["run_id"]
    return lake, run


def test_report_has_every_section_and_its_figures(finished_run, tmp_path):
    from selfimprove.flows.cli import main
    from selfimprove.reporting.method_views import funnel

    lake, run = finished_run
    assert main(["report", run, "--lake", str(lake.root), "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    for section in ("Run", "Funnel", "Accept rate per domain", "Judge quality", "Vote agreement", "Training",
                    "Held-out evaluation", "Example candidates"):
        assert f">{section}</h2>" in page
    # provenance first: what ran, its status, and how every stage was made
    assert page.index(">Run</h2>") < page.index(">Funnel</h2>") and "status completed" in page
    assert ">stages (how each was made)</h3>" in page and page.count("<td>computed</td>") >= 7
    # judge quality: every cascade stage with its role; the funnel in plain words
    for stage, role in (("agreement", "gates"), ("factuality", "advisory"), ("correctness", "advisory")):
        assert f"<td>{stage}</td><td>{role}</td>" in page
    assert "after not_judged" not in page and "another sample of the same question had already been accepted" in page
    assert "<th>votes per candidate</th>" in page  # the vote-agreement table says how many votes each stage had
    assert page.count("data:image/png;base64,") >= 3 and (tmp_path / "funnel.png").stat().st_size > 5000
    steps = {step: n for step, n, _ in funnel(lake, run)}
    assert steps["candidates"] == 24 and steps["training examples"] <= steps["candidates"]
    assert 'href="#' in page and "accepted" in page  # links to example candidates
    # examples come from different questions: no two accepted (or two rejected) ones share a seed
    from selfimprove.warehouse.views import query

    shown = [(seed, accepted) for cid, seed, accepted in query(lake, """SELECT candidate_id, seed_id, accepted FROM verdicts
             JOIN candidates USING (run_id, candidate_id) WHERE run_id = $r""", {"r": run})[1] if f'id="{cid}"' in page]
    assert shown and len(set(shown)) == len(shown)
    assert main(["report", "no-such-run", "--lake", str(lake.root), "--out", str(tmp_path / "x")]) == 2


def test_report_renders_in_headless_chromium(finished_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        assert not os.environ.get("SELFIMPROVE_REQUIRE_BROWSER"), "SELFIMPROVE_REQUIRE_BROWSER is set and chromium is missing"
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium); the HTML itself is checked above")
    from selfimprove.reporting.report import write_report

    lake, run = finished_run
    page = write_report(lake, run, tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1000,1400",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert ">Held-out evaluation</h2>" in dom and dom.count("<img") >= 3  # the browser parsed the whole page
    assert ">Run</h2>" in dom and ">Judge quality</h2>" in dom and "advisory" in dom
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 1400 and pixels.std() > 0.05  # a page with content, not a blank or error screen


def test_a_report_of_a_failed_run_says_so_at_the_top(finished_run, tmp_path, capsys):
    from selfimprove.flows.cli import main
    from selfimprove.warehouse.run_status import FAILED, set_status

    lake, run = finished_run
    try:
        set_status(lake, run, FAILED, "train", "RuntimeError: out of memory")
        assert main(["report", run, "--lake", str(lake.root), "--out", str(tmp_path)]) == 0
        page = (tmp_path / "report.html").read_text()
        assert 'class="warning">WARNING: this run is not completed: failed at stage train: RuntimeError: out of memory' in page
        assert f"run {run} is not completed (failed at stage train" in capsys.readouterr().err
    finally:
        set_status(lake, run, "completed")


def test_a_summary_a_report_and_compare_each_open_one_connection(finished_run, tmp_path, monkeypatch, capsys):
    """Views are built once per rendering: without the reading session each query opened its own connection
    (and listed every manifest and rebuilt every view)."""
    from selfimprove.flows.cli import main
    from selfimprove.reporting.summary import summary_items
    from selfimprove.warehouse import views

    lake, run = finished_run
    opened = []
    real = views.connect
    monkeypatch.setattr(views, "connect", lambda lk: opened.append(lk.location) or real(lk))
    summary_items(lake, run)
    without = len(opened)
    opened.clear()
    with views.reading(lake):
        assert summary_items(lake, run)
    assert len(opened) == 1 and without > 10
    for argv in (["report", run, "--out", str(tmp_path / "r")], ["compare", run]):
        opened.clear()
        assert main([*argv, "--lake", str(lake.root)]) == 0
        assert len(opened) == 1, argv
