"""The HTTP backends against a real HTTP server on 127.0.0.1 speaking each API's shapes."""

from __future__ import annotations

import json
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from metamesh.errors import LLMResponseError, LLMUnavailable, ModelNotFound
from metamesh.llm.base import GenerateOptions
from metamesh.llm.http import OllamaLLM, OpenAICompatibleLLM


class FakeServer:
    """Answers each request with the next scripted (status, body) and records requests."""

    def __init__(self) -> None:
        self.script: list[tuple[int, Any]] = []
        self.requests: list[tuple[str, str, Any]] = []
        self.release = threading.Event()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                server.requests.append((self.command, self.path, body))
                status, payload = server.script.pop(0) if server.script else (500, {"error": "no script"})
                if payload == "HANG":
                    server.release.wait(10)
                    status, payload = 200, {}
                data = payload.encode() if isinstance(payload, str) else json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            do_GET = do_POST = _answer

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    def close(self) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    s = FakeServer()
    s.thread.start()
    try:
        yield s
    finally:
        s.close()


OLLAMA_OK = {"model": "tiny", "response": "Paris", "done": True, "eval_count": 3, "prompt_eval_count": 12}


async def test_ollama_generate_sends_the_real_request_shape(server: FakeServer) -> None:
    server.script = [(200, OLLAMA_OK)]
    llm = OllamaLLM("tiny", base_url=server.url)
    try:
        out = await llm.generate(
            "Capital of France?", options=GenerateOptions(temperature=0.1, max_tokens=20)
        )
    finally:
        await llm.aclose()
    assert out.text == "Paris" and out.completion_tokens == 3 and out.prompt_tokens == 12
    method, path, body = server.requests[0]
    assert (method, path) == ("POST", "/api/generate")
    assert body["model"] == "tiny" and body["prompt"] == "Capital of France?" and body["stream"] is False
    assert body["options"]["temperature"] == 0.1 and body["options"]["num_predict"] == 20


async def test_transient_errors_are_retried(server: FakeServer) -> None:
    server.script = [(500, {"error": "busy"}), (503, {"error": "busy"}), (200, OLLAMA_OK)]
    llm = OllamaLLM("tiny", base_url=server.url, backoff=0.01)
    try:
        assert (await llm.generate("q")).text == "Paris"
    finally:
        await llm.aclose()
    assert len(server.requests) == 3


async def test_missing_model_says_which_pull_to_run(server: FakeServer) -> None:
    server.script = [(404, {"error": "model 'tiny' not found, try pulling it first"})]
    llm = OllamaLLM("tiny", base_url=server.url)
    try:
        with pytest.raises(ModelNotFound, match="ollama pull tiny"):
            await llm.generate("q")
    finally:
        await llm.aclose()
    assert len(server.requests) == 1


async def test_check_finds_a_missing_model_up_front(server: FakeServer) -> None:
    server.script = [(200, {"models": [{"name": "other:latest"}]})]
    llm = OllamaLLM("tiny", base_url=server.url)
    try:
        with pytest.raises(ModelNotFound, match="ollama pull tiny"):
            await llm.check()
    finally:
        await llm.aclose()
    assert server.requests[0][:2] == ("GET", "/api/tags")


@pytest.mark.parametrize("payload", ["not json at all", {"done": True}, [1, 2]])
async def test_malformed_bodies_are_response_errors(server: FakeServer, payload: Any) -> None:
    server.script = [(200, payload)]
    llm = OllamaLLM("tiny", base_url=server.url)
    try:
        with pytest.raises(LLMResponseError):
            await llm.generate("q")
    finally:
        await llm.aclose()


async def test_slow_server_times_out(server: FakeServer) -> None:
    server.script = [(200, "HANG")]
    llm = OllamaLLM("tiny", base_url=server.url, attempts=1)
    try:
        with pytest.raises(LLMUnavailable, match="did not answer within"):
            await llm.generate("q", options=GenerateOptions(timeout_s=0.3))
    finally:
        server.release.set()
        await llm.aclose()


async def test_no_server_is_one_clear_line() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # closed again before use: nothing listens there
    llm = OllamaLLM("tiny", base_url=f"http://127.0.0.1:{port}", attempts=2, backoff=0.01)
    try:
        with pytest.raises(LLMUnavailable) as info:
            await llm.generate("q")
    finally:
        await llm.aclose()
    message = str(info.value)
    assert "\n" not in message and "ollama serve" in message and "Traceback" not in message


async def test_openai_compatible_chat_completions(server: FakeServer) -> None:
    server.script = [
        (400, {"error": {"message": "bad request"}}),
        (
            200,
            {
                "choices": [{"message": {"role": "assistant", "content": "42"}}],
                "usage": {"prompt_tokens": 9, "completion_tokens": 1},
            },
        ),
    ]
    llm = OpenAICompatibleLLM(server.url + "/v1", "local")
    try:
        with pytest.raises(LLMResponseError, match="400"):
            await llm.generate("6 times 7?")
        assert len(server.requests) == 1  # a 400 is not retried
        out = await llm.generate("6 times 7?", options=GenerateOptions(max_tokens=5))
    finally:
        await llm.aclose()
    assert out.text == "42" and out.prompt_tokens == 9
    method, path, body = server.requests[1]
    assert (method, path) == ("POST", "/v1/chat/completions")
    assert body["messages"] == [{"role": "user", "content": "6 times 7?"}] and body["max_tokens"] == 5
