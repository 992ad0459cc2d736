"""The code sandbox: run one untrusted program in its own process, box and time budget.

Layers, applied together (each stops some attacks on its own):
- a fresh temp dir as working dir, HOME and TMPDIR; environment scrubbed; `python -I -S`;
- its own session, so on timeout the whole process group is killed;
- rlimits set before the program runs: CPU seconds, address space, file size (stdout and
  stderr go to files, so a print loop hits it too), open files, and no new processes;
- when we are root, the program runs as `nobody`, so it cannot write our files or signal us;
- a new network namespace (`unshare -rn`) where the kernel allows one;
- inside, an audit hook (`sandbox_runner.py`) that refuses sockets, new processes, signals,
  ctypes and any file access outside the box (`audit_hook=False` turns it off, so tests can
  check that each other layer holds on its own).

Which of the launchers works here is probed once per process; `isolation` on every result
says what was in force. A box that cannot start raises `SandboxError` (an infrastructure
error, never a wrong answer). The box protects the host; it does not make a program's own
report unforgeable to code that reads the interpreter's memory.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

from selfimprove.validation import AtLeast0, AtLeast1, Positive

RUNNER = Path(__file__).with_name("sandbox_runner.py")
NOBODY = 65534
STATUSES = ("passed", "failed", "blocked", "timeout", "memory", "output_limit", "crashed")


class SandboxError(RuntimeError):
    """The sandbox itself could not run (not the program's fault)."""


@dataclass(frozen=True)
class SandboxConfig:
    """Limits for one program run."""

    timeout_s: Positive = 10.0  # wall clock; the CPU limit is the same number of seconds, rounded up
    memory_mb: AtLeast1 = 1024  # address-space limit
    file_size_mb: AtLeast1 = 16  # largest file the program may write, its stdout and stderr included
    open_files: AtLeast1 = 64  # file descriptors a program may hold open (RLIMIT_NOFILE)
    python: str | None = None  # interpreter for programs; None = first of ours / system python3 that works
    network_namespace: bool = True  # use `unshare -rn` when it works here
    drop_privileges: bool = True  # when running as root, run programs as nobody
    audit_hook: bool = True  # the in-process guard; off only to test the other layers on their own
    workers: AtLeast0 = 0  # parallel programs in run_many; 0 = number of CPUs


@dataclass
class SandboxResult:
    status: str  # one of STATUSES
    detail: str
    stdout: str
    stderr: str
    seconds: float
    isolation: str  # what was in force, e.g. "netns+nobody+rlimits+audit"

    @property
    def layers(self) -> set[str]:
        return set(self.isolation.split("+"))


def _limits(cfg: SandboxConfig) -> dict:
    """Soft and hard limits; the CPU hard limit sits a second above the soft one, so running out of CPU time shows
    as SIGXCPU and a SIGKILL the sandbox did not send can only be the kernel's (out of memory)."""
    cpu = max(1, int(cfg.timeout_s + 0.999))
    fixed = {"RLIMIT_AS": cfg.memory_mb << 20, "RLIMIT_FSIZE": cfg.file_size_mb << 20, "RLIMIT_NOFILE": cfg.open_files,
             "RLIMIT_NPROC": 0, "RLIMIT_CORE": 0}
    return {"RLIMIT_CPU": [cpu, cpu + 1], **{name: [v, v] for name, v in fixed.items()}}


def _launch(argv: list[str], box: Path, out_dir: Path, cfg: SandboxConfig, as_nobody: bool, nonce: str, timeout: float):
    env = {"PATH": "/usr/bin:/bin", "HOME": str(box), "TMPDIR": str(box), "LANG": "C.UTF-8", "PYTHONHASHSEED": "0",
           "PYTHONDONTWRITEBYTECODE": "1"}
    user = {"user": NOBODY, "group": NOBODY, "extra_groups": []} if as_nobody else {}
    start = time.monotonic()
    with open(out_dir / "stdout", "wb") as out, open(out_dir / "stderr", "wb") as err:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err, cwd=box, env=env,
                                start_new_session=True, close_fds=True, **user)
        try:
            proc.stdin.write((nonce + "\n").encode())
            proc.stdin.close()
        except BrokenPipeError:
            pass
        timed_out = False
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            timed_out = True
        try:  # the whole group: children it managed to start die with it
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
    return proc.returncode, timed_out, time.monotonic() - start


def _tail(path: Path, limit: int = 64 << 10) -> str:
    with open(path, "rb") as f:
        f.seek(max(0, path.stat().st_size - limit))
        return f.read().decode("utf-8", "replace")


