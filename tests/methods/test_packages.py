"""A method package is its own files plus one registration: a package installed apart (an entry point in the group
`selfimprove.methods`) gets its config section and preset values, its lake table, its CLI option and its Prefect
parameter description, with no shared file edited."""
import os
import subprocess
import sys
import textwrap

PACKAGE = '''
from dataclasses import dataclass

import pyarrow as pa

from selfimprove.methods.registry import Method, MethodPackage, Option, register_method


@dataclass
class ToyConfig:
    """The toy flow's settings.

    Parameters:
        style: how the toy answers.
    """

    style: str = "plain"


PACKAGE = MethodPackage("toy", ToyConfig, "the toy flow", presets={"quickstart": {"style": "fancy"}},
                        flow_module="toy_method.flow",
                        tables={"toy_rows": pa.schema([("run_id", pa.string()), ("x", pa.int64())])},
                        options=(Option("style", ("toy", "style"), ("plain", "fancy"), "how the toy answers"),))
register_method(Method("toy", "toy", "a toy method", package=PACKAGE))
register_method(Method("toy_plain", "toy", "a toy method, plain", {"toy": {"style": "plain"}}, package=PACKAGE))
'''

CHECK = '''
from selfimprove import config
from selfimprove.flows.cli import build_parser
from selfimprove.flows.parameters import documented
from selfimprove.flows.pipeline import with_options
from selfimprove.methods import flow_module
from selfimprove.validation import InputError
from selfimprove.warehouse.schemas import TABLES

cfg = config.load("quickstart", method="toy")
print("section", cfg.toy.style, cfg.to_dict()["toy"])
print("table", TABLES["toy_rows"].names)
_, commands = build_parser()
print("cli", "--style {plain,fancy}" in commands["run"].format_help(), "toy" in commands["run"].format_help())
print("flow", flow_module("toy"), flow_module("svd"))
print("override", with_options("toy", None, None, {"style": "plain"}))
try:
    with_options("toy", "toy_plain", None, {"style": "fancy"})
except InputError as e:
    print("refused", e)


def toy(style: str | None = None) -> dict:
    """The toy flow."""


print("prefect", "how the toy answers. Empty: the config's." in documented("toy")(toy).__doc__)
'''


def test_a_method_package_installed_apart_joins_the_house_by_one_entry_point(tmp_path):
    (tmp_path / "toy_method").mkdir()
    (tmp_path / "toy_method" / "__init__.py").write_text(PACKAGE)
    dist = tmp_path / "toy_method-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: toy-method\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[selfimprove.methods]\ntoy = toy_method\n")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), os.environ.get("PYTHONPATH", "")])}
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(CHECK)], env=env, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 0, done.stderr[-3000:]
    lines = dict(line.split(" ", 1) for line in done.stdout.splitlines())
    assert lines["section"] == "fancy {'style': 'fancy'}"  # the preset's value for the package's section
    assert lines["table"] == "['run_id', 'x']"
    assert lines["cli"] == "True True"
    assert lines["flow"] == "toy_method.flow selfimprove.flows.svd"  # where `run toy` and rounds find its flow
    assert lines["override"] == "{'toy': {'style': 'plain'}}"
    assert "method toy_plain sets toy.style to plain, not fancy" in lines["refused"]
    assert lines["prefect"] == "True"


def test_without_the_entry_point_the_package_is_not_there(tmp_path):
    done = subprocess.run([sys.executable, "-c", "from selfimprove import config; print(hasattr(config.RunConfig(), 'toy'))"],
                          capture_output=True, text=True, timeout=300)
    assert done.stdout.strip() == "False", done.stderr[-2000:]


def test_the_lake_facade_sees_a_package_table_though_nothing_imported_a_method(lake):
    lake.write("seeds", "r", [{"seed_id": "s", "question": "1+1?", "answer": "2", "domain": "math"}])
    code = ("import sys, selfimprove; from selfimprove.warehouse.schemas import TABLES; "
            "r = selfimprove.open_lake(sys.argv[1]); print(r.table('privileged_info').columns, 'privileged_info' in TABLES)")
    done = subprocess.run([sys.executable, "-c", code, str(lake.root)], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("]")[0].count("'") == 16 and done.stdout.strip().endswith("True")  # its 8 columns, typed
