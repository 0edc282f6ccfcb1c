"""The HTTP face: OpenAI's chat completions, models, feedback, metrics and health, on Starlette.

Every endpoint answers; none raises into the server. A refusal is an OpenAI error object with
its status (see :mod:`metamesh.gateway.errors`), counted by code; an unexpected exception is
logged, counted and answered 500. Handlers run on the node's event loop and await only the
backend; decisions and ratings are in-memory updates.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import TYPE_CHECKING, Any

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from metamesh.gateway.backends import Backend, BackendError
from metamesh.gateway.errors import ApiError
from metamesh.gateway.requests import parse_chat, parse_feedback, read_json, text_of
from metamesh.gateway.routing import RouteChoice
from metamesh.learners.prompts.decisions import Decision, DecisionForbidden, UnknownDecision

if TYPE_CHECKING:
    from metamesh.gateway.server import Gateway

__all__ = ["VIRTUAL_MODEL", "build_app"]

log = logging.getLogger(__name__)

VIRTUAL_MODEL = "metamesh"
DECISION_HEADER = "X-Metamesh-Decision"
CATEGORY_HEADER = "x-metamesh-category"
Handler = Callable[[Request], Awaitable[Response]]


class _Json(JSONResponse):
    def render(self, content: Any) -> bytes:
        return msgspec.json.encode(content)


def _error(err: ApiError) -> Response:
    return _Json(err.body(), status_code=err.status)


def build_app(gw: Gateway) -> Starlette:
    """The Starlette app of one gateway."""

    def endpoint(name: str, handler: Handler, *, auth: bool = True) -> Handler:
        async def run(request: Request) -> Response:
            try:
                if auth:
                    owner = gw.keys.owner(request.headers.get("authorization"))
                    if owner is None:
                        raise ApiError(
                            401, "invalid_api_key", "missing or wrong API key (Authorization: Bearer KEY)"
                        )
                    if not gw.limiter.allow(owner):
                        raise ApiError(429, "rate_limit_exceeded", f"key {owner!r} is over its rate limit")
                    request.state.owner = owner
                response = await handler(request)
            except ApiError as err:
                gw.metrics.error(err)
                response = _error(err)
            except Exception:
                log.exception("gateway %s failed; the node keeps serving", name)
                failed = ApiError(500, "internal_error", "the gateway failed on this request; see its log")
                gw.metrics.error(failed)
                response = _error(failed)
            gw.metrics.requests[(name, response.status_code)] += 1
            return response

        return run

    async def chat(request: Request) -> Response:
        doc = await read_json(request, gw.limits)
        req = parse_chat(doc, gw.limits, category_header=request.headers.get(CATEGORY_HEADER))
        decision: Decision | None = None
        if req.model == VIRTUAL_MODEL:
            last = max(i for i, m in enumerate(req.messages) if m["role"] == "user")
            text = text_of(req.messages[last]["content"])
            category = req.category or gw.decider.classifier.classify(text)
            route = gw.route(category, req.budget)
            backend = gw.backends[route.backend]
            decision, prompt = gw.decider.decide(text, owner=request.state.owner, category=category,
                                                 backend=backend.name if gw.router else "")  # fmt: skip
            req.messages[last] = {**req.messages[last], "content": prompt}
            gw.metrics.decisions[(decision.category, decision.strategy)] += 1
            gw.metrics.routes[(decision.category, backend.name)] += 1
        else:
            route = None
            found = gw.backends.get(req.model)
            if found is None:
                raise ApiError(
                    404, "model_not_found", f"no model {req.model!r}; see GET /v1/models", param="model"
                )
            backend = found
        headers = {DECISION_HEADER: decision.id} if decision is not None else {}
        if req.stream:
            chunks = await _first(backend, req.messages, req.params, gw)
            sse = _sse(chunks, decision, route, backend, gw)
            return StreamingResponse(sse, media_type="text/event-stream",
                                     headers={**headers, "Cache-Control": "no-cache"})  # fmt: skip
        try:
            doc = await backend.chat(req.messages, req.params, gw.timeout)
        except BackendError as exc:
            gw.metrics.backend_calls[(backend.name, "error")] += 1
            raise ApiError(exc.status, "backend_error", str(exc), param="model") from exc
        gw.metrics.backend_calls[(backend.name, "ok")] += 1
        doc["model"] = req.model
        if decision is not None and route is not None:
            gw.decider.store.with_answer(decision.id, text_of(doc["choices"][0]["message"].get("content")))
            doc["metamesh"] = _about(decision, route, gw, doc.get("usage"))
        return _Json(doc, headers=headers)

    async def models(request: Request) -> Response:
        created = int(gw.started)
        data = [{"id": VIRTUAL_MODEL, "object": "model", "created": created, "owned_by": "metamesh"}]
        data += [
            {"id": name, "object": "model", "created": created, "owned_by": "backend"} for name in gw.backends
        ]
        return _Json({"object": "list", "data": data})

    async def feedback(request: Request) -> Response:
        fb = parse_feedback(await read_json(request, gw.limits))
        try:
            decision, score = await gw.learner.rate(
                fb.decision_id, owner=request.state.owner, score=fb.score, reference=fb.reference
            )
        except UnknownDecision as exc:
            raise ApiError(404, "decision_not_found", str(exc), param="decision_id") from exc
        except DecisionForbidden as exc:
            raise ApiError(403, "decision_forbidden", str(exc), param="decision_id") from exc
        gw.metrics.ratings[(decision.category, decision.strategy)] += 1
        return _Json({"object": "feedback", "decision_id": decision.id, "accepted": True, "score": score,
                      "category": decision.category, "strategy": decision.strategy})  # fmt: skip

    async def metrics(request: Request) -> Response:
        return Response(gw.render_metrics(), media_type="text/plain; version=0.0.4; charset=utf-8")

    async def healthz(request: Request) -> Response:
        return _Json({"status": "ok", "node": gw.node_id, "backends": list(gw.backends),
                      "awaiting_feedback": len(gw.decider.store)})  # fmt: skip

    routes = [
        Route("/v1/chat/completions", endpoint("chat", chat), methods=["POST"]),
        Route("/v1/models", endpoint("models", models), methods=["GET"]),
        Route("/v1/feedback", endpoint("feedback", feedback), methods=["POST"]),
        Route("/metrics", endpoint("metrics", metrics, auth=False), methods=["GET"]),
        Route("/healthz", endpoint("healthz", healthz, auth=False), methods=["GET"]),
    ]
    return Starlette(routes=routes)


def _about(decision: Decision, route: RouteChoice, gw: Gateway, usage: Any) -> dict[str, Any]:
    usage = usage if isinstance(usage, dict) else {}
    explanation = gw.decider.explain(decision)
    if gw.router is not None:
        explanation += "; " + gw.router.explain(decision.category, route)
    return {
        "decision": decision.id,
        "category": decision.category,
        "strategy": decision.strategy,
        "explored": decision.explored,
        "explanation": explanation,
        "backend": route.backend,
        "route": {"explored": route.explored, "budget": route.budget},
        "cost": {
            "backend": route.cost,
            "prompt_tokens": usage.get("prompt_tokens"),
            "completion_tokens": usage.get("completion_tokens"),
        },
    }


async def _first(
    backend: Backend, messages: list[dict[str, Any]], params: dict[str, Any], gw: Gateway
) -> AsyncIterator[dict[str, Any]]:
    """The backend's stream, its first chunk already received: a backend that is down is a 502/504
    answer, not a broken stream."""
    stream = aiter(backend.stream(messages, params, gw.timeout))
    try:
        first = await anext(stream)
    except StopAsyncIteration:
        first = None
    except BackendError as exc:
        gw.metrics.backend_calls[(backend.name, "error")] += 1
        raise ApiError(exc.status, "backend_error", str(exc), param="model") from exc

    async def chain() -> AsyncIterator[dict[str, Any]]:
        if first is not None:
            yield first
        async for chunk in stream:
            yield chunk

    return chain()


async def _sse(
    chunks: AsyncIterator[dict[str, Any]],
    decision: Decision | None,
    route: RouteChoice | None,
    backend: Backend,
    gw: Gateway,
) -> AsyncIterator[bytes]:
    text: list[str] = []
    first = True
    try:
        async for received in chunks:
            chunk = received
            if first and decision is not None and route is not None:
                chunk = {**received, "metamesh": _about(decision, route, gw, None)}
            first = False
            for choice in chunk.get("choices") or ():
                delta = choice.get("delta") if isinstance(choice, dict) else None
                if isinstance(delta, dict) and isinstance(delta.get("content"), str):
                    text.append(delta["content"])
            yield b"data: " + msgspec.json.encode(chunk) + b"\n\n"
        gw.metrics.backend_calls[(backend.name, "ok")] += 1
    except BackendError as exc:
        gw.metrics.backend_calls[(backend.name, "error")] += 1
        err = ApiError(exc.status, "backend_error", str(exc), param="model")
        gw.metrics.error(err)
        yield b"data: " + msgspec.json.encode(err.body()) + b"\n\n"
    if decision is not None:
        gw.decider.store.with_answer(decision.id, "".join(text))
    yield b"data: [DONE]\n\n"
