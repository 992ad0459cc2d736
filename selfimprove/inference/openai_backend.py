"""Any OpenAI-compatible server (`vllm serve`, SGLang, a provider) through the official `openai` client.

`backend: {kind: openai, base_url: http://host:8000/v1, model: NAME, api_key_env: OPENAI_API_KEY}`.
- `generate`: the chat API with `n` and a per-request `seed` (`send_seed: false` for servers that
  refuse seeds, e.g. vLLM on CPU). An assistant prefix continues the assistant turn through
  vLLM's `continue_final_message`; a server without it fails with one line naming the server.
- `choice_probs`: one token with logprobs; on vLLM the choices' exact logprobs
  (`logprob_token_ids`), elsewhere the `top_logprobs` (a choice outside the top 20 counts as 0).
  A server that returns no logprobs fails with one clear line.
- `render` / `count_tokens` need the model's tokenizer: `tokenizer: <local folder>`; on a vLLM
  server without one, `count_tokens` asks its `/tokenize`.
- A model without a chat template (`prompt_format` plain, or auto with a template-less `tokenizer`) is prompted
  in selfimprove's plain format, rendered here and sent through the completions API; the choices' tokens are
  read after the prefix by the local tokenizer (`prompt_format.verdict_tokens`).
- Usage (prompt and completion tokens) from every response goes into the counters.
- Identity: the served model name, what /v1/models reports for it, and the base URL's host.
"""
from __future__ import annotations

import json
import math
import urllib.request

from .base import Backend, BackendConfig, Generation, LocalTokenizer, prefixes_for, register_backend
from .prompt_format import resolve as resolve_format
from .served import ServedClient, ServerError


