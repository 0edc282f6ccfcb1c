"""The models behind a gateway: OpenAI-compatible servers, Ollama, and the managed local model.

A :class:`Backend` takes chat messages and returns an OpenAI chat-completion object, or streams
OpenAI chunk objects. ``--backend`` specs: ``openai:URL:MODEL`` (llama.cpp's server, vLLM, ...),
``ollama:MODEL`` (``OLLAMA_HOST`` sets the server) and ``local`` (the bundled SmolLM2 on a
llama.cpp server this process starts and stops). httpx errors are translated at this boundary
into :class:`BackendError`, which names the backend and carries the HTTP status the gateway
answers with: 502 for a backend that is down or answers nonsense, 504 for one that timed out.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import AsyncIterator
from typing import Any

import httpx

from metamesh.errors import ConfigError, MetameshError

__all__ = ["Backend", "BackendError", "OllamaBackend", "OpenAIBackend", "parse_backend"]

_OPENAI = re.compile(r"openai:(?P<url>https?://[^/\s:]+(?::\d+)?(?:/[^:\s]*)?):(?P<model>.+)\Z")
Message = dict[str, Any]


class BackendError(MetameshError):
    """A backend failed a request; ``status`` is 502 (down, bad answer) or 504 (timed out)."""

    def __init__(self, backend: str, message: str, *, status: int = 502) -> None:
        super().__init__(f"backend {backend}: {message}")
        self.backend = backend
        self.status = status


class Backend:
    """One model behind the gateway (an abstract base: see the implementations)."""

    name: str = "backend"
    model: str = ""

    async def start(self) -> None:
        """Get ready (start a managed server); the default does nothing."""

    async def chat(self, messages: list[Message], params: dict[str, Any], timeout: float) -> dict[str, Any]:
        raise NotImplementedError

    def stream(
        self, messages: list[Message], params: dict[str, Any], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        raise NotImplementedError

    async def aclose(self) -> None:
        """Release connections (and a managed server)."""


class OpenAIBackend(Backend):
    """``/chat/completions`` of an OpenAI-compatible server; ``OPENAI_API_KEY`` if it needs one."""

    def __init__(self, base_url: str, model: str, *, name: str | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.model = model
        self.name = name or model
        key = os.environ.get("OPENAI_API_KEY")
        headers = {"Authorization": f"Bearer {key}"} if key else {}
        self._client = httpx.AsyncClient(base_url=self.base_url, headers=headers)

    def _fail(self, exc: Exception, timeout: float) -> BackendError:
        if isinstance(exc, httpx.TimeoutException):
            return BackendError(self.name, f"{self.base_url} did not answer within {timeout:g} s", status=504)
        return BackendError(self.name, f"cannot reach {self.base_url}: {type(exc).__name__}")

    async def chat(self, messages: list[Message], params: dict[str, Any], timeout: float) -> dict[str, Any]:
        body = {**params, "model": self.model, "messages": messages, "stream": False}
        try:
            response = await self._client.post("/chat/completions", json=body, timeout=timeout)
        except httpx.HTTPError as exc:
            raise self._fail(exc, timeout) from exc
        if response.status_code >= 400:
            raise BackendError(self.name, f"answered {response.status_code}: {response.text[:200]}")
        try:
            doc = response.json()
            doc["choices"][0]["message"]
        except (ValueError, KeyError, IndexError, TypeError) as exc:
            raise BackendError(self.name, "sent no choices[0].message") from exc
        return dict(doc)

    async def stream(
        self, messages: list[Message], params: dict[str, Any], timeout: float
    ) -> AsyncIterator[dict[str, Any]]:
        body = {**params, "model": self.model, "messages": messages, "stream": True}
        try:
            async with self._client.stream("POST", "/chat/completions", json=body, timeout=timeout) as r:
                if r.status_code >= 400:
                    text = (await r.aread())[:200].decode(errors="replace")
                    raise BackendError(self.name, f"answered {r.status_code}: {text}")
                async for line in r.aiter_lines():
                    if not line.startswith("data:"):
                        continue
                    data = line[5:].strip()
                    if data == "[DONE]":
                        return
                    try:
                        yield dict(json.loads(data))
                    except (ValueError, TypeError) as exc:
                        raise BackendError(self.name, "sent a chunk that is not a JSON object") from exc
        except httpx.HTTPError as exc:
            raise self._fail(exc, timeout) from exc

    async def aclose(self) -> None:
        await self._client.aclose()


class OllamaBackend(OpenAIBackend):
    """Ollama, through its OpenAI-compatible ``/v1`` API (``OLLAMA_HOST`` sets the server)."""

    def __init__(self, model: str) -> None:
        host = os.environ.get("OLLAMA_HOST") or "http://127.0.0.1:11434"
        if "://" not in host:
            host = f"http://{host}"
        super().__init__(f"{host.rstrip('/')}/v1", model)


class LocalBackend(OpenAIBackend):
    """The bundled SmolLM2 on a llama.cpp server this process starts (``start``) and stops (``aclose``)."""

    def __init__(self) -> None:
        from metamesh.llm.local import MODEL_ALIAS, LocalModelServer

        self._server = LocalModelServer()
        super().__init__("http://127.0.0.1:0/v1", MODEL_ALIAS, name="local")

    async def start(self) -> None:
        await self._server.astart()
        self.base_url = f"{self._server.base_url.rstrip('/')}"
        if not self.base_url.endswith("/v1"):
            self.base_url += "/v1"
        await self._client.aclose()
        self._client = httpx.AsyncClient(base_url=self.base_url)

    async def aclose(self) -> None:
        await super().aclose()
        self._server.stop()


def parse_backend(spec: str) -> Backend:
    """A backend from ``openai:URL:MODEL``, ``ollama:MODEL`` or ``local``; ConfigError otherwise."""
    if spec == "local":
        return LocalBackend()
    if spec.startswith("ollama:") and len(spec) > len("ollama:"):
        return OllamaBackend(spec[len("ollama:") :])
    match = _OPENAI.match(spec)
    if match:
        return OpenAIBackend(match["url"], match["model"])
    raise ConfigError(f"unknown backend {spec!r}: use openai:URL:MODEL, ollama:MODEL or local")
