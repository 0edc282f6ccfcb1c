"""Gateways on nodes of the in-memory twin, in front of the echo backend (tests/gateway/fakes.py)."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest

from metamesh.gateway import Gateway, GatewayConfig, OpenAIBackend, build_gateway
from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from tests.gateway.fakes import MODEL, echo_app, serve_app
from tests.twin import Twin

StartGateway = Callable[..., Awaitable[tuple[Node, Gateway]]]


@pytest.fixture
async def echo_url() -> AsyncIterator[str]:
    async with serve_app(echo_app()) as url:
        yield url + "/v1"


@pytest.fixture
async def gateways(twin: Twin, echo_url: str) -> AsyncIterator[StartGateway]:
    """``await gateways(name, seeds=[...], **GatewayConfig fields)`` -> (node, gateway) on port 0."""
    started: list[Gateway] = []

    async def start(name: str, *, seeds: list[Node] | None = None, backend_url: str = "", **settings: Any):
        config = GatewayConfig(host="127.0.0.1", port=0, **settings)
        gw = build_gateway(
            load_config(profile="local"), config, backends=[OpenAIBackend(backend_url or echo_url, MODEL)]
        )
        node = await twin.node(name, domains=("math",), seeds=seeds or [], learner=gw.learner)
        await gw.start(node)
        started.append(gw)
        return node, gw

    yield start
    for gw in started:
        await gw.stop()
