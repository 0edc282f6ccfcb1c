"""Run one node until it is stopped: what ``metamesh node`` and ``metamesh coordinator`` do.

:func:`run_node` builds the learner the config names (through the learner
registry, unless one is given), starts a :class:`~metamesh.node.runtime.Node`,
stops it gracefully on SIGINT or SIGTERM (a bye to its peers, a last
checkpoint) and returns once it has stopped.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import threading
from collections.abc import Callable, Sequence
from typing import Protocol

from metamesh.node.config import NodeConfig
from metamesh.node.learner import Learner
from metamesh.node.registry import build_learner
from metamesh.node.runtime import Node
from metamesh.node.state import NodeDir

__all__ = ["Service", "run_node"]

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


class Service(Protocol):
    """Something a node serves in its own loop beside gossip (the gateway): started once the node
    has, stopped before it says bye."""

    async def start(self, node: Node) -> object: ...

    async def stop(self) -> None: ...


async def run_node(
    config: NodeConfig,
    learner: Learner | None = None,
    *,
    ready: Callable[[Node], object] | None = None,
    handle_signals: bool = True,
    services: Sequence[Service] = (),
) -> None:
    """Run a node with ``config`` on the running event loop until it is stopped.

    ``learner`` is the node's learner; without one, the learner
    ``config.learner`` names is built through the ``metamesh.learners``
    registry (``"none"``: no learner, the node relays its domains' messages).
    ``ready(node)`` is called once the node's sockets are bound and it has
    started, and each of ``services`` too. The node stops when SIGINT or SIGTERM arrives (when
    ``handle_signals`` and this is the main thread's loop; the handlers are
    removed on return), when ``node.request_stop()`` is called, or when this
    coroutine is cancelled; it always says bye and writes a checkpoint first.

    Raises :class:`~metamesh.errors.HomeInUse` at once when another process
    holds ``config.home`` (before a slow learner is built),
    :class:`~metamesh.errors.ConfigError` for an unknown learner or settings
    it refuses, and the node's own errors from starting (a busy port).
    """
    NodeDir(config.home).close()  # a home in use fails now, not after a learner's slow build
    if learner is None:
        learner = build_learner(config)
    node = Node(config, learner=learner)
    await node.start()
    loop = asyncio.get_running_loop()
    signals = handle_signals and threading.current_thread() is threading.main_thread()
    started: list[Service] = []
    try:
        if signals:
            for sig in STOP_SIGNALS:
                loop.add_signal_handler(sig, node.request_stop)
        for service in services:
            started.append(service)  # stopped even if it fails halfway through starting
            await service.start(node)
        if ready is not None:
            ready(node)
        await node.wait_stopped()
    finally:
        if signals:
            for sig in STOP_SIGNALS:
                with contextlib.suppress(ValueError, RuntimeError):
                    loop.remove_signal_handler(sig)
        for service in reversed(started):
            await service.stop()
        await node.stop("signal")
