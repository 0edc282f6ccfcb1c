"""The official ``openai`` client against a gateway on a real llama.cpp server (the bundled SmolLM2)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator

import httpx
import pytest

from metamesh.gateway import GatewayConfig, OpenAIBackend, build_gateway
from metamesh.node.config import load_config
from tests.gateway.fakes import free_port
from tests.twin import Twin

openai = pytest.importorskip("openai")
pytestmark = [pytest.mark.llm, pytest.mark.timeout(120)]


def _model_file() -> str:
    try:
        from metamesh.llm.local import bundled_model
    except ImportError:
        pytest.skip("metamesh.llm.local is not available")
    try:
        return str(bundled_model())
    except Exception as exc:
        pytest.skip(f"the bundled model is not installed: {exc}")


@pytest.fixture(scope="module")
def llama_url() -> Iterator[str]:
    """``python -m llama_cpp.server`` on SmolLM2, started and stopped (by PID) here."""
    model, port = _model_file(), free_port()
    args = [sys.executable, "-m", "llama_cpp.server", "--model", model, "--host", "127.0.0.1",
            "--port", str(port), "--n_ctx", "2048", "--model_alias", "smollm2"]  # fmt: skip
    proc = subprocess.Popen(args, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 60
        while True:
            assert proc.poll() is None, "llama.cpp server exited"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/models", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "llama.cpp server not ready in 60 s"
            time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/v1"
    finally:
        os.kill(proc.pid, signal.SIGTERM)
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


@pytest.fixture
async def gateway_url(twin: Twin, llama_url: str) -> AsyncIterator[tuple[str, object]]:
    gw = build_gateway(load_config(profile="local"), GatewayConfig(port=0),
                       backends=[OpenAIBackend(llama_url, "smollm2")])  # fmt: skip
    node = await twin.node("a", learner=gw.learner)
    await gw.start(node)
    try:
        yield f"http://127.0.0.1:{gw.port}/v1", gw
    finally:
        await gw.stop()


async def test_openai_client_chat_stream_and_feedback(gateway_url: tuple[str, object]) -> None:
    url, gw = gateway_url
    client = openai.AsyncOpenAI(base_url=url, api_key="unused-on-loopback")
    try:
        models = [m.id async for m in client.models.list()]
        assert models == ["metamesh", "smollm2"]
        raw = await client.chat.completions.with_raw_response.create(
            model="metamesh", messages=[{"role": "user", "content": "What is the capital of France?"}],
            max_tokens=24, temperature=0.0, metadata={"category": "geography"},
        )  # fmt: skip
        decision = raw.headers["x-metamesh-decision"]
        completion = raw.parse()
        assert completion.choices[0].message.content
        assert completion.model_extra["metamesh"]["decision"] == decision
        stream = await client.chat.completions.create(
            model="metamesh", messages=[{"role": "user", "content": "Name a primary colour."}],
            max_tokens=16, temperature=0.0, stream=True, metadata={"category": "art"},
        )  # fmt: skip
        parts, streamed = [], None
        async for chunk in stream:
            streamed = streamed or (chunk.model_extra or {}).get("metamesh", {}).get("decision")
            if chunk.choices and chunk.choices[0].delta.content:
                parts.append(chunk.choices[0].delta.content)
        assert "".join(parts).strip() and streamed
        learner = gw.decider.learner  # type: ignore[attr-defined]
        before = float(learner.own["geography"].visits.sum())
        for d in (decision, streamed):
            rated = await client.post("/feedback", body={"decision_id": d, "thumbs": "up"}, cast_to=object)
            assert rated["accepted"] is True  # type: ignore[index]
        assert float(learner.own["geography"].visits.sum()) == before + 1
        assert float(learner.own["art"].visits.sum()) == 1
    finally:
        await client.close()