def _classify(rc: int, timed_out: bool, stdout: str, nonce: str, output_full: bool) -> tuple[str, str]:
    report = None
    for line in reversed(stdout.splitlines()):
        if line.startswith('{"nonce"'):
            try:
                data = json.loads(line)
            except json.JSONDecodeError:
                continue
            if data.get("nonce") == nonce:
                report = data
                break
    if timed_out or rc == -signal.SIGXCPU:
        return "timeout", "wall-clock or CPU limit reached; process group killed"
    if rc == -signal.SIGKILL:
        return "memory", "killed by the kernel (SIGKILL before any limit of the sandbox): out of memory"
    if rc == -signal.SIGXFSZ or (report is None and output_full):
        return "output_limit", "file-size limit reached (output or a file it wrote)"
    if report is None:
        return "crashed", f"exited with {rc} without finishing"
    return report["status"], report["detail"]


def _argv_variants(cfg: SandboxConfig) -> list[tuple[str, list[str], bool]]:
    pythons = [cfg.python] if cfg.python else list(dict.fromkeys(
        p for p in (getattr(sys, "_base_executable", None), sys.executable, shutil.which("python3"), "/usr/bin/python3")
        if p and Path(p).exists()))
    root = os.geteuid() == 0
    unshare = shutil.which("unshare") if cfg.network_namespace else None
    variants = []
    for ns in ([True, False] if unshare else [False]):
        for nobody in ([True, False] if root and cfg.drop_privileges else [False]):
            for py in pythons:
                prefix = [unshare, "-rn"] if ns else []
                label = "+".join(x for x, on in (("netns", ns), ("nobody", nobody), ("rlimits", True),
                                                 ("audit", cfg.audit_hook)) if on)
                variants.append((label, prefix + [py, "-I", "-S"], nobody))
    return variants


def _run(source: str, cfg: SandboxConfig, argv: list[str], as_nobody: bool, isolation: str) -> SandboxResult:
    box = Path(tempfile.mkdtemp(prefix="si-box-"))
    out_dir = Path(tempfile.mkdtemp(prefix="si-box-out-"))
    nonce = uuid.uuid4().hex
    try:
        (box / "program.py").write_text(source, encoding="utf-8")
        shutil.copyfile(RUNNER, box / "runner.py")  # readable by nobody wherever the package is installed
        if as_nobody:
            for p in (box, box / "program.py", box / "runner.py"):
                os.chown(p, NOBODY, NOBODY)
        # the runner gets its limits on the command line and applies them before the program runs
        cmd = argv + [str(box / "runner.py"), str(box), json.dumps(_limits(cfg)), "audit" if cfg.audit_hook else "no-audit"]
        rc, timed_out, seconds = _launch(cmd, box, out_dir, cfg, as_nobody, nonce, cfg.timeout_s)
        stdout, stderr = _tail(out_dir / "stdout"), _tail(out_dir / "stderr")
        full = max((out_dir / n).stat().st_size for n in ("stdout", "stderr")) >= cfg.file_size_mb << 20
        status, detail = _classify(rc, timed_out, stdout, nonce, full)
        visible = "\n".join(line for line in stdout.splitlines() if nonce not in line)
        return SandboxResult(status, detail, visible, stderr, round(seconds, 3), isolation)
    except OSError as e:
        raise SandboxError(f"could not start the sandbox: {e}") from e
    finally:
        shutil.rmtree(box, ignore_errors=True)
        shutil.rmtree(out_dir, ignore_errors=True)


@lru_cache(maxsize=8)
def launcher(cfg: SandboxConfig) -> tuple[str, tuple[str, ...], bool]:
    """The strongest launcher that runs a trivial program correctly on this machine: (its layers joined by '+',
    argv, runs as nobody). Weaker ones are tried only when a stronger one fails to start here."""
    tried = []
    for isolation, argv, nobody in _argv_variants(cfg):
        try:
            r = _run("print('ok')", cfg, argv, nobody, isolation)
        except SandboxError as e:
            tried.append(f"{isolation} {argv[-3]}: {e}")
            continue
        if r.status == "passed" and r.stdout.strip() == "ok":
            return isolation, tuple(argv), nobody
        tried.append(f"{isolation} {argv[-3]}: {r.status} {r.detail} {r.stderr[-200:]}")
    raise SandboxError("no sandbox launcher works on this machine:\n  " + "\n  ".join(tried))


def run_program(source: str, cfg: SandboxConfig = SandboxConfig()) -> SandboxResult:
    """Run `source` as a Python program in the box. Raises SandboxError only if the box fails."""
    isolation, argv, nobody = launcher(cfg)
    return _run(source, cfg, list(argv), nobody, isolation)


def run_many(sources: list[str], cfg: SandboxConfig = SandboxConfig()) -> list[SandboxResult | SandboxError]:
    """Run programs in parallel; a box that fails to start yields its SandboxError in place."""
    def one(src):
        try:
            return run_program(src, cfg)
        except SandboxError as e:
            return e

    with ThreadPoolExecutor(max_workers=cfg.workers or os.cpu_count() or 1) as pool:
        return list(pool.map(one, sources))
