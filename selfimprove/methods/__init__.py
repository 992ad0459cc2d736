"""Methods: the registry (`registry.py`) and the packages that register into it.

A method package registers its methods, its config section, its tables, its run options and its
view (`MethodPackage`); shared code asks the registry and names no method. Adding a package is one
entry in `PACKAGES_BUILT_IN`, or, for a package installed apart, one entry point in the group
`selfimprove.methods` (and, for its own flow, a deployment in prefect.yaml). Every package is loaded
here, before the run config assembles its sections.
"""
from __future__ import annotations

import importlib
import importlib.metadata

from selfimprove.methods.registry import (METHODS, PACKAGES, Method, MethodPackage, Option, TrainingText,  # noqa: F401
                                          default_method, flow_module, flows_of_command, get_method, methods_of_flow,
                                          options_of_flow, package_training_text, packages,
                                          register_method, tracked_flows)

PACKAGES_BUILT_IN = ("core", "sdzero", "opsd")

for _name in PACKAGES_BUILT_IN:
    importlib.import_module(f"{__name__}.{_name}")
for _entry in importlib.metadata.entry_points(group="selfimprove.methods"):
    _entry.load()
