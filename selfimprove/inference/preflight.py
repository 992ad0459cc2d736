"""The start-of-run model check: every model a run uses can render every prompt the run sends it.

For each model (the policy, the judge, a track's base), before anything is written: load its tokenizer
in the run's prompt format, render one prompt of each kind the run needs (a sample per domain, a judge
verdict with its prefix, a training row), and find the tokens its probability judges read. A model that
cannot serve the run gets one line naming it and the reason. What was found (format, thinking, verdict
tokens, the rendered prompts) is recorded in the run's config.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from selfimprove.inference import prompt_format as formats
from selfimprove.inference.models import load_tokenizer
from selfimprove.validation import ModelError

SHOWN_CHARS = 600  # of each rendered prompt, in the run's record


@dataclass
class PromptNeeds:
    """What a run will send a model: messages by kind, and whether probability judges read its verdict tokens."""

    samples: dict[str, list[dict]] = field(default_factory=dict)  # kind (e.g. sample:math) → messages
    judges: dict[str, list[dict]] = field(default_factory=dict)  # kind → messages, rendered with thinking off
    verdict_prefix: str | None = None  # set when a stage scores by probability
    verdict_choices: tuple[str, ...] = ("Y", "N")
    training: tuple[str, str] | None = None  # (user message, completion) of a chat training row


def check_model(model: str, path: str | Path, requested: str, thinking: str, needs: PromptNeeds) -> dict:
    """What the run will send `model`, rendered; ModelError (one line) when it cannot be."""
    tokenizer = load_tokenizer(path, prompt_format=requested)
    kind = formats.resolve(path, requested)
    shown: dict[str, str] = {}
    try:
        for name, messages in needs.samples.items():
            shown[name] = formats.render(tokenizer, messages, thinking)
        for name, messages in needs.judges.items():
            shown[name] = formats.render(tokenizer, messages, "off") + (needs.verdict_prefix or "")
    except Exception as e:  # noqa: BLE001 - a template's own errors (jinja, raise_exception) vary
        raise ModelError(model, f"its {kind} prompt format cannot render a {name} prompt "
                                f"({type(e).__name__}: {str(e).splitlines()[0][:160] if str(e) else ''})") from None
    record = {"model": model, "path": str(path), "prompt_format": kind, "thinking": thinking,
              "thinks": formats.thinks(path, thinking, requested),
              "eos_token": tokenizer.eos_token, "rendered": {k: v[-SHOWN_CHARS:] for k, v in shown.items()}}
    if needs.training:
        record["training_prefix_ok"] = _training_prefix(model, tokenizer, kind, thinking, *needs.training)
    if needs.verdict_prefix is not None:
        try:
            found = formats.verdict_tokens(tokenizer, needs.verdict_prefix, list(needs.verdict_choices), "its tokenizer")
        except ValueError as e:
            raise ModelError(model, str(e)) from None
        record["verdict_tokens"] = {c: found.pieces[c] for c in needs.verdict_choices}
        record["verdict_rule"] = found.rule
    return record


def _training_prefix(model: str, tokenizer, kind: str, thinking: str, prompt: str, completion: str) -> bool:
    """A training row masks its prompt by the prompt's rendering, so that rendering must begin the whole row's."""
    messages = [{"role": "user", "content": prompt}]
    head = formats.render(tokenizer, messages, thinking)
    whole = formats.render(tokenizer, messages + [{"role": "assistant", "content": completion}], thinking,
                           add_generation_prompt=False)
    if not whole.startswith(head):
        raise ModelError(model, f"its {kind} prompt format renders a training row that does not begin with the "
                                "prompt it samples from, so the loss could not be kept to the completion "
                                "(set backend.prompt_format plain, or fix the template)")
    return True
