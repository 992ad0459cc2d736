"""`bench/quickstart.py --small` end to end (slow: two small quickstarts): it installs a commit and the working tree
apart, runs each into its own lake and pairs their held-out outputs. Against HEAD with a clean tree the base model's
greedy outputs must match item for item, which is what proves the pairing."""
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.slow
def test_the_quickstart_bench_compares_a_commit_with_the_working_tree(tmp_path):
    done = subprocess.run([sys.executable, str(ROOT / "bench" / "quickstart.py"), "--small", "--baseline", "HEAD",
                           "--out", str(tmp_path)], capture_output=True, text=True, timeout=1500, cwd=ROOT)
    assert done.returncode == 0, done.stderr[-2000:]
    out = done.stdout
    for stage in ("candidates", "judge", "train", "eval-base", "eval-tuned", "wall", "outside stages"):
        assert any(line.startswith(stage) for line in out.splitlines()), (stage, out)
    assert "base: +0.0 points [+0.0, +0.0] over 40 items; identical outputs on 40" in out, out
