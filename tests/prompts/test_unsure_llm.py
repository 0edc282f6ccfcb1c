"""A real run on an LLM that is never right says so, instead of printing a policy it never learned.

The LLM is an OpenAI-compatible HTTP server on loopback that answers every question
"I am not sure."; the study runs as a user runs it, node processes included.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from tests.cluster import run_own_group

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


class UnsureLLM:
    """``/v1/models`` and ``/v1/chat/completions``, every answer "I am not sure."; counts the calls."""

    def __init__(self) -> None:
        self.calls = 0
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def _send(self, doc: dict[str, Any]) -> None:
                body = json.dumps(doc).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def do_GET(self) -> None:
                self._send({"object": "list", "data": [{"id": "unsure", "object": "model"}]})

            def do_POST(self) -> None:
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                outer.calls += 1
                message = {"role": "assistant", "content": "I am not sure."}
                self._send({"choices": [{"index": 0, "message": message, "finish_reason": "stop"}]})

            def log_message(self, *args: Any) -> None:
                pass

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self.thread.start()
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"

    def close(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join(10)


@pytest.fixture
def unsure() -> Iterator[UnsureLLM]:
    llm = UnsureLLM()
    try:
        yield llm
    finally:
        llm.close()


def test_a_study_on_an_llm_that_is_never_right_prints_no_policy(tmp_path: Path, unsure: UnsureLLM) -> None:
    out = tmp_path / "run"
    args = ["experiment", "prompts", "--llm", f"openai:{unsure.url}:unsure", "--nodes", "2"]
    args += ["--episodes", "30", "--eval-every", "15", "--pace", "0", "--arms", "random,federated"]
    done = run_own_group([*args, "--out", str(out)], timeout=200)
    assert done.returncode == 0, done.stderr[-3000:]
    assert unsure.calls > 60, unsure.calls  # the nodes really asked it
    assert "No strategy learned" in done.stdout, done.stdout
    assert "Best strategy per category" not in done.stdout
    assert "seed 000 expected" not in done.stdout  # a real backend: no simulated expectation
