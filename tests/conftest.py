"""Shared fixtures: a ZeroMQ context that must terminate cleanly after each test."""

from __future__ import annotations

import logging
import threading
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from metamesh.llm.local import LocalModelServer
    from tests.cluster import Cluster
    from tests.twin import Twin

import pytest
import zmq
import zmq.asyncio


@pytest.fixture(autouse=True)
def _root_logging_restored() -> Iterator[None]:
    """A test that runs a CLI command in process points the root logger at pytest's captured stderr,
    which is closed after that test: every later log record would then print a logging error
    (slowly, and to the real stderr). Put the root logger back as it was."""
    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


@pytest.fixture
def zctx() -> Iterator[zmq.asyncio.Context]:
    """A private asyncio context; fails the test if a socket is left open."""
    ctx = zmq.asyncio.Context()
    yield ctx
    leftover = [s for s in list(ctx._sockets) if not s.closed]
    for sock in leftover:
        sock.close(linger=0)
    assert not leftover, f"test left {len(leftover)} socket(s) open"
    done = threading.Event()

    def term() -> None:
        ctx.term()
        done.set()

    threading.Thread(target=term, daemon=True).start()
    assert done.wait(10), "ZeroMQ context did not terminate: a socket was left open"


@pytest.fixture
def no_sockets(monkeypatch: pytest.MonkeyPatch) -> Iterator[list[int]]:
    """Fails any attempt to create a ZeroMQ socket; yields the attempts (to assert there were none)."""
    attempts: list[int] = []

    def refuse(self: object, socket_type: int, *args: object, **kwargs: object) -> None:
        attempts.append(socket_type)
        raise AssertionError("this test must open no socket: it runs on the in-memory transport")

    monkeypatch.setattr(zmq.Context, "socket", refuse)
    monkeypatch.setattr(zmq.asyncio.Context, "socket", refuse)
    yield attempts
    assert not attempts, f"{len(attempts)} ZeroMQ socket(s) were asked for"


@pytest.fixture
async def twin(tmp_path: Path, no_sockets: list[int]) -> AsyncIterator[Twin]:
    """Nodes on the in-memory transport twin (tests/twin.py), all stopped afterwards; no sockets."""
    from tests.twin import Twin

    net = Twin(tmp_path)
    try:
        yield net
    finally:
        await net.close()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Node processes started by a test; all of them are stopped and reaped afterwards."""
    from tests.cluster import Cluster

    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()


@pytest.fixture(scope="session")
def local_server() -> Iterator[LocalModelServer]:
    """One real model per session: llama.cpp's server on the bundled SmolLM2, started once and
    stopped by PID at the end, or a skip saying what to install."""
    from metamesh.llm.local import LocalModelServer
    from tests.llm.conftest import MISSING

    if MISSING:
        pytest.skip(f"the llm-local extra is not installed: {MISSING}")
    with LocalModelServer() as server:
        yield server
