"""A fast, deterministic OpenAI-compatible backend for gateway tests and the bench, and helpers.

``echo_app`` answers every chat completion at once with "echo: " and the last user message
(streaming: one chunk per word), so a test is about the gateway, not a model. ``serve_app``
runs a Starlette app with uvicorn on this loop on a free loopback port until the context exits.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import socket
import time
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

MODEL = "echo"


def _last_user(doc: dict) -> str:
    return next(m["content"] for m in reversed(doc["messages"]) if m["role"] == "user")


async def _chat(request: Request) -> Response:
    doc = json.loads(await request.body())
    text = "echo: " + _last_user(doc)
    created = int(time.time())
    if not doc.get("stream"):
        return JSONResponse(
            {
                "id": "chatcmpl-echo",
                "object": "chat.completion",
                "created": created,
                "model": MODEL,
                "choices": [
                    {"index": 0, "message": {"role": "assistant", "content": text}, "finish_reason": "stop"}
                ],
                "usage": {
                    "prompt_tokens": len(text.split()),
                    "completion_tokens": len(text.split()),
                    "total_tokens": 2 * len(text.split()),
                },
            }
        )

    async def chunks() -> AsyncIterator[bytes]:
        for i, word in enumerate(text.split(" ")):
            delta = {"role": "assistant", "content": word} if i == 0 else {"content": " " + word}
            chunk = {
                "id": "chatcmpl-echo",
                "object": "chat.completion.chunk",
                "created": created,
                "model": MODEL,
                "choices": [{"index": 0, "delta": delta, "finish_reason": None}],
            }
            yield f"data: {json.dumps(chunk)}\n\n".encode()
        end = {
            "id": "chatcmpl-echo",
            "object": "chat.completion.chunk",
            "created": created,
            "model": MODEL,
            "choices": [{"index": 0, "delta": {}, "finish_reason": "stop"}],
        }
        yield f"data: {json.dumps(end)}\n\ndata: [DONE]\n\n".encode()

    return StreamingResponse(chunks(), media_type="text/event-stream")


async def _models(request: Request) -> Response:
    return JSONResponse({"object": "list", "data": [{"id": MODEL, "object": "model", "owned_by": "test"}]})


def echo_app() -> Starlette:
    return Starlette(
        routes=[Route("/v1/chat/completions", _chat, methods=["POST"]), Route("/v1/models", _models)]
    )


class _Quiet(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self):  # type: ignore[no-untyped-def]
        yield


@contextlib.asynccontextmanager
async def serve_app(app: Starlette) -> AsyncIterator[str]:
    """Serve ``app`` on 127.0.0.1 (a free port) on this loop; yields its ``http://HOST:PORT``."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(1024)
    sock.setblocking(False)
    port = sock.getsockname()[1]
    server = _Quiet(uvicorn.Config(app, log_level="warning", access_log=False, lifespan="off"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    deadline = time.monotonic() + 10
    while not server.started:
        assert not task.done() and time.monotonic() < deadline, "backend did not start"
        await asyncio.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.should_exit = True
        await asyncio.wait_for(task, 10)
        sock.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])
