"""`metamesh gateway` and `metamesh node --gateway` as real processes: they answer, learn, and stop on SIGINT.

The backend is the echo app (tests/gateway/fakes.py) served on this test's loop, so the processes
are the real CLI, real uvicorn on real loopback sockets, and real signals, sent by PID.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.gateway.fakes import MODEL, echo_app, serve_app

pytestmark = [pytest.mark.timeout(120), pytest.mark.slow]


class Proc:
    """One `python -m metamesh ...` process with --ready-json; its ready line parsed."""

    def __init__(self, proc: asyncio.subprocess.Process) -> None:
        self.proc = proc
        self.ready: dict[str, Any] = {}

    @property
    def url(self) -> str:
        return str(self.ready["gateway"])

    async def wait_ready(self, timeout: float = 60.0) -> Proc:
        assert self.proc.stdout is not None
        async with asyncio.timeout(timeout):
            while True:
                line = await self.proc.stdout.readline()
                if not line:
                    err = await self.proc.stderr.read() if self.proc.stderr else b""
                    raise AssertionError(f"process exited before ready: {err.decode()[-2000:]}")
                with contextlib.suppress(ValueError):
                    doc = json.loads(line)
                    if isinstance(doc, dict) and doc.get("event") == "ready":
                        self.ready = doc
                        return self

    async def interrupt(self, timeout: float = 20.0) -> int:
        """SIGINT by PID; the exit code once it has stopped."""
        self.proc.send_signal(signal.SIGINT)
        async with asyncio.timeout(timeout):
            return await self.proc.wait()


@contextlib.asynccontextmanager
async def processes() -> AsyncIterator[list[Proc]]:
    started: list[Proc] = []
    try:
        yield started
    finally:
        for p in started:
            if p.proc.returncode is None:
                p.proc.kill()
                await p.proc.wait()


async def spawn(started: list[Proc], *args: str) -> Proc:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "metamesh", *args, "--ready-json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    p = Proc(proc)
    started.append(p)
    return await p.wait_ready()


async def ask(client: httpx.AsyncClient, url: str, text: str) -> httpx.Response:
    body = {"model": "metamesh", "messages": [{"role": "user", "content": text}],
            "metadata": {"category": "math"}}  # fmt: skip
    return await client.post(f"{url}/chat/completions", json=body, timeout=30)


def episodes(metrics: str) -> float:
    for line in metrics.splitlines():
        if line.startswith('metamesh_learner{metric="episodes"}'):
            return float(line.split()[-1])
    return 0.0


async def test_gateway_and_node_with_gateway_serve_and_stop_on_sigint(tmp_path: Path) -> None:
    async with serve_app(echo_app()) as backend, processes() as started, httpx.AsyncClient() as client:
        spec = f"openai:{backend}/v1:{MODEL}"
        gw = await spawn(started, "gateway", "--home", str(tmp_path / "gw"), "--profile", "local",
                         "--gateway", "127.0.0.1:0", "--backend", spec, "--domain", "math")  # fmt: skip
        node = await spawn(started, "node", "--home", str(tmp_path / "node"), "--profile", "local",
                           "--gateway", "127.0.0.1:0", "--backend", spec, "--domain", "math",
                           "--seed", gw.ready["router"])  # fmt: skip
        for p in (gw, node):
            answer = await ask(client, p.url, "What is 7*6?")
            assert answer.status_code == 200, answer.text
            doc = answer.json()
            assert "echo:" in doc["choices"][0]["message"]["content"]
            decision = answer.headers["x-metamesh-decision"]
            assert doc["metamesh"]["decision"] == decision
            rated = await client.post(f"{p.url}/feedback", json={"decision_id": decision, "score": 1.0})
            assert rated.status_code == 200 and rated.json()["accepted"], rated.text
            health = (await client.get(p.url.removesuffix("/v1") + "/healthz")).json()
            assert health["status"] == "ok"
        # the node with a gateway still learns on its own questions, as `metamesh node` does
        metrics = (await client.get(node.url.removesuffix("/v1") + "/metrics")).text
        assert 'metamesh_gateway_feedback_total{category="math"' in metrics
        assert "# TYPE metamesh_messages_total counter" in metrics  # the node's own families, one renderer
        assert "metamesh_gateway_journal_fsyncs_total 1.0" in metrics  # the rating went to disk
        async with asyncio.timeout(30):
            while episodes(metrics) < 1:
                await asyncio.sleep(0.1)  # polling the process's state, not synchronising
                metrics = (await client.get(node.url.removesuffix("/v1") + "/metrics")).text
        assert await node.interrupt() == 0
        assert await gw.interrupt() == 0