@register_backend("openai")
class OpenAIBackend(Backend):
    loads_checkpoints = False

    def __init__(self, model_path, config: BackendConfig) -> None:
        super().__init__(model_path, config)
        self.check(config)
        o = config.openai
        self.client = ServedClient(o.base_url, o.api_key_env, o.timeout_s, o.max_retries, o.max_concurrency, self.counters)
        listed = self.client.models()  # asked once, now, while the server answers
        self._identity = self._described(listed, config, self.client.host)
        self.served = self._identity["served_model"]
        self.is_vllm = any(m.get("owned_by") == "vllm" for m in listed)  # then vLLM's extra request fields work
        self.tokenizer = None
        if config.openai.tokenizer:
            from .models import load_tokenizer

            self.tokenizer = load_tokenizer(config.openai.tokenizer, prompt_format=config.prompt_format)
        self.plain = self._identity["prompt_format"] == "plain"

    @classmethod
    def check(cls, config: BackendConfig) -> None:
        if not config.openai.base_url:
            raise ValueError("backend kind 'openai' needs openai.base_url (e.g. http://127.0.0.1:8000/v1)")
        if config.prompt_format == "plain" and not config.openai.tokenizer:
            raise ValueError("backend kind 'openai' with prompt_format plain renders prompts here: set "
                             "backend.openai.tokenizer to a local folder with the served model's tokenizer")

    @classmethod
    def describe(cls, model_path, config: BackendConfig) -> dict:
        o = config.openai
        client = ServedClient(o.base_url or "", o.api_key_env, o.timeout_s, 0, 1, None)
        return cls._described(client.models(), config, client.host)

    @classmethod
    def _described(cls, listed: list[dict], config: BackendConfig, host: str) -> dict:
        """The identity: the served model's name and /v1/models entry, the server's host (not its port)."""
        ids = [m["id"] for m in listed]
        name = config.openai.model or (ids[0] if len(ids) == 1 else None)
        if name is None:
            raise ServerError(f"OpenAI-compatible server at {config.openai.base_url} serves {ids}: "
                              "set backend.openai.model to one of them")
        match = [m for m in listed if m["id"] == name]
        if not match:
            raise ServerError(f"OpenAI-compatible server at {config.openai.base_url} serves {ids}, not {name!r}: "
                              "set backend.openai.model")
        plain = bool(config.openai.tokenizer) and resolve_format(config.openai.tokenizer, config.prompt_format) == "plain"
        return {"kind": cls.kind, "server": host, "served_model": name, "models": match[0],
                "send_seed": config.openai.send_seed,
                "prompt_format": "plain" if plain else "server chat template"}

    # -- the seam ----------------------------------------------------------------------------------
    def render(self, messages, assistant_prefix="", thinking="auto"):
        self._need_tokenizer("render a chat template")
        return LocalTokenizer.render(self, messages, assistant_prefix, thinking)

    def count_tokens(self, text: str) -> int:
        return len(self._tokenize(text))

    def generate(self, prompts, params, assistant_prefix="", progress=None):
        greedy = params.temperature <= 0
        n = 1 if greedy else params.n
        jobs = list(enumerate(zip(prompts, prefixes_for(prompts, assistant_prefix))))

        async def one(client, job):
            i, (messages, prefix) = job
            kwargs = self._request(messages, prefix, params.thinking)
            kwargs.update(n=n, max_tokens=params.max_new_tokens, temperature=max(params.temperature, 0.0),
                          top_p=1.0 if greedy else params.top_p)
            if self.config.openai.send_seed:
                kwargs["seed"] = params.seed * 1_000_003 + i
            if params.top_k > 0 and not greedy and self.is_vllm:
                kwargs.setdefault("extra_body", {})["top_k"] = params.top_k
            response = await self._create(client, kwargs)
            self.client.count_usage(response)
            texts = [(c.text if self.plain else c.message.content) or "" for c in sorted(response.choices, key=lambda c: c.index)]
            return [Generation(t, self._tokens_of(t, response, len(texts))) for t in texts]

        results = self.client.map(one, jobs, progress)
        self.counters.generate_calls += len(prompts)
        self.counters.sequences += sum(map(len, results))
        return [r * params.n for r in results] if greedy and params.n > 1 else results

    def choice_probs(self, prompts, assistant_prefix, choices):
        if self.plain:
            return self._plain_choice_probs(prompts, assistant_prefix, choices)
        ids = [self._choice_id(c) for c in choices] if self.is_vllm else None

        async def one(client, messages):
            kwargs = self._chat_kwargs(messages, assistant_prefix, "off")
            kwargs.update(max_tokens=1, temperature=0.0, logprobs=True, top_logprobs=20)
            if ids:
                kwargs.setdefault("extra_body", {})["logprob_token_ids"] = ids
            response = await self._create(client, kwargs)
            self.client.count_usage(response)
            content = (response.choices[0].logprobs.content or []) if response.choices[0].logprobs else []
            if not content:
                raise ServerError(f"OpenAI-compatible server at {self.client.base_url} returned no logprobs for "
                                  f"{self.served!r}: probability judges need a server that returns them")
            seen = {t.token: t.logprob for t in content[0].top_logprobs or []}
            seen.setdefault(content[0].token, content[0].logprob)
            return {c: math.exp(seen[c]) if c in seen else 0.0 for c in choices}

        out = self.client.map(one, list(prompts))
        self.counters.scored_prompts += len(prompts)
        return out

    def _plain_choice_probs(self, prompts, assistant_prefix, choices):
        """The completions API over prompts rendered here: the next token's top logprobs, each choice by the token
        the local tokenizer reads it with after the prefix."""
        ids = LocalTokenizer.verdict_ids(self, assistant_prefix, choices)
        shown = {c: self.tokenizer.decode([i]) for c, i in zip(choices, ids)}

        async def one(client, messages):
            kwargs = self._request(messages, assistant_prefix, "off")
            kwargs.update(max_tokens=1, temperature=0.0, logprobs=20)
            if self.is_vllm:
                kwargs.setdefault("extra_body", {})["logprob_token_ids"] = ids
            response = await self._create(client, kwargs)
            self.client.count_usage(response)
            logprobs = response.choices[0].logprobs
            top = (logprobs.top_logprobs or [{}])[0] if logprobs else {}
            if not top:
                raise ServerError(f"OpenAI-compatible server at {self.client.base_url} returned no logprobs for "
                                  f"{self.served!r}: probability judges need a server that returns them")
            return {c: math.exp(top[shown[c]]) if shown[c] in top else 0.0 for c in choices}

        out = self.client.map(one, list(prompts))
        self.counters.scored_prompts += len(prompts)
        return out

    # -- helpers -----------------------------------------------------------------------------------
    def _request(self, messages, prefix: str, thinking: str) -> dict:
        """A completions request with the prompt rendered here (plain format), else a chat request."""
        if self.plain:
            return {"model": self.served, "prompt": self.render(messages, prefix, thinking)}
        return self._chat_kwargs(messages, prefix, thinking)

    def _chat_kwargs(self, messages, prefix: str, thinking: str = "auto") -> dict:
        kwargs = {"model": self.served, "messages": list(messages)}
        if prefix:
            kwargs["messages"] = kwargs["messages"] + [{"role": "assistant", "content": prefix}]
            kwargs["extra_body"] = {"continue_final_message": True, "add_generation_prompt": False}
        if thinking != "auto" and self.is_vllm:  # the server's template reads the switch from chat_template_kwargs
            kwargs.setdefault("extra_body", {})["chat_template_kwargs"] = {"enable_thinking": thinking == "on"}
        return kwargs

    async def _create(self, client, kwargs):
        import openai

        try:
            if "prompt" in kwargs:
                return await client.completions.create(**kwargs)
            return await client.chat.completions.create(**kwargs)
        except openai.BadRequestError as e:
            if "continue_final_message" in str(kwargs.get("extra_body", {})):
                raise ServerError(f"OpenAI-compatible server at {self.client.base_url} cannot continue an assistant "
                                  f"turn (continue_final_message): {e.message}") from None
            raise

    def _tokens_of(self, text: str, response, n: int) -> int:
        """Tokens of one completion: counted by the local tokenizer, else the response's usage shared by its n."""
        if self.tokenizer is not None:
            return len(self.tokenizer(text, add_special_tokens=False).input_ids)
        usage = getattr(response, "usage", None)
        return round((usage.completion_tokens or 0) / max(1, n)) if usage else 0

    def _choice_id(self, choice: str) -> int:
        ids = self._tokenize(choice)
        if len(ids) != 1:
            raise ValueError(f"verdict choice {choice!r} is {len(ids)} tokens for {self.served!r}; a served model's "
                             "probability judge reads single-token choices (use scoring: sample)")
        return ids[0]

    def _tokenize(self, text: str) -> list[int]:
        """Token ids of `text`: the local tokenizer, else the vLLM server's /tokenize."""
        if self.tokenizer is not None:
            return self.tokenizer(text, add_special_tokens=False).input_ids
        if not self.is_vllm:
            self._need_tokenizer("count tokens")
        root = self.client.base_url.removesuffix("/v1")
        body = json.dumps({"model": self.served, "prompt": text, "add_special_tokens": False}).encode()
        req = urllib.request.Request(f"{root}/tokenize", body, {"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=self.config.openai.timeout_s) as r:
            return json.loads(r.read())["tokens"]

    def _need_tokenizer(self, what: str):
        if self.tokenizer is None:
            raise ServerError(f"backend kind 'openai' at {self.client.base_url}: to {what}, set backend.openai.tokenizer "
                              "to a local folder with the served model's tokenizer")
        return self.tokenizer
