"""How a model is prompted: its own chat template, or a plain-text format for base models.

- `chat`: the tokenizer's chat template, as the model's makers wrote it.
- `plain`: for a model whose tokenizer has no chat template (a base model). The template is the prompt
  file `plain_format.jinja`, versioned by content hash like every prompt: each user turn is
  `Question: …`, each assistant turn `Answer: …` ended by the EOS token, and the generation prompt is
  `Answer:`. The template is set on the tokenizer, so every path that renders messages (engines, SFT's
  rows, the distillers' contexts) renders them the same way, and a checkpoint trained from a base
  model carries the template it was trained with.
- `auto` (the default) picks `chat` when the tokenizer has a template, else `plain`.

Thinking (`sampling.thinking`): `on`/`off` set the template's `enable_thinking` switch where it has one
(Qwen3's does); `auto` leaves the template's default. Judges render with the switch off: a verdict
comes right after the prefix, so `choice_probs` reads the verdict token, not the start of a thought.

Verdict tokens: a probability judge reads P("Y") and P("N") as the next token after "[[". How a choice
tokenizes *after that prefix* is taken from the tokenizer itself. A choice of one token is read as is;
a choice of several tokens is read by its first token (`first_token` rule) when the choices' first
tokens differ; choices that share their first token cannot be told apart, and the run is refused.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from selfimprove.prompts import FOLDER as PROMPT_FOLDER
from selfimprove.validation import ModelError

FORMATS = ("auto", "chat", "plain")
THINKING = ("auto", "on", "off")
PLAIN_FILE = PROMPT_FOLDER / "plain_format.jinja"
THINKING_SWITCH = "enable_thinking"


def plain_template() -> str:
    return PLAIN_FILE.read_text()


def plain_hash() -> str:
    return hashlib.sha256(PLAIN_FILE.read_bytes()).hexdigest()[:12]


def stored_template(path: str | Path) -> str | None:
    """The chat template a checkpoint folder's tokenizer files carry, read without loading the tokenizer."""
    path = Path(path)
    jinja = path / "chat_template.jinja"
    if jinja.exists():
        return jinja.read_text()
    config = path / "tokenizer_config.json"
    if config.exists():
        template = json.loads(config.read_text()).get("chat_template")
        if isinstance(template, list):  # named templates: the default one
            template = next((t["template"] for t in template if t.get("name") == "default"), None)
        return template or None
    return None


def resolve(path: str | Path, requested: str = "auto") -> str:
    """`chat` or `plain` for this checkpoint; `auto` detects."""
    if requested not in FORMATS:
        raise ValueError(f"prompt_format must be one of {FORMATS}, got {requested!r}")
    if requested != "auto":
        return requested
    return "chat" if stored_template(path) else "plain"


def thinks(path: str | Path, thinking: str, requested: str = "auto") -> bool:
    """Whether samples of this checkpoint open with a thought that must close (`</think>`) before the answer."""
    if thinking not in THINKING:
        raise ValueError(f"thinking must be one of {THINKING}, got {thinking!r}")
    if thinking != "auto" or resolve(path, requested) == "plain":
        return thinking == "on"
    return THINKING_SWITCH in (stored_template(path) or "")  # a template with the switch thinks by default


def describe(path: str | Path, requested: str = "auto") -> dict:
    """What an engine's identity records of how it prompts this checkpoint."""
    kind = resolve(path, requested)
    template = plain_template() if kind == "plain" else stored_template(path) or ""
    return {"prompt_format": kind, "template_sha256": hashlib.sha256(template.encode()).hexdigest()[:12],
            "thinking_switch": THINKING_SWITCH in template}


def prepare(tokenizer, path: str | Path, requested: str = "auto"):
    """Give the tokenizer the template of the resolved format (plain: ours); one line when `chat` is asked of a
    tokenizer without a template."""
    kind = resolve(path, requested)
    if kind == "plain":
        tokenizer.chat_template = plain_template()
    elif not tokenizer.chat_template:
        raise ModelError(path, "prompt_format chat, but its tokenizer has no chat template "
                               "(use prompt_format plain or auto)")
    return tokenizer


def template_kwargs(tokenizer, thinking: str = "auto") -> dict:
    """The keyword arguments that carry the thinking setting into the template (none where it has no switch)."""
    if thinking == "auto" or THINKING_SWITCH not in (tokenizer.chat_template or ""):
        return {}
    return {THINKING_SWITCH: thinking == "on"}


def render(tokenizer, messages: list[dict], thinking: str = "auto", add_generation_prompt: bool = True) -> str:
    """The prompt text for `messages`. A template without a system role gets the system text at the head of
    the first user turn."""
    from jinja2.exceptions import TemplateError

    kwargs = template_kwargs(tokenizer, thinking)
    try:
        return tokenizer.apply_chat_template(messages, add_generation_prompt=add_generation_prompt, tokenize=False, **kwargs)
    except TemplateError:
        if not messages or messages[0]["role"] != "system" or len(messages) < 2:
            raise
        system, first, *rest = messages
        merged = [{**first, "content": f"{system['content']}\n\n{first['content']}"}, *rest]
        return tokenizer.apply_chat_template(merged, add_generation_prompt=add_generation_prompt, tokenize=False, **kwargs)


@dataclass(frozen=True)
class VerdictTokens:
    """How each verdict choice is read from the next-token distribution after the prefix."""

    ids: dict[str, int]  # the token whose probability stands for the choice
    pieces: dict[str, list[str]]  # the choice as this tokenizer splits it after the prefix
    rule: str  # single | first_token


def verdict_tokens(tokenizer, prefix: str, choices: list[str] | tuple[str, ...], where: str = "this tokenizer") -> VerdictTokens:
    """The token each choice is scored by, found by tokenizing `prefix + choice` after a fixed context."""
    context = "Answer: " + prefix
    base = tokenizer(context, add_special_tokens=False).input_ids
    pieces, ids = {}, {}
    for choice in choices:
        full = tokenizer(context + choice, add_special_tokens=False).input_ids
        if full[:len(base)] != base:
            raise ValueError(f"verdict choice {choice!r} merges with the prefix {prefix!r} in {where}: "
                             "probability judges cannot read it (use scoring: sample)")
        tail = full[len(base):]
        if not tail:
            raise ValueError(f"verdict choice {choice!r} has no tokens of its own in {where}")
        pieces[choice] = tokenizer.convert_ids_to_tokens(tail)
        ids[choice] = tail[0]
    if len(set(ids.values())) < len(ids):
        raise ValueError(f"verdict choices {list(choices)} share their first token in {where} "
                         f"({pieces}): probability judges cannot tell them apart (use scoring: sample)")
    rule = "single" if all(len(p) == 1 for p in pieces.values()) else "first_token"
    return VerdictTokens(ids, pieces, rule)
