"""Talking to a served model through the official `openai` client: bounded concurrency, retries, usage.

Shared by the `openai` backend (any OpenAI-compatible server, chat API) and the `vllm` backend
(its own `vllm serve` child, completions API on locally rendered prompts). Requests run
concurrently on an asyncio loop, at most `max_concurrency` in flight; the client retries 408,
409, 429, 5xx, timeouts and connection errors `max_retries` times with exponential backoff; a
request that still fails raises, and the stage turns its shard into error rows. The API key
is read from the environment variable named in the config, never from the config itself, and
is never logged or written.
"""
from __future__ import annotations

import asyncio
import os
from typing import Any, Awaitable, Callable, Sequence
from urllib.parse import urlparse

from .base import Counters


class ServerError(RuntimeError):
    """The server cannot do what was asked (it names the server)."""


class ServedClient:
    def __init__(self, base_url: str, api_key_env: str | None, timeout_s: float, max_retries: int,
                 max_concurrency: int, counters: Counters) -> None:
        self.base_url = base_url.rstrip("/")
        self.host = urlparse(self.base_url).hostname or ""  # identity: the host, not the port it listens on today
        self.api_key_env, self.timeout_s, self.max_retries = api_key_env, timeout_s, max_retries
        self.max_concurrency, self.counters = max_concurrency, counters

    def _client(self):
        from openai import AsyncOpenAI

        key = os.environ.get(self.api_key_env, "") if self.api_key_env else ""
        return AsyncOpenAI(base_url=self.base_url, api_key=key or "EMPTY", timeout=self.timeout_s,
                           max_retries=self.max_retries)

    def map(self, call: Callable[[Any, Any], Awaitable[Any]], items: Sequence, progress=None) -> list:
        """`await call(client, item)` for every item, at most `max_concurrency` at once; results in order."""
        async def run() -> list:
            gate = asyncio.Semaphore(self.max_concurrency)
            async with self._client() as client:
                async def one(item):
                    async with gate:
                        out = await call(client, item)
                    if progress:
                        progress(1)
                    return out
                return await asyncio.gather(*(one(item) for item in items))

        return asyncio.run(run()) if items else []

    def count_usage(self, response) -> None:
        usage = getattr(response, "usage", None)
        if usage is not None:
            self.counters.prompt_tokens += usage.prompt_tokens or 0
            self.counters.generated_tokens += usage.completion_tokens or 0

    def models(self) -> list[dict]:
        """What /v1/models reports (id, root, max_model_len where the server says), sorted by id."""
        async def run():
            async with self._client() as client:
                page = await client.models.list()
                return [m.model_dump() for m in page.data]

        try:
            found = asyncio.run(run())
        except Exception as e:  # noqa: BLE001 - named, not swallowed
            raise ServerError(f"OpenAI-compatible server at {self.base_url}: cannot list models ({type(e).__name__}: {e})") from None
        keep = ("id", "root", "owned_by", "max_model_len")
        return sorted(({k: m.get(k) for k in keep if m.get(k) is not None} for m in found), key=lambda m: m["id"])
