"""The official ``openai`` client against a gateway on a real llama.cpp server (the bundled SmolLM2)."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest

from metamesh.gateway import GatewayConfig, OpenAIBackend, build_gateway
from metamesh.llm.local import LocalModelServer
from metamesh.node.config import load_config
from tests.twin import Twin

openai = pytest.importorskip("openai")
pytestmark = [pytest.mark.llm, pytest.mark.timeout(120)]


@pytest.fixture
def llama_url(local_server: LocalModelServer) -> str:
    """The session's llama.cpp server on SmolLM2 (tests/conftest.py)."""
    return local_server.base_url


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
