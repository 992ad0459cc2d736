"""A deterministic engine with no weights: the whole Backend interface in one screen.

For tests, examples and contributors. A `script(prompt_text, sample_index) -> str` writes each
completion; the default one answers two-number arithmetic (right on even sample indices, off by
one on odd ones, so agreement and ground-truth filters have something to separate) and gives
verdict prompts `[[Y]]` or `[[N]]` by a hash of the prompt. `choice_probs` is a fixed function of
the prompt text. Tokens are whitespace-separated words. Same inputs, same outputs, every time.
"""
from __future__ import annotations

import hashlib
import re
from typing import Callable

from .base import Backend, BackendConfig, Generation, prefixes_for, register_backend

Script = Callable[[str, int], str]
_SUM = re.compile(r"(-?\d+)\s*([+\-*])\s*(-?\d+)")
_OPTION = re.compile(r"^([A-J])\. (.+)$", re.MULTILINE)
_FUNCTION = re.compile(r"def (\w+)\(([^)]*)\):\s*\"\"\"Return ([\w +\-*]+?)\.\"\"\"")  # def f(a, b): """Return a + b."""


def _fraction(text: str) -> float:
    return int(hashlib.sha256(text.encode()).hexdigest()[:8], 16) / 0xFFFFFFFF


def default_script(prompt: str, k: int) -> str:
    """The last user turn's arithmetic, answered right on even k and off by one on odd k: as a boxed number, as
    the letter of the option that holds it (multiple choice), or as a function returning it (code)."""
    turn = prompt.rsplit("<|user|>", 1)[-1]
    if "[[Y]]" in turn:
        return "[[Y]]" if _fraction(f"{prompt}#{k}") < 0.7 else "[[N]]"
    function = _FUNCTION.search(turn)
    if function:
        name, args, body = function.groups()
        return f"```python\ndef {name}({args}):\n    return {body}{' + 1' if k % 2 else ''}\n```"
    m = _SUM.search(turn)
    if not m:
        return f"I cannot tell. \\boxed{{{k}}}"
    a, op, b = int(m.group(1)), m.group(2), int(m.group(3))
    value = a + b if op == "+" else a - b if op == "-" else a * b
    options = dict(_OPTION.findall(turn))
    if options:
        named = next((letter for letter, text in options.items() if text.strip() == str(value + (k % 2))), None)
        return f"{a} {op} {b} = {value + (k % 2)}. Answer: {named or 'A'}"
    return f"{a} {op} {b} = {value + (k % 2)}. The answer is \\boxed{{{value + (k % 2)}}}."


@register_backend("scripted")
class ScriptedBackend(Backend):

    def __init__(self, model_path="scripted", config: BackendConfig | None = None, script: Script | None = None) -> None:
        super().__init__(model_path, config or BackendConfig(kind="scripted"))
        self.script = script or default_script
        self.closed = False

    @classmethod
    def settings(cls, config: BackendConfig) -> dict:
        return {}

    def identity(self) -> dict:
        return {**super().identity(), "script": getattr(self.script, "__qualname__", repr(self.script))}

    def render(self, messages, assistant_prefix="", thinking="auto"):
        turns = "".join(f"<|{m['role']}|>\n{m['content']}\n" for m in messages)
        return f"{turns}<|assistant|>\n{assistant_prefix}"

    def count_tokens(self, text: str) -> int:
        return len(text.split())

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        self._check_open()
        out = []
        for messages, prefix in zip(prompts, prefixes_for(prompts, assistant_prefix)):
            text = self.render(messages, prefix)
            n = params.n
            gens = [self._cut(self.script(text, 0 if params.temperature <= 0 else k), params.max_new_tokens) for k in range(n)]
            out.append(gens)
            self.counters.generate_calls += 1
            self.counters.sequences += n
            self.counters.prompt_tokens += self.count_tokens(text) * n
            self.counters.generated_tokens += sum(g.n_tokens for g in gens)
            if progress:
                progress(1)
        return out

    @staticmethod
    def _cut(text: str, max_tokens: int) -> Generation:
        words = text.split()
        return Generation(text, len(words)) if len(words) <= max_tokens else Generation(" ".join(words[:max_tokens]), max_tokens)

    def choice_probs(self, prompts, assistant_prefix, choices):
        self._check_open()
        out = []
        for messages in prompts:
            text = self.render(messages, assistant_prefix)
            weights = [_fraction(f"{text}|{c}") + 1e-3 for c in choices]
            out.append({c: w / sum(weights) for c, w in zip(choices, weights)})
            self.counters.scored_prompts += 1
            self.counters.prompt_tokens += self.count_tokens(text)
        return out

    def close(self) -> None:
        self.closed = True

    def _check_open(self) -> None:
        if self.closed:
            raise RuntimeError("this backend was closed")
