"""Seed 004 through the gateway: ratings teach it which backend answers a category, within a budget.

Two fast deterministic HTTP backends: "dear" (cost 3) always answers right, "cheap" (cost 1)
never does. A scripted user asks math questions of the virtual model and rates each answer 1 if
right, else 0. Within a bounded number of rated requests the gateway routes math to "dear" when
the budget allows it, stays on "cheap" when it does not, and `/v1/models` lets a client call
"cheap" by name whatever the policy prefers.
"""

from __future__ import annotations

import json
import time
from collections import Counter

import httpx
import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from metamesh.gateway import GatewayConfig, OpenAIBackend, build_gateway
from metamesh.node.config import load_config
from tests.gateway.fakes import serve_app
from tests.twin import Twin

pytestmark = pytest.mark.timeout(90)

RIGHT = "The answer is 42."
WARMUP = 12
"""Rated requests the gateway may take to learn; it is then judged on the next ``JUDGED``."""
JUDGED = 20


def fixed_app(model: str, answer: str) -> Starlette:
    async def chat(request: Request) -> Response:
        json.loads(await request.body())
        return JSONResponse({
            "id": f"chatcmpl-{model}", "object": "chat.completion", "created": int(time.time()),
            "model": model, "usage": {"prompt_tokens": 5, "completion_tokens": 5, "total_tokens": 10},
            "choices": [{"index": 0, "message": {"role": "assistant", "content": answer},
                         "finish_reason": "stop"}],
        })  # fmt: skip

    return Starlette(routes=[Route("/v1/chat/completions", chat, methods=["POST"])])


async def test_feedback_routes_a_category_to_the_better_backend_within_the_budget(twin: Twin) -> None:
    async with (
        serve_app(fixed_app("dear", RIGHT)) as dear,
        serve_app(fixed_app("cheap", "I do not know.")) as cheap,
        httpx.AsyncClient() as client,
    ):
        config = GatewayConfig(host="127.0.0.1", port=0, costs={"dear": 3.0, "cheap": 1.0}, budget=5.0)
        backends = [OpenAIBackend(cheap + "/v1", "cheap"), OpenAIBackend(dear + "/v1", "dear")]
        gw = build_gateway(load_config(profile="local"), config, backends=backends)
        node = await twin.node("a", domains=("math",), learner=gw.learner)
        await gw.start(node)
        base = f"http://127.0.0.1:{gw.port}/v1"
        try:

            async def ask(budget: str | None = None, model: str = "metamesh") -> tuple[str, str | None]:
                meta = {"category": "math", **({"budget": budget} if budget else {})}
                r = await client.post(f"{base}/chat/completions", json={
                    "model": model, "messages": [{"role": "user", "content": "What is 6*7?"}],
                    "metadata": meta})  # fmt: skip
                assert r.status_code == 200, r.text
                doc = r.json()
                decision = r.headers.get("x-metamesh-decision")
                if decision is not None:
                    right = doc["choices"][0]["message"]["content"] == RIGHT
                    score = {"decision_id": decision, "score": float(right)}
                    rated = await client.post(f"{base}/feedback", json=score)
                    assert rated.status_code == 200
                    return doc["metamesh"]["backend"], decision
                return doc["model"], None

            first = [(await ask())[0] for _ in range(WARMUP)]
            assert set(first) == {"cheap", "dear"}  # it tried both
            judged = Counter([(await ask())[0] for _ in range(JUDGED)])
            assert judged["dear"] >= JUDGED - 3, judged  # the better one, bar exploration
            assert gw.router is not None and gw.router.best("math") == "dear"

            # a budget that "dear" does not fit: "cheap" it is, whatever the ratings say
            tight = Counter([(await ask(budget="1.5"))[0] for _ in range(10)])
            assert tight == {"cheap": 10}

            # /v1/models names each backend; asking for one by name bypasses the policy
            models = (await client.get(f"{base}/models")).json()
            assert {m["id"] for m in models["data"]} == {"metamesh", "cheap", "dear"}
            assert await ask(model="cheap") == ("cheap", None)

            metrics = (await client.get(f"http://127.0.0.1:{gw.port}/metrics")).text
            assert 'metamesh_gateway_routes_total{category="math",backend="dear"}' in metrics
        finally:
            await gw.stop()
