"""The hostile-program battery: every attack contained and reported; the evaluator keeps going."""
import os
import signal
import socket
import threading
import uuid
from pathlib import Path

import pytest

from selfimprove.scoring.sandbox import SandboxConfig, SandboxError, _classify, launcher, run_program
from selfimprove.scoring.scorers import CodeScorer

CFG = SandboxConfig(timeout_s=3, memory_mb=512)
PROJECT_FILE = Path(__file__).resolve().parents[2] / "pyproject.toml"

ITEM = {"question": 'def add(a, b):\n    """Return a + b."""\n', "entry_point": "add",
        "tests": "def check(candidate):\n    assert candidate(2, 3) == 5\n    assert candidate(-1, 1) == 0\n"}


def fenced(code):
    return f"Here you go:\n```python\n{code}\n```\n"


FULL = {"netns", "nobody", "rlimits", "audit"}
BARE = SandboxConfig(timeout_s=10, memory_mb=512, audit_hook=False)  # every layer but the audit hook


def _full_isolation_possible() -> bool:
    """Root (so programs can run as nobody) and a kernel that gives us a network namespace."""
    import shutil
    import subprocess

    unshare = shutil.which("unshare")
    return os.geteuid() == 0 and unshare is not None and subprocess.run([unshare, "-rn", "true"]).returncode == 0


def test_a_launcher_is_found_and_says_what_it_isolates():
    isolation, argv, _ = launcher(CFG)
    assert "rlimits+audit" in isolation and "-I" in argv
    r = run_program("print(1)", CFG)
    assert r.layers == set(isolation.split("+")) and r.status == "passed"
    assert run_program("print(1)", BARE).layers == r.layers - {"audit"}


def test_every_layer_is_in_force_where_the_machine_allows_it():
    """A silent fallback to a weaker launcher (no network namespace, or not as nobody) fails here; on CI
    (root, unshare works) the full set is required."""
    if not _full_isolation_possible():
        assert not os.environ.get("CI"), "CI must run the sandbox with every layer: as root, with unshare -rn"
        pytest.skip("not root or no network namespace here: the full set cannot be had")
    assert run_program("print(1)", CFG).layers == FULL
    assert run_program("print(1)", BARE).layers == FULL - {"audit"}


def _need(layer):
    if layer not in run_program("print(1)", BARE).layers:
        pytest.skip(f"the {layer} layer is not available on this machine")


# with the audit hook off, each remaining layer must stop its attack on its own
def test_without_the_audit_hook_the_process_limit_stops_a_fork_bomb():
    _need("nobody")  # root ignores RLIMIT_NPROC
    bomb = ("import os\nforked = 0\nfor _ in range(200):\n    pid = os.fork()\n    if pid == 0:\n        os._exit(0)\n"
            "    forked += 1\n    os.waitpid(pid, 0)\nprint('forked', forked)\n")  # bounded, in case the limit is gone
    r = run_program(bomb, BARE)
    assert r.status == "failed" and "Resource temporarily unavailable" in r.detail, (r.status, r.detail, r.stdout)
    assert "forked" not in r.stdout


def test_without_the_audit_hook_the_network_namespace_stops_a_socket():
    _need("netns")
    r, got = _connect_to_a_listener(BARE)
    assert r.status == "failed" and got == [None], (r.status, r.detail)
    assert "unreachable" in r.detail or "refused" in r.detail, r.detail


def test_without_the_audit_hook_the_open_files_limit_holds():
    r = run_program("handles = [open(f'f{i}', 'w') for i in range(200)]\nprint(len(handles))\n", BARE)
    assert r.status == "failed" and "Too many open files" in r.detail, (r.status, r.detail)


def test_without_the_audit_hook_the_unprivileged_user_cannot_touch_our_files_or_processes(tmp_path):
    _need("nobody")
    shared = tmp_path / "shared"
    shared.mkdir()
    for p in (tmp_path, shared):
        p.chmod(0o755)
    ours = shared / "ours.txt"
    ours.write_text("root's file")
    ours.chmod(0o644)
    r = run_program(f"open({str(ours)!r}, 'a').write('pwned')\n", BARE)
    assert r.status == "failed" and "Permission denied" in r.detail, (r.status, r.detail)
    assert ours.read_text() == "root's file"
    r = run_program("import os\nos.kill(os.getppid(), 0)\n", BARE)  # signal 0: the permission check alone
    assert r.status == "failed" and "Operation not permitted" in r.detail, (r.status, r.detail)


def test_infinite_loop_is_killed_at_the_time_limit():
    r = run_program("while True:\n    pass\n", CFG)
    assert r.status == "timeout" and r.seconds < CFG.timeout_s + 3


def test_sleeping_forever_is_killed_by_the_wall_clock():
    r = run_program("import time\ntime.sleep(60)\n", CFG)
    assert r.status == "timeout" and r.seconds < CFG.timeout_s + 3


def test_fork_bomb_is_refused():
    r = run_program("import os\nwhile True:\n    os.fork()\n", CFG)
    assert r.status == "blocked" and "fork" in r.detail


def test_subprocesses_are_refused():
    r = run_program("import subprocess\nsubprocess.run(['true'])\n", CFG)
    assert r.status == "blocked"


def test_memory_balloon_is_stopped():
    # a wall clock far past what the balloon needs: on a slow CI machine the memory limit, not the clock, must stop it
    roomy = SandboxConfig(timeout_s=60, memory_mb=256)
    r = run_program("x = []\nwhile True:\n    x.append(bytearray(32 << 20))\n", roomy)
    assert r.status == "memory" and r.seconds < 60


