"""LLM servers over HTTP: Ollama's API and OpenAI-compatible chat completions.

Both share one client with timeouts, bounded concurrency and retries with
exponential backoff and jitter on transient failures (connection errors, 429,
5xx); other 4xx are not retried. httpx errors are translated at this boundary
into the ``LLMError`` tree, with one clear line for a user.
"""

from __future__ import annotations

import asyncio
import logging
import os
import random
import time
from typing import Any

import httpx

from metamesh.errors import LLMResponseError, LLMUnavailable, ModelNotFound
from metamesh.llm.base import Completion, GenerateOptions

__all__ = ["OllamaLLM", "OpenAICompatibleLLM"]

log = logging.getLogger(__name__)
_RETRY_STATUS = frozenset({429, 500, 502, 503, 504})


class _HTTPBackend:
    """The shared machinery: one httpx client, a semaphore, retries."""

    what = "LLM server"

    def __init__(
        self,
        base_url: str,
        model: str,
        *,
        concurrency: int = 4,
        attempts: int = 3,
        backoff: float = 0.5,
        headers: dict[str, str] | None = None,
    ) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = model
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers or {})
        self._gate = asyncio.Semaphore(concurrency)
        self._attempts = attempts
        self._backoff = backoff

    async def _post(self, path: str, body: dict[str, Any], timeout: float) -> dict[str, Any]:
        return await self._call("POST", path, body, timeout)

    async def _call(
        self, method: str, path: str, body: dict[str, Any] | None, timeout: float
    ) -> dict[str, Any]:
        last: Exception | None = None
        for attempt in range(self._attempts):
            if attempt:
                await asyncio.sleep(self._backoff * 2 ** (attempt - 1) * (0.5 + random.random()))
            started = time.perf_counter()
            try:
                async with self._gate:
                    response = await self._client.request(method, path, json=body, timeout=timeout)
            except httpx.TimeoutException as exc:
                last = LLMUnavailable(f"{self.what} at {self.base_url} did not answer within {timeout:g} s")
                last.__cause__ = exc
                continue
            except httpx.TransportError as exc:
                last = LLMUnavailable(self._unreachable())
                last.__cause__ = exc
                continue
            # One line per request, at DEBUG: a node on a real model makes dozens a second.
            log.debug(
                "%s %s%s: %d in %.0f ms (attempt %d)",
                method,
                self.base_url,
                path,
                response.status_code,
                (time.perf_counter() - started) * 1000,
                attempt + 1,
            )
            if response.status_code in _RETRY_STATUS:
                last = LLMUnavailable(f"{self.what} at {self.base_url} answered {response.status_code}")
                continue
            self._check_status(response)
            try:
                doc = response.json()
            except ValueError as exc:
                raise LLMResponseError(
                    f"{self.what} at {self.base_url} sent a body that is not JSON"
                ) from exc
            if not isinstance(doc, dict):
                raise LLMResponseError(f"{self.what} at {self.base_url} sent JSON that is not an object")
            return doc
        assert last is not None
        raise last

    def _unreachable(self) -> str:
        return f"cannot reach {self.what} at {self.base_url}"

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code == 404:
            raise ModelNotFound(f"{self.what} at {self.base_url} has no model {self.model!r}")
        if response.status_code >= 400:
            raise LLMResponseError(
                f"{self.what} at {self.base_url} answered {response.status_code}: {response.text[:200]}"
            )

    async def aclose(self) -> None:
        await self._client.aclose()


class OllamaLLM(_HTTPBackend):
    """Ollama's ``/api/generate`` (non-streaming); ``OLLAMA_HOST`` sets the server."""

    what = "Ollama"

    def __init__(self, model: str, *, base_url: str | None = None, **kw: Any) -> None:
        host = base_url or os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"
        if "://" not in host:
            host = f"http://{host}"
        super().__init__(host, model, **kw)

    def _unreachable(self) -> str:
        return f"cannot reach Ollama at {self.base_url} - is `ollama serve` running?"

    def _check_status(self, response: httpx.Response) -> None:
        if response.status_code == 404 or (
            "not found" in response.text[:300].lower() and response.status_code >= 400
        ):
            raise ModelNotFound(f"Ollama has no model {self.model!r}; run `ollama pull {self.model}`")
        super()._check_status(response)

    async def check(self) -> None:
        """Fail early, with one clear line, if the server or the model is missing."""
        doc = await self._call("GET", "/api/tags", None, 10.0)
        names = {m.get("name") for m in doc.get("models", []) if isinstance(m, dict)}
        if self.model not in names and f"{self.model}:latest" not in names:
            raise ModelNotFound(f"Ollama has no model {self.model!r}; run `ollama pull {self.model}`")

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        o = options or GenerateOptions()
        start = time.perf_counter()
        doc = await self._post(
            "/api/generate",
            {
                "model": self.model,
                "prompt": prompt,
                "stream": False,
                "options": {"temperature": o.temperature, "num_predict": o.max_tokens, "stop": list(o.stop)},
            },
            o.timeout_s,
        )
        text = doc.get("response")
        if not isinstance(text, str):
            raise LLMResponseError(f"Ollama at {self.base_url} sent no 'response' text")
        return Completion(
            text=text,
            model=self.model,
            latency_s=time.perf_counter() - start,
            prompt_tokens=doc.get("prompt_eval_count"),
            completion_tokens=doc.get("eval_count"),
        )


class OpenAICompatibleLLM(_HTTPBackend):
    """``/v1/chat/completions`` of llama.cpp's server, vLLM and others.

    The URL is the API base, e.g. ``http://127.0.0.1:8080/v1``; an API key, if
    needed, comes from ``OPENAI_API_KEY`` and is never logged.
    """

    what = "OpenAI-compatible server"

    def __init__(self, base_url: str, model: str, **kw: Any) -> None:
        key = os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        super().__init__(base_url, model, headers=headers, **kw)

    async def check(self) -> None:
        doc = await self._call("GET", "/models", None, 10.0)
        ids = {m.get("id") for m in doc.get("data", []) if isinstance(m, dict)}
        if ids and self.model not in ids:
            raise ModelNotFound(
                f"{self.base_url} serves {', '.join(sorted(map(str, ids)))}, not {self.model!r}"
            )

    async def generate(self, prompt: str, *, options: GenerateOptions | None = None) -> Completion:
        o = options or GenerateOptions()
        start = time.perf_counter()
        doc = await self._post(
            "/chat/completions",
            {
                "model": self.model,
                "messages": [{"role": "user", "content": prompt}],
                "temperature": o.temperature,
                "max_tokens": o.max_tokens,
                **({"stop": list(o.stop)} if o.stop else {}),
            },
            o.timeout_s,
        )
        try:
            text = doc["choices"][0]["message"]["content"]
        except (KeyError, IndexError, TypeError) as exc:
            raise LLMResponseError(f"{self.base_url} sent no choices[0].message.content") from exc
        if not isinstance(text, str):
            raise LLMResponseError(f"{self.base_url} sent a non-text message content")
        raw_usage = doc.get("usage")
        usage: dict[str, Any] = raw_usage if isinstance(raw_usage, dict) else {}
        return Completion(
            text=text,
            model=self.model,
            latency_s=time.perf_counter() - start,
            prompt_tokens=usage.get("prompt_tokens"),
            completion_tokens=usage.get("completion_tokens"),
        )
