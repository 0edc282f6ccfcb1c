"""Every refusal of point 5: its status, its OpenAI error object, its counter, and the node keeps serving."""

from __future__ import annotations

import re
from pathlib import Path

import httpx
import pytest

from metamesh.errors import ConfigError
from metamesh.gateway import GatewayConfig, Limits, OpenAIBackend, build_gateway
from metamesh.node.config import load_config
from tests.gateway.conftest import StartGateway
from tests.gateway.fakes import free_port

pytestmark = pytest.mark.timeout(60)

KEY_A, KEY_B = "alice-0123456789abcdef", "bob-0123456789abcdef00"
ASK = {
    "model": "metamesh",
    "messages": [{"role": "user", "content": "2+2?"}],
    "metadata": {"category": "math"},
}


def errors_counted(metrics: str, status: int, code: str) -> float:
    m = re.search(rf'metamesh_gateway_errors_total\{{status="{status}",code="{code}"\}} (\S+)', metrics)
    return float(m.group(1)) if m else 0.0


@pytest.fixture
def keys_file(tmp_path: Path) -> Path:
    path = tmp_path / "api-keys"
    path.write_text(f"# who may call\nalice {KEY_A}\nbob {KEY_B}\n")
    return path


CASES = [
    # (what, method, path, kwargs, status, code, param)
    (
        "bad json",
        "POST",
        "/v1/chat/completions",
        {"content": b"{not json"},
        400,
        "invalid_request_error",
        "body",
    ),
    ("not an object", "POST", "/v1/chat/completions", {"json": [1, 2]}, 400, "invalid_request_error", "body"),
    (
        "bad budget",
        "POST",
        "/v1/chat/completions",
        {"json": {**ASK, "metadata": {"category": "math", "budget": "-1"}}},
        400,
        "invalid_request_error",
        "metadata.budget",
    ),
    (
        "no model",
        "POST",
        "/v1/chat/completions",
        {"json": {"messages": ASK["messages"]}},
        400,
        "invalid_request_error",
        "model",
    ),
    (
        "wrong type",
        "POST",
        "/v1/chat/completions",
        {"json": {**ASK, "temperature": "hot"}},
        400,
        "invalid_request_error",
        "temperature",
    ),
    (
        "bad message",
        "POST",
        "/v1/chat/completions",
        {"json": {**ASK, "messages": [{"role": "user", "content": 5}]}},
        400,
        "invalid_request_error",
        "messages[0].content",
    ),
    (
        "too many tokens",
        "POST",
        "/v1/chat/completions",
        {"json": {**ASK, "max_tokens": 10**6}},
        400,
        "invalid_request_error",
        "max_tokens",
    ),
    (
        "too large",
        "POST",
        "/v1/chat/completions",
        {"json": {**ASK, "pad": "x" * 5000}},
        413,
        "request_too_large",
        None,
    ),
    (
        "unknown model",
        "POST",
        "/v1/chat/completions",
        {"json": {**ASK, "model": "gpt-9"}},
        404,
        "model_not_found",
        "model",
    ),
    (
        "feedback score out of range",
        "POST",
        "/v1/feedback",
        {"json": {"decision_id": "x", "score": 7}},
        400,
        "invalid_request_error",
        "score",
    ),
    (
        "feedback without a rating",
        "POST",
        "/v1/feedback",
        {"json": {"decision_id": "x"}},
        400,
        "invalid_request_error",
        "score",
    ),
    (
        "unknown decision",
        "POST",
        "/v1/feedback",
        {"json": {"decision_id": "nope", "thumbs": "up"}},
        404,
        "decision_not_found",
        "decision_id",
    ),
]


@pytest.mark.parametrize(
    ("what", "method", "path", "kwargs", "status", "code", "param"), CASES, ids=[c[0] for c in CASES]
)
async def test_refusal(
    gateways: StartGateway,
    keys_file: Path,
    what: str,
    method: str,
    path: str,
    kwargs: dict,
    status: int,
    code: str,
    param: str | None,
) -> None:
    _, gw = await gateways("a", keys_file=keys_file, limits=Limits(max_body_bytes=4096, max_tokens=1024))
    auth = {"Authorization": f"Bearer {KEY_A}"}
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}", headers=auth) as http:
        r = await http.request(method, path, **kwargs)
        assert r.status_code == status, r.text
        error = r.json()["error"]
        assert error["code"] == code and error["param"] == param and error["message"] and error["type"]
        assert errors_counted((await http.get("/metrics")).text, status, code) == 1.0
        assert (await http.post("/v1/chat/completions", json=ASK)).status_code == 200  # still serving


