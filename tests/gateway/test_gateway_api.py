"""The gateway's endpoints against the echo backend: completions (streaming too), models, feedback,
metrics and health; decisions, their store and their checkpoint."""

from __future__ import annotations

import json

import httpx
import pytest

from tests.gateway.conftest import StartGateway

pytestmark = pytest.mark.timeout(60)

ASK = {
    "model": "metamesh",
    "messages": [{"role": "user", "content": "What is 7 times 6?"}],
    "metadata": {"category": "math"},
}


async def test_completion_carries_a_decision_and_feedback_rewards_it(gateways: StartGateway) -> None:
    node, gw = await gateways("a", exploration=0.0)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        r = await http.post("/v1/chat/completions", json=ASK)
        assert r.status_code == 200, r.text
        doc = r.json()
        decision = r.headers["x-metamesh-decision"]
        meta = doc["metamesh"]
        assert meta["decision"] == decision and meta["category"] == "math"
        strategy = meta["strategy"]
        assert strategy in gw.decider.learner.actions and meta["explanation"]
        # the strategy's template was applied to the user's last message, which the backend echoes
        template = gw.decider.learner.config.strategies[strategy]
        assert doc["choices"][0]["message"]["content"] == "echo: " + template.replace(
            "{question}", ASK["messages"][0]["content"]
        )
        before = gw.decider.learner.own["math"].visits.copy()
        f = await http.post("/v1/feedback", json={"decision_id": decision, "thumbs": "up"})
        assert f.status_code == 200, f.text
        assert f.json() == {
            "object": "feedback",
            "decision_id": decision,
            "accepted": True,
            "score": 1.0,
            "category": "math",
            "strategy": strategy,
        }
        i = gw.decider.learner.actions.index(strategy)
        assert gw.decider.learner.own["math"].visits[i] == before[i] + 1
        assert gw.decider.learner.own["math"].values[i] > 0
        again = await http.post("/v1/feedback", json={"decision_id": decision, "score": 0.5})
        assert again.status_code == 404  # one rating per decision
        metrics = (await http.get("/metrics")).text
        assert 'metamesh_gateway_feedback_total{category="math",strategy="' + strategy + '"} 1.0' in metrics
        assert "metamesh_messages_total" in metrics  # the node's own exposition, the same text
        health = (await http.get("/healthz")).json()
        assert health["status"] == "ok" and health["node"] == node.id


async def test_streaming_in_openai_chunks_with_the_decision_first(gateways: StartGateway) -> None:
    _, gw = await gateways("a")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        async with http.stream("POST", "/v1/chat/completions", json={**ASK, "stream": True}) as r:
            assert r.status_code == 200 and r.headers["content-type"].startswith("text/event-stream")
            decision = r.headers["x-metamesh-decision"]
            events = [line[6:] async for line in r.aiter_lines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        chunks = [json.loads(e) for e in events[:-1]]
        assert chunks[0]["metamesh"]["decision"] == decision
        assert all(c["object"] == "chat.completion.chunk" for c in chunks)
        text = "".join(c["choices"][0]["delta"].get("content", "") for c in chunks)
        assert text.startswith("echo: ") and "7 times 6" in text
        # the streamed answer is kept for reference feedback: scored by the learner's checker
        f = await http.post("/v1/feedback", json={"decision_id": decision, "reference": "echo"})
        assert f.status_code == 200 and f.json()["score"] > 0


async def test_models_list_the_virtual_model_and_each_backend_which_bypasses_learning(
    gateways: StartGateway,
) -> None:
    _, gw = await gateways("a")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        ids = [m["id"] for m in (await http.get("/v1/models")).json()["data"]]
        assert ids == ["metamesh", "echo"]
        r = await http.post("/v1/chat/completions", json={**ASK, "model": "echo"})
        assert r.status_code == 200
        assert "x-metamesh-decision" not in r.headers and "metamesh" not in r.json()
        assert r.json()["choices"][0]["message"]["content"] == "echo: What is 7 times 6?"  # no template
    assert gw.decider.decided == 0


async def test_a_category_nobody_gave_comes_from_the_classifier(gateways: StartGateway) -> None:
    _, gw = await gateways("a")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        ask = {
            "model": "metamesh",
            "messages": [{"role": "user", "content": "What is the capital city of France?"}],
        }
        r = await http.post("/v1/chat/completions", json=ask)
        assert r.json()["metamesh"]["category"] == "geography"
        r = await http.post("/v1/chat/completions", json=ask, headers={"X-Metamesh-Category": "art"})
        assert r.json()["metamesh"]["category"] == "art"


async def test_decisions_awaiting_feedback_survive_a_restart(gateways: StartGateway) -> None:
    _, gw = await gateways("a")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        decision = (await http.post("/v1/chat/completions", json=ASK)).headers["x-metamesh-decision"]
    state = gw.learner.state()
    from metamesh.gateway import GatewayConfig, OpenAIBackend, build_gateway
    from metamesh.node.config import load_config

    fresh = build_gateway(
        load_config(profile="local"), GatewayConfig(), backends=[OpenAIBackend("http://x", "m")]
    )
    fresh.learner.load_state(state)
    assert fresh.decider.store.get(decision) is not None
    decided, _ = fresh.decider.feedback(decision, owner="anonymous", score=1.0)
    assert decided.category == "math"
