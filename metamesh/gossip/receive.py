"""Receiving: drain a ready socket in batches; change a SUB's links only between whole messages.

libzmq's SUB reads the first frame of a waiting message whenever anyone asks whether the socket
is readable (``zmq_poll``, ``getsockopt(EVENTS)``; pyzmq's asyncio loop asks on every wake-up of
the socket's file descriptor, before the receiving task runs). If the SUB then ``disconnect``s
the endpoint that message came from, its pipe is ended with the rest of the message unread, and
the next ``recv`` aborts the whole process: ``Assertion failed: !_more (src/fq.cpp:80)`` (libzmq
issue 2163). A node that prunes its meshes unlinks peers all the time, from tasks other than
the receiving one, so :class:`SubLinks` adds links at once but removes them only from the
receiving task (:func:`drain`), right after a ``recv`` that left nothing partly read: one that
returned a whole message, or found none (``EAGAIN``). ``connect`` is safe at any time: it only
adds a pipe.

Everything here runs on the node's loop; nothing blocks.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from typing import Any

import zmq
import zmq.asyncio

from metamesh.errors import TransportError
from metamesh.gossip.sockets import SocketFactory

__all__ = ["SubLinks", "drain"]

log = logging.getLogger(__name__)

#: Messages read from a ready socket before other tasks get a turn.
DRAIN_BATCH = 512


class SubLinks:
    """The endpoints one SUB socket is connected to.

    :meth:`link` connects at once (and raises :class:`TransportError` as
    :meth:`SocketFactory.connect_sub` does); :meth:`unlink` only marks the endpoint, and the
    receiving task disconnects it at its next safe point (:meth:`settle`), waking up for it
    if idle. Linking an endpoint again before then just keeps the link it has.
    """

    def __init__(self, factory: SocketFactory, sock: zmq.asyncio.Socket) -> None:
        self._factory = factory
        self._sock = sock
        self._linked: dict[str, bytes | None] = {}  # endpoint -> the server key it was linked with
        self._unlink: set[str] = set()
        self._relink: dict[str, bytes | None] = {}  # unlinked, then linked with another key
        self._wake: asyncio.Future[None] | None = None
        self.unlinked = 0
        """Disconnects done, for tests and status."""

    @property
    def pending(self) -> bool:
        """Changes wait for the receiving task's next safe point."""
        return bool(self._unlink)

    def linked(self) -> set[str]:
        """Endpoints the socket is connected to, those waiting to be unlinked included."""
        return set(self._linked)

    def link(self, endpoint: str, server_key: bytes | None) -> None:
        """Connect to ``endpoint`` (with Curve, ``server_key`` is that peer's public key)."""
        if endpoint in self._linked:
            if self._linked[endpoint] == server_key:
                self._unlink.discard(endpoint)  # still connected, and to the same key: keep it
                self._relink.pop(endpoint, None)
                return
            if self._factory.keys is not None and server_key is None:
                raise TransportError(f"{endpoint}: peer's public key is not allowlisted")
            self.unlink(endpoint)
            self._relink[endpoint] = server_key  # another key: linked again once the old link is gone
            return
        self._factory.connect_sub(self._sock, endpoint, server_key)
        self._linked[endpoint] = server_key

    def unlink(self, endpoint: str) -> None:
        """Disconnect ``endpoint`` once nothing from it can be partly read."""
        if endpoint not in self._linked:
            return
        self._unlink.add(endpoint)
        self._relink.pop(endpoint, None)
        if self._wake is not None and not self._wake.done():
            self._wake.set_result(None)

    def settle(self) -> None:
        """Apply pending unlinks. Call only where no message is partly read: right after a
        ``recv_multipart`` returned or raised ``zmq.Again``, with no poll in between."""
        for endpoint in self._unlink:
            with contextlib.suppress(zmq.ZMQError):
                self._sock.disconnect(endpoint)
            del self._linked[endpoint]
            self.unlinked += 1
        self._unlink.clear()
        relink, self._relink = self._relink, {}
        for endpoint, key in relink.items():
            try:
                self._factory.connect_sub(self._sock, endpoint, key)
            except TransportError as exc:
                log.warning("cannot link to %s again: %s", endpoint, exc)
                continue
            self._linked[endpoint] = key

    async def idle(self, poll: asyncio.Future[Any]) -> None:
        """Wait until ``poll`` is done or an unlink is asked for."""
        if self._unlink:
            return
        self._wake = asyncio.get_running_loop().create_future()
        try:
            await asyncio.wait((poll, self._wake), return_when=asyncio.FIRST_COMPLETED)
        finally:
            self._wake = None


async def drain(
    sock: zmq.asyncio.Socket,
    handle: Callable[[list[Any]], None],
    *,
    links: SubLinks | None = None,
    batch: int = DRAIN_BATCH,
) -> None:
    """Hand every message ``sock`` receives to ``handle``, until cancelled.

    A ready socket is drained with non-blocking ``recv_multipart`` (whole messages, zero-copy
    frames) up to ``batch`` at a time before the loop is awaited; ``links`` (the SUB's) are
    settled between messages. ``handle`` must not block; it may link and unlink.
    """
    raw: zmq.Socket[bytes] = zmq.Socket.shadow(sock.underlying)
    poll: asyncio.Future[Any] | None = None
    try:
        while True:
            for _ in range(batch):
                try:
                    frames = raw.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                if links is not None and links.pending:
                    links.settle()  # a whole message read, nothing polled since
                handle(frames)
            else:
                await asyncio.sleep(0)  # a full batch: let other tasks run
                continue
            if links is not None:
                links.settle()  # nothing waiting, so nothing partly read
            if poll is not None and poll.done():
                poll.result()  # raises what the poll raised (the socket closed, say)
                poll = None
            if poll is None:
                poll = asyncio.ensure_future(sock.poll())
            if links is None:
                await poll
            else:
                await links.idle(poll)
    finally:
        if poll is not None:
            poll.cancel()
