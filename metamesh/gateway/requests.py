"""Reading an application's request bodies: bounded in size, checked field by field.

Untrusted input is reported, never asserted on: each check raises an
:class:`~metamesh.gateway.errors.ApiError` (400) naming the field at fault.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import msgspec
from starlette.requests import Request

from metamesh.gateway.errors import ApiError

__all__ = ["ChatRequest", "Feedback", "Limits", "parse_chat", "parse_feedback", "read_json"]

#: Parameters passed on to the backend as given (after their type is checked).
_NUMBERS = ("temperature", "top_p", "presence_penalty", "frequency_penalty")
_ROLES = frozenset({"system", "user", "assistant", "tool", "developer"})


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """What one request may ask for."""

    max_body_bytes: int = 1 << 20
    max_messages: int = 256
    max_tokens: int = 4096
    max_chars: int = 200_000
    """Characters of message content in one request (a token is 3-4 characters)."""


@dataclass(slots=True, kw_only=True)
class ChatRequest:
    model: str
    messages: list[dict[str, Any]]
    stream: bool = False
    params: dict[str, Any] = field(default_factory=dict)
    category: str | None = None
    budget: float | None = None
    """The request's cost budget for routing (``metadata.budget``, a number as a string)."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Feedback:
    decision_id: str
    score: float | None
    reference: str | None


def _bad(param: str, message: str) -> ApiError:
    return ApiError(400, "invalid_request_error", message, param=param)


async def read_json(request: Request, limits: Limits) -> dict[str, Any]:
    """The body as a JSON object, refusing more than ``max_body_bytes`` (413) before reading it all."""
    declared = request.headers.get("content-length")
    too_big = ApiError(413, "request_too_large", f"request body exceeds {limits.max_body_bytes} bytes")
    if declared is not None and declared.isdigit() and int(declared) > limits.max_body_bytes:
        raise too_big
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limits.max_body_bytes:
            raise too_big
        chunks.append(chunk)
    try:
        doc = msgspec.json.decode(b"".join(chunks))
    except msgspec.DecodeError as exc:
        raise _bad("body", f"the body is not valid JSON: {str(exc)[:120]}") from exc
    if not isinstance(doc, dict):
        raise _bad("body", "the body must be a JSON object")
    return doc


def text_of(content: Any) -> str:
    """A message's text: a string, or the text parts of a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def parse_chat(doc: dict[str, Any], limits: Limits, *, category_header: str | None) -> ChatRequest:
    model = doc.get("model")
    if not isinstance(model, str) or not model:
        raise _bad("model", "'model' must be a non-empty string (see GET /v1/models)")
    messages = doc.get("messages")
    if not isinstance(messages, list) or not messages:
        raise _bad("messages", "'messages' must be a non-empty array of {role, content} objects")
    if len(messages) > limits.max_messages:
        raise _bad("messages", f"at most {limits.max_messages} messages per request")
    chars = 0
    for i, m in enumerate(messages):
        if not isinstance(m, dict) or m.get("role") not in _ROLES:
            raise _bad(f"messages[{i}].role", f"messages[{i}] needs a role among {', '.join(sorted(_ROLES))}")
        content = m.get("content")
        if not isinstance(content, (str, list)) and not (content is None and m["role"] == "assistant"):
            raise _bad(f"messages[{i}].content", f"messages[{i}].content must be a string or content parts")
        chars += len(text_of(content))
    if chars > limits.max_chars:
        raise _bad("messages", f"the messages hold more than {limits.max_chars} characters")
    if not any(m["role"] == "user" for m in messages):
        raise _bad("messages", "at least one message must have the role 'user'")
    stream = doc.get("stream", False)
    if not isinstance(stream, bool):
        raise _bad("stream", "'stream' must be true or false")
    params: dict[str, Any] = {}
    for name in _NUMBERS:
        value = doc.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise _bad(name, f"'{name}' must be a number")
            params[name] = value
    for name in ("max_tokens", "max_completion_tokens"):
        value = doc.get(name)
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= limits.max_tokens:
                raise _bad(name, f"'{name}' must be an integer in 1..{limits.max_tokens}")
            params["max_tokens"] = value
    params.setdefault("max_tokens", min(512, limits.max_tokens))
    stop = doc.get("stop")
    if stop is not None:
        if isinstance(stop, str):
            stop = [stop]
        if not isinstance(stop, list) or len(stop) > 4 or not all(isinstance(s, str) for s in stop):
            raise _bad("stop", "'stop' must be a string or up to 4 strings")
        params["stop"] = stop
    seed = doc.get("seed")
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int):
            raise _bad("seed", "'seed' must be an integer")
        params["seed"] = seed
    metadata = doc.get("metadata")
    if metadata is not None and not isinstance(metadata, dict):
        raise _bad("metadata", "'metadata' must be an object of strings")
    category = (metadata or {}).get("category", category_header)
    if category is not None and (not isinstance(category, str) or not 0 < len(category) <= 64):
        raise _bad("metadata.category", "'metadata.category' must be a string of 1 to 64 characters")
    budget = _budget((metadata or {}).get("budget"))
    return ChatRequest(model=model, messages=messages, stream=stream, params=params,
                       category=category.lower() if category else None, budget=budget)  # fmt: skip


def _budget(value: object) -> float | None:
    if value is None:
        return None
    budget = -1.0
    if isinstance(value, (str, int, float)) and not isinstance(value, bool):
        with contextlib.suppress(ValueError):
            budget = float(value)
    if not 0.0 <= budget < float("inf"):
        raise _bad("metadata.budget", "'metadata.budget' must be a number >= 0 (as a string, e.g. \"2.5\")")
    return budget


def parse_feedback(doc: dict[str, Any]) -> Feedback:
    decision = doc.get("decision_id")
    if not isinstance(decision, str) or not decision:
        raise _bad("decision_id", "'decision_id' must be the id a completion returned (X-Metamesh-Decision)")
    given = [k for k in ("score", "thumbs", "reference") if doc.get(k) is not None]
    if len(given) != 1:
        raise _bad("score", "give exactly one of 'score' (0..1), 'thumbs' ('up'/'down') or 'reference'")
    score = doc.get("score")
    thumbs = doc.get("thumbs")
    reference = doc.get("reference")
    if score is not None and (
        isinstance(score, bool) or not isinstance(score, (int, float)) or not 0.0 <= score <= 1.0
    ):
        raise _bad("score", "'score' must be a number in [0, 1]")
    if thumbs is not None:
        if thumbs not in ("up", "down"):
            raise _bad("thumbs", "'thumbs' must be 'up' or 'down'")
        score = 1.0 if thumbs == "up" else 0.0
    if reference is not None and (not isinstance(reference, str) or len(reference) > 10_000):
        raise _bad("reference", "'reference' must be a string (the right answer) of at most 10000 characters")
    return Feedback(decision_id=decision, score=None if score is None else float(score), reference=reference)
