"""Package discovery for pyproject.toml's layout: every package under selfimprove/, and the top-level layers
(flows/, tasks/, warehouse/, reporting/) with theirs, installed beneath `selfimprove` (see its package-dir)."""
from setuptools import find_packages, setup

LAYERS = ("flows", "tasks", "warehouse", "reporting")

setup(packages=find_packages(include=["selfimprove", "selfimprove.*"])
      + [f"selfimprove.{layer}" for layer in LAYERS]
      + [f"selfimprove.{layer}.{sub}" for layer in LAYERS for sub in find_packages(layer)])
