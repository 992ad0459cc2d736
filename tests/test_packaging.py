"""The installed distribution carries one name, and the library imports no orchestrator."""
import subprocess
import sys
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_the_wheel_has_one_top_level_name_and_every_package(tmp_path):
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path),
                    str(ROOT)], check=True, capture_output=True, timeout=300)
    (wheel,) = tmp_path.glob("selfimprove-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith((".dist-info", ".data"))}
    assert tops == {"selfimprove"}
    for folder in ("flows", "tasks", "warehouse", "reporting", "reporting/views"):  # installed under the one name,
        assert f"selfimprove/{folder}/__init__.py" in names, folder  # their own packages found by setup.py
    source_packages = {str(p.parent.relative_to(ROOT / "selfimprove")) for p in (ROOT / "selfimprove").rglob("__init__.py")}
    for package in source_packages:
        prefix = "selfimprove/" if package == "." else f"selfimprove/{package}/"
        assert f"{prefix}__init__.py".replace("/./", "/") in names, package
    assert "selfimprove/prompts/cycle_infer.txt" in names
    (top,) = [n for n in names if n.endswith("top_level.txt")] or [None]
    if top:
        assert zipfile.ZipFile(wheel).read(top).decode().split() == ["selfimprove"]


def test_the_library_imports_no_orchestrator_and_sets_no_prefect_settings():
    code = (
        "import importlib, os, pkgutil, sys\n"
        "import selfimprove\n"
        "skip = ('selfimprove.flows', 'selfimprove.tasks', 'selfimprove.warehouse', 'selfimprove.scoring.sandbox_runner')\n"
        "for m in pkgutil.walk_packages(selfimprove.__path__, 'selfimprove.'):\n"
        "    if not m.name.startswith(skip):\n"
        "        importlib.import_module(m.name)\n"
        "assert 'prefect' not in sys.modules, 'prefect imported'\n"
        "assert not [k for k in os.environ if k.startswith('PREFECT_') and k not in BEFORE], 'PREFECT_ variable set'\n"
        "print(len([m for m in sys.modules if m.startswith('selfimprove.')]))\n"
    )
    env_keys = "BEFORE = set(__import__('os').environ)\n"
    out = subprocess.run([sys.executable, "-c", env_keys + code], capture_output=True, text=True, timeout=300, cwd="/")
    assert out.returncode == 0, out.stderr[-2000:]
    assert int(out.stdout.split()[-1]) > 20  # it did import the whole library
