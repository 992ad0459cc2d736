"""Runs inside the sandbox process (stdlib only, `python -I -S`): guard, then execute one program.

Usage: runner.py WORKDIR LIMITS_JSON (name -> [soft, hard]) audit|no-audit. Applies the rlimits, reads
WORKDIR/program.py, a nonce on stdin, installs an audit
hook (unless told no-audit) that refuses network, new processes, signals to other processes, native code and
any file access outside the work dir (reads of the interpreter's own standard library
excepted), then executes the program. The last stdout line is a JSON report carrying the
nonce, so a program that dies early cannot pass for one that finished.
"""
import json
import os
import resource
import sys
import sysconfig
import traceback

WORKDIR = os.path.realpath(sys.argv[1])
NONCE = sys.stdin.readline().strip()
with open(os.path.join(WORKDIR, "program.py"), encoding="utf-8") as f:
    SOURCE = f.read()
READ_ROOTS = tuple({os.path.realpath(p) for p in (sysconfig.get_paths()["stdlib"], sysconfig.get_paths()["platstdlib"])})
READ_FILES = ("/dev/null", "/dev/urandom", "/dev/zero")
BLOCKED_EVENTS = {
    "socket.__new__", "socket.connect", "socket.bind", "socket.getaddrinfo", "socket.sendto", "socket.gethostbyname",
    "os.fork", "os.forkpty", "os.posix_spawn", "os.spawn", "os.exec", "os.system", "subprocess.Popen",
    "os.kill", "os.killpg", "ctypes.dlopen", "ctypes.dlsym", "ctypes.cdata", "ctypes.call_function",
    "os.chmod", "os.chown", "os.link", "os.symlink", "os.truncate", "sys._current_frames", "resource.setrlimit",
}
PATH_EVENTS = {"os.remove", "os.rename", "os.rmdir", "os.mkdir", "os.listdir", "os.scandir", "shutil.rmtree", "os.utime"}
violations = []


class SandboxViolation(PermissionError):
    pass


def _inside(path, roots):
    real = os.path.realpath(path)
    return any(real == r or real.startswith(r + os.sep) for r in roots)


def _refuse(event, detail):
    violations.append(event)
    raise SandboxViolation(f"sandbox: {event} refused ({detail})")


def _hook(event, args):
    if event in BLOCKED_EVENTS:
        _refuse(event, str(args)[:80])
    if event == "import" and args and str(args[0]).split(".")[0] in ("ctypes", "_ctypes", "_posixsubprocess"):
        _refuse("import", args[0])
    if event == "open":
        path, mode = args[0], args[1] or "r"
        if isinstance(path, int):
            return
        if isinstance(path, bytes):
            path = os.fsdecode(path)
        writing = any(c in str(mode) for c in "wax+")
        if _inside(path, (WORKDIR,)) or (not writing and (_inside(path, READ_ROOTS) or path in READ_FILES)):
            return
        _refuse("open", f"{path!r} mode {mode!r}")
    if event in PATH_EVENTS:
        for path in args:
            if isinstance(path, (str, bytes)) and not _inside(os.fsdecode(path), (WORKDIR,)):
                _refuse(event, repr(path))


def report(status, detail=""):
    sys.stdout.flush()
    sys.__stdout__.write("\n" + json.dumps({"nonce": NONCE, "status": status, "detail": detail[-2000:],
                                            "violations": violations[:20]}) + "\n")
    sys.__stdout__.flush()


for name, (soft, hard) in json.loads(sys.argv[2]).items():
    resource.setrlimit(getattr(resource, name), (soft, hard))
os.chdir(WORKDIR)
if sys.argv[3:4] != ["no-audit"]:  # on unless told otherwise
    sys.addaudithook(_hook)
try:
    exec(compile(SOURCE, "program.py", "exec"), {"__name__": "__main__"})
except SandboxViolation as e:
    report("blocked", str(e))
except MemoryError:
    report("memory", "MemoryError")
except RecursionError:
    report("failed", "RecursionError")
except SystemExit as e:  # exiting before the tests finish is not passing them
    report("failed", f"exited early: SystemExit({e.code!r})")
except BaseException as e:  # noqa: BLE001 - every exception of the program is its failure
    report("failed", "".join(traceback.format_exception_only(type(e), e)).strip())
else:
    # a program that caught a refusal and went on still tried to leave its box: not a pass
    report("blocked", "refused: " + ", ".join(violations)) if violations else report("passed")