async def test_keys_rate_and_ownership(gateways: StartGateway, keys_file: Path) -> None:
    _, gw = await gateways("a", keys_file=keys_file, rate=1.0, burst=3.0)
    url = f"http://127.0.0.1:{gw.port}"
    async with (
        httpx.AsyncClient(base_url=url) as anon,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY_A}"}) as alice,
        httpx.AsyncClient(base_url=url, headers={"Authorization": f"Bearer {KEY_B}"}) as bob,
    ):
        r = await anon.post("/v1/chat/completions", json=ASK)
        assert r.status_code == 401 and r.json()["error"]["code"] == "invalid_api_key"
        wrong = await anon.get("/v1/models", headers={"Authorization": "Bearer not-a-key-at-all-000"})
        assert wrong.status_code == 401
        decision = (await alice.post("/v1/chat/completions", json=ASK)).headers["x-metamesh-decision"]
        r = await bob.post("/v1/feedback", json={"decision_id": decision, "thumbs": "up"})
        assert r.status_code == 403 and r.json()["error"]["code"] == "decision_forbidden"
        assert (
            await alice.post("/v1/feedback", json={"decision_id": decision, "thumbs": "up"})
        ).status_code == 200
        statuses = [(await bob.get("/v1/models")).status_code for _ in range(6)]
        assert statuses[:2] == [200, 200] and 429 in statuses  # bob's burst: 3, one spent above
        assert (await alice.get("/v1/models")).status_code in (200, 429)
        metrics = (await anon.get("/metrics")).text
        assert errors_counted(metrics, 401, "invalid_api_key") == 2.0
        assert errors_counted(metrics, 403, "decision_forbidden") == 1.0
        assert errors_counted(metrics, 429, "rate_limit_exceeded") >= 1.0
        assert (await anon.get("/healthz")).status_code == 200


async def test_backend_down_is_502_naming_it(gateways: StartGateway) -> None:
    _, gw = await gateways("a", backend_url=f"http://127.0.0.1:{free_port()}/v1")
    async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
        for body in (ASK, {**ASK, "stream": True}):
            r = await http.post("/v1/chat/completions", json=body)
            assert r.status_code == 502 and "backend echo" in r.json()["error"]["message"]
        assert errors_counted((await http.get("/metrics")).text, 502, "backend_error") == 2.0
        assert (await http.get("/healthz")).status_code == 200


async def test_backend_timing_out_is_504(gateways: StartGateway) -> None:
    import asyncio
    import socket

    silent = socket.socket()  # accepts connections, never answers
    silent.bind(("127.0.0.1", 0))
    silent.listen(8)
    try:
        _, gw = await gateways("a", backend_url=f"http://127.0.0.1:{silent.getsockname()[1]}/v1", timeout=0.3)
        async with httpx.AsyncClient(base_url=f"http://127.0.0.1:{gw.port}") as http:
            r = await http.post("/v1/chat/completions", json=ASK)
            assert r.status_code == 504 and "backend echo" in r.json()["error"]["message"]
            assert errors_counted((await http.get("/metrics")).text, 504, "backend_error") == 1.0
    finally:
        silent.close()
        await asyncio.sleep(0)


async def test_expired_decision_is_404() -> None:
    gw = build_gateway(
        load_config(profile="local"),
        GatewayConfig(decision_ttl=0.0),
        backends=[OpenAIBackend("http://127.0.0.1:1/v1", "m")],
    )
    decision, _ = gw.decider.decide("2+2?", owner="anonymous", category="math")
    from metamesh.learners.prompts.decisions import UnknownDecision

    gw.decider.store.ttl = -1.0
    with pytest.raises(UnknownDecision):
        gw.decider.feedback(decision.id, owner="anonymous", score=1.0)


def test_beyond_loopback_needs_keys() -> None:
    with pytest.raises(ConfigError, match="keys-file"):
        build_gateway(
            load_config(profile="local"),
            GatewayConfig(host="0.0.0.0"),
            backends=[OpenAIBackend("http://127.0.0.1:1/v1", "m")],
        )
