"""The HTML run report, checked in a real headless browser where Debian's chromium is installed."""
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
    from selfimprove.warehouse.report import funnel

    lake, run = finished_run
    assert main(["report", run, "--lake", str(lake.root), "--out", str(tmp_path)]) == 0
    page = (tmp_path / "report.html").read_text()
    for section in ("Funnel", "Accept rate per domain", "Vote agreement", "Training", "Held-out evaluation", "Example candidates"):
        assert f">{section}</h2>" in page
    assert page.count("data:image/png;base64,") >= 3 and (tmp_path / "funnel.png").stat().st_size > 5000
    steps = {step: n for step, n, _ in funnel(lake, run)}
    assert steps["candidates"] == 24 and steps["training examples"] <= steps["candidates"]
    assert 'href="#' in page and "accepted" in page  # links to example candidates
    assert main(["report", "no-such-run", "--lake", str(lake.root), "--out", str(tmp_path / "x")]) == 2


def test_report_renders_in_headless_chromium(finished_run, tmp_path):
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if not browser:
        pytest.skip("no chromium on this machine (Debian: apt-get install chromium); the HTML itself is checked above")
    from selfimprove.warehouse.report import write_report

    lake, run = finished_run
    page = write_report(lake, run, tmp_path)
    shot = tmp_path / "shot.png"
    subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", f"--screenshot={shot}", "--window-size=1000,1400",
                    page.as_uri()], check=True, capture_output=True, timeout=120)
    dom = subprocess.run([browser, "--headless", "--no-sandbox", "--disable-gpu", "--dump-dom", page.as_uri()],
                         check=True, capture_output=True, text=True, timeout=120).stdout
    assert ">Held-out evaluation</h2>" in dom and dom.count("<img") >= 3  # the browser parsed the whole page
    import matplotlib.image

    pixels = matplotlib.image.imread(shot)
    assert pixels.shape[0] == 1400 and pixels.std() > 0.05  # a page with content, not a blank or error screen
