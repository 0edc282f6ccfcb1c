"""Shared fixtures: a ZeroMQ context that must terminate cleanly after each test."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from tests.cluster import Cluster

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
def cluster(tmp_path: Path) -> Iterator[Cluster]:
    """Node processes started by a test; all of them are stopped and reaped afterwards."""
    from tests.cluster import Cluster

    c = Cluster(tmp_path)
    try:
        yield c
    finally:
        c.close()
