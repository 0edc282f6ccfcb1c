"""Feedback given only at gateway A teaches gateway B's choice: learned state travels by gossip."""

from __future__ import annotations

import httpx
import pytest

from tests.gateway.conftest import StartGateway
from tests.twin import Twin, eventually

pytestmark = pytest.mark.timeout(90)

PREFERRED = "concise"
ASK = {
    "model": "metamesh",
    "messages": [{"role": "user", "content": "What is 12 squared?"}],
    "metadata": {"category": "math"},
}


async def test_ratings_at_a_teach_b_for_that_category(twin: Twin, gateways: StartGateway) -> None:
    node_a, gw_a = await gateways("a", exploration=1.0)  # A's users see every strategy
    node_b, gw_b = await gateways("b", seeds=[node_a], exploration=0.0)  # B: greedy, never rated
    await twin.linked(node_a, node_b)
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_a.port}") as a:
        # A scripted user who likes only the concise answers; bounded: 60 requests at most.
        for _ in range(60):
            r = await a.post("/v1/chat/completions", json=ASK)
            assert r.status_code == 200, r.text
            meta = r.json()["metamesh"]
            score = 1.0 if meta["strategy"] == PREFERRED else 0.0
            f = await a.post("/v1/feedback", json={"decision_id": meta["decision"], "score": score})
            assert f.status_code == 200, f.text
            own = gw_a.decider.learner.own["math"]
            if own.visits.min() >= 2:
                break
    assert gw_a.decider.best()["math"] == PREFERRED
    assert gw_b.decider.rated == 0

    async def b_picks() -> str:
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw_b.port}") as b:
            r = await b.post("/v1/chat/completions", json=ASK)
            return str(r.json()["metamesh"]["strategy"])

    await eventually(lambda: gw_b.decider.best()["math"] == PREFERRED, "B learning A's preference", 30)
    picks = [await b_picks() for _ in range(5)]
    assert picks == [PREFERRED] * 5
    assert gw_b.decider.rated == 0 and not gw_b.decider.learner.own["math"].visits.any()  # B's own: empty