def test_a_kill_the_sandbox_did_not_send_reads_as_memory():
    # the kernel's out-of-memory killer sends SIGKILL; the sandbox's own clock and the CPU limit read as timeout
    assert _classify(-signal.SIGKILL, False, "", "n", False)[0] == "memory"
    assert _classify(-signal.SIGKILL, True, "", "n", False)[0] == "timeout"
    assert _classify(-signal.SIGXCPU, False, "", "n", False)[0] == "timeout"


def test_writing_outside_its_dir_is_refused(tmp_path):
    target = Path("/tmp") / f"selfimprove-escape-{uuid.uuid4().hex}"
    r = run_program(f"open({str(target)!r}, 'w').write('pwned')\n", CFG)
    assert r.status == "blocked" and not target.exists()
    inside = run_program("open('scratch.txt', 'w').write('ok')\nprint(open('scratch.txt').read())\n", CFG)
    assert inside.status == "passed" and inside.stdout.strip() == "ok"


def test_reading_the_projects_files_is_refused():
    secret = PROJECT_FILE.read_text()[:40]
    r = run_program(f"print(open({str(PROJECT_FILE)!r}).read())\n", CFG)
    assert r.status == "blocked" and secret not in r.stdout
    listing = run_program(f"import os\nprint(os.listdir({str(PROJECT_FILE.parent)!r}))\n", CFG)
    assert listing.status == "blocked" and "pyproject" not in listing.stdout


def _connect_to_a_listener(cfg):
    """A program that connects to a socket we listen on: (its result, [whether we saw a connection])."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    server.settimeout(4)
    port = server.getsockname()[1]
    got = []
    t = threading.Thread(target=lambda: got.append(_accept(server)))
    t.start()
    r = run_program(f"import socket\ns = socket.create_connection(('127.0.0.1', {port}), timeout=2)\ns.sendall(b'hi')\n", cfg)
    t.join()
    server.close()
    return r, got


def test_opening_a_socket_is_refused():
    r, got = _connect_to_a_listener(CFG)
    assert r.status == "blocked" and got == [None]


def _accept(server):
    try:
        conn, _ = server.accept()
        conn.close()
        return "connected"
    except OSError:
        return None


def test_killing_its_parent_is_refused():
    r = run_program("import os, signal\nos.kill(os.getppid(), signal.SIGKILL)\n", CFG)
    assert r.status == "blocked"
    r = run_program("import os, signal\nos.killpg(os.getpgid(os.getppid()), signal.SIGTERM)\n", CFG)
    assert r.status == "blocked"
    assert os.getpid()  # we are still here


def test_native_code_is_refused():
    r = run_program("import ctypes\nctypes.CDLL(None).kill(1, 9)\n", CFG)
    assert r.status == "blocked"


def test_exiting_early_or_flooding_output_is_not_a_pass():
    assert run_program("import sys\nsys.exit(0)\nassert False\n", CFG).status == "failed"
    assert run_program("import os\nos._exit(0)\n", CFG).status == "crashed"
    flood = run_program("while True:\n    print('x' * 100000)\n", SandboxConfig(timeout_s=5, file_size_mb=1))
    assert flood.status == "output_limit"


def test_a_program_that_swallows_a_refusal_still_does_not_pass():
    r = run_program(f"try:\n    open({str(PROJECT_FILE)!r}).read()\nexcept Exception:\n    pass\n", CFG)
    assert r.status == "blocked"


def test_environment_is_scrubbed():
    os.environ["SELFIMPROVE_TEST_SECRET"] = "hunter2"
    try:
        r = run_program("import os\nprint(sorted(os.environ))\nprint(os.getcwd())\n", CFG)
    finally:
        del os.environ["SELFIMPROVE_TEST_SECRET"]
    assert r.status == "passed" and "SELFIMPROVE_TEST_SECRET" not in r.stdout and "si-box-" in r.stdout


def test_code_scorer_runs_the_whole_battery_and_keeps_scoring():
    hostile = ["while True:\n    pass", "import os\nwhile True:\n    os.fork()",
               "x = []\nwhile True:\n    x.append(bytearray(64 << 20))", f"open({str(PROJECT_FILE)!r}).read()",
               "import socket\nsocket.create_connection(('127.0.0.1', 9))",
               "import os, signal\nos.kill(os.getppid(), signal.SIGKILL)"]
    outputs = [fenced(f"def add(a, b):\n    {h.replace(chr(10), chr(10) + '    ')}") for h in hostile]
    outputs += [fenced("def add(a, b):\n    return a + b"), fenced("def add(a, b):\n    return a - b"),
                "    return a + b\n",  # a bare body completing the prompt: unfenced, no def -> no answer
                "no code at all"]
    scores = CodeScorer(sandbox=CFG).score_many(outputs, [ITEM] * len(outputs))
    reasons = [s.reason.split(":")[0] for s in scores]
    assert reasons[:6] == ["timeout", "blocked", "memory", "blocked", "blocked", "blocked"]
    assert [s.correct for s in scores[:6]] == [False] * 6
    assert scores[6].correct is True and scores[7].correct is False and reasons[7] == "failed"
    assert scores[8].reason == "no_answer" and scores[9].reason == "no_answer"


def test_an_unfenced_completion_of_the_prompt_is_run_with_the_prompt():
    s = CodeScorer(sandbox=CFG).score("def add(a, b):\n    return a + b\n", ITEM)
    assert s.correct is True


def test_a_sandbox_that_cannot_start_is_an_error_not_a_wrong_answer():
    broken = SandboxConfig(timeout_s=3, python="/nonexistent/python3")
    with pytest.raises(SandboxError):
        run_program("print(1)", broken)
    s = CodeScorer(sandbox=broken).score(fenced("def add(a, b):\n    return a + b"), ITEM)
    assert s.correct is None and s.reason.startswith("error:sandbox")
