"""The transport a node talks through: an interface, and its ZeroMQ implementation.

A :class:`Transport` moves multipart messages and knows nothing of what they
mean. It has a publisher (a bound PUB: what the node publishes and relays), a
subscriber linked to the publishers of chosen peers and filtered by topic
prefix (a SUB), a server for direct requests (a bound ROUTER) and, per peer it
asks, a :class:`Channel` to that peer's server (a DEALER). Frames are any
buffer-protocol objects; received frames are read-only views.

:class:`ZmqTransport` is the one used on a network; ``metamesh.gossip.memory``
holds its in-memory twin for tests and simulations. Everything here runs on
one event loop; no method blocks; ``publish`` and ``reply`` never wait (a slow
receiver drops at its high-water mark).
"""

from __future__ import annotations

import abc
import asyncio
import contextlib
from collections.abc import Callable, Sequence
from typing import Any

import zmq
import zmq.asyncio

from metamesh.errors import TransportError
from metamesh.gossip.keys import CurveKeys
from metamesh.gossip.receive import SubLinks, drain
from metamesh.gossip.sockets import SocketFactory, SocketOptions
from metamesh.protocol import Limits

__all__ = [
    "Channel",
    "ConnectionWatch",
    "SocketFactory",
    "SocketOptions",
    "Transport",
    "ZmqTransport",
]

#: A received message: its frames, topic first.
Frames = list[Any]
#: Called with each published message received.
OnMessage = Callable[[Frames], None]
#: Called with each request received: an opaque identity to reply to, and the frames.
OnRequest = Callable[[object, Frames], None]


class ConnectionWatch(abc.ABC):
    """What one outgoing connection did, for diagnostics (see ``metamesh.node.reachability``).

    Event names: ``connect_delayed``, ``connect_retried``, ``connected``, ``disconnected``,
    ``handshake_succeeded``, ``handshake_failed_auth``, ``handshake_failed``.
    """

    @abc.abstractmethod
    def events(self) -> list[str]:
        """The events since the last call, oldest first; never blocks."""

    @abc.abstractmethod
    def close(self) -> None:
        """Stop watching."""


class Channel(abc.ABC):
    """Requests to one peer's server, and the replies (a DEALER).

    ``lock`` is held by whoever has a request in flight, so replies are not read
    by two requesters at once.
    """

    def __init__(self) -> None:
        self.lock = asyncio.Lock()
        self.watch: ConnectionWatch | None = None

    @abc.abstractmethod
    async def send(self, frames: Sequence[Any]) -> None:
        """Queue one message to the peer."""

    @abc.abstractmethod
    async def recv(self) -> Frames:
        """The next message from the peer; waits (cancel it to stop waiting)."""

    @abc.abstractmethod
    def close(self) -> None: ...


class Transport(abc.ABC):
    """See the module docstring. ``bind`` first; ``close`` last, once."""

    @property
    @abc.abstractmethod
    def encrypted(self) -> bool:
        """Whether every connection is authenticated and encrypted (CurveZMQ)."""

    @abc.abstractmethod
    async def bind(self, pub: str, router: str) -> tuple[str, str]:
        """Bind the publisher and the server; returns the endpoints bound (a port 0 is chosen).
        Raises :class:`TransportError`."""

    @abc.abstractmethod
    def publish(self, frames: Sequence[Any]) -> None:
        """Send one message (topic frame first) to every linked subscriber whose prefix matches."""

    @abc.abstractmethod
    def subscribe(self, prefix: bytes) -> None:
        """Receive messages whose topic starts with ``prefix``."""

    @abc.abstractmethod
    def unsubscribe(self, prefix: bytes) -> None: ...

    @abc.abstractmethod
    def link(self, endpoint: str, peer_id: str) -> None:
        """Subscribe to the publisher at ``endpoint`` (peer ``peer_id``). Raises
        :class:`TransportError` (an encrypted network without that peer's key, say)."""

    @abc.abstractmethod
    def unlink(self, endpoint: str) -> None:
        """Stop receiving from ``endpoint``, never inside a message (it may take effect later)."""

    @abc.abstractmethod
    def linked(self) -> set[str]:
        """The publishers linked, those about to be unlinked included."""

    @abc.abstractmethod
    def channel(self, endpoint: str, peer_id: str, *, watch: bool = False) -> Channel:
        """The channel to the server at ``endpoint``, made on first use (``watch``: with a
        :class:`ConnectionWatch` attached before it connects). Raises :class:`TransportError`."""

    @abc.abstractmethod
    def has_channel(self, endpoint: str) -> bool: ...

    @abc.abstractmethod
    def drop_channel(self, endpoint: str) -> None:
        """Close the channel to ``endpoint``; the next :meth:`channel` makes a new one."""

    @abc.abstractmethod
    def reply(self, identity: object, frames: Sequence[Any]) -> None:
        """Send ``frames`` to the requester ``identity`` (as given to the request handler)."""

    @abc.abstractmethod
    async def receive(self, handle: OnMessage) -> None:
        """Hand every published message received to ``handle``, until cancelled."""

    @abc.abstractmethod
    async def serve(self, handle: OnRequest) -> None:
        """Hand every request received to ``handle``, until cancelled."""

    @abc.abstractmethod
    def close(self) -> None:
        """Close everything (what was published last is given a moment to go out)."""


class _ZmqWatch(ConnectionWatch):
    _NAMES: dict[int, str] = {
        zmq.EVENT_CONNECT_DELAYED: "connect_delayed",
        zmq.EVENT_CONNECT_RETRIED: "connect_retried",
        zmq.EVENT_CONNECTED: "connected",
        zmq.EVENT_DISCONNECTED: "disconnected",
        zmq.EVENT_HANDSHAKE_SUCCEEDED: "handshake_succeeded",
        zmq.EVENT_HANDSHAKE_FAILED_AUTH: "handshake_failed_auth",
        zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL: "handshake_failed",
        zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL: "handshake_failed",
    }

    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        mask = 0
        for event in self._NAMES:
            mask |= event
        self._dealer = sock
        self._pair = sock.get_monitor_socket(mask)
        self._raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._pair.underlying)

    def events(self) -> list[str]:
        from zmq.utils.monitor import parse_monitor_message

        out = []
        while not self._pair.closed:
            try:
                frames = self._raw.recv_multipart(zmq.NOBLOCK)
            except zmq.ZMQError:
                break
            name = self._NAMES.get(int(parse_monitor_message(frames)["event"]))
            if name is not None:
                out.append(name)
        return out

    def close(self) -> None:
        if self._pair.closed:
            return
        if not self._dealer.closed:
            with contextlib.suppress(zmq.ZMQError):
                self._dealer.disable_monitor()
        self._pair.close(linger=0)


class _ZmqChannel(Channel):
    def __init__(self, sock: zmq.asyncio.Socket) -> None:
        super().__init__()
        self.sock = sock

    async def send(self, frames: Sequence[Any]) -> None:
        await self.sock.send_multipart(frames, copy=False)

    async def recv(self) -> Frames:
        return await self.sock.recv_multipart(copy=False)

    def close(self) -> None:
        if self.watch is not None:
            self.watch.close()
        self.sock.close(linger=0)


class ZmqTransport(Transport):
    """ZeroMQ sockets from one :class:`SocketFactory` (CurveZMQ, HWMs, ``MAXMSGSIZE``).

    Arrays go out zero-copy; receive loops drain ready sockets with non-blocking reads before
    awaiting; SUB links are removed only between whole messages (:class:`SubLinks`).
    """

    def __init__(
        self,
        *,
        limits: Limits,
        options: SocketOptions | None = None,
        keys: CurveKeys | None = None,
        ctx: zmq.asyncio.Context | None = None,
    ) -> None:
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.asyncio.Context()
        self.factory = SocketFactory(self.ctx, limits=limits, options=options, keys=keys)
        self._pub: zmq.asyncio.Socket | None = None
        self._router: zmq.asyncio.Socket | None = None
        self._sub: zmq.asyncio.Socket | None = None
        self._links: SubLinks | None = None
        self._channels: dict[str, _ZmqChannel] = {}
        self._closed = False

    @property
    def encrypted(self) -> bool:
        return self.factory.encrypted

    @property
    def sub_socket(self) -> zmq.asyncio.Socket:
        """The SUB socket itself, for tests that reproduce libzmq's own behaviour."""
        assert self._sub is not None, "bind first"
        return self._sub

    @property
    def links(self) -> SubLinks:
        """The SUB's links (unlinks done by the receiving task, between whole messages)."""
        assert self._links is not None, "bind first"
        return self._links

    async def bind(self, pub: str, router: str) -> tuple[str, str]:
        self.factory.start()
        try:
            self._pub, pub_bound = self.factory.pub(pub)
            self._router, router_bound = self.factory.router(router)
        except TransportError:
            self.close()
            raise
        self._pub_raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._pub.underlying)
        self._router_raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._router.underlying)
        self._sub = self.factory.sub()
        self._links = SubLinks(self.factory, self._sub)
        return pub_bound, router_bound

    def publish(self, frames: Sequence[Any]) -> None:
        self._pub_raw.send_multipart(frames, copy=False)

    def subscribe(self, prefix: bytes) -> None:
        self.sub_socket.setsockopt(zmq.SUBSCRIBE, prefix)

    def unsubscribe(self, prefix: bytes) -> None:
        self.sub_socket.setsockopt(zmq.UNSUBSCRIBE, prefix)

    def _key(self, peer_id: str) -> bytes | None:
        keys = self.factory.keys
        return None if keys is None else keys.server_key(peer_id)

    def link(self, endpoint: str, peer_id: str) -> None:
        self.links.link(endpoint, self._key(peer_id))

    def unlink(self, endpoint: str) -> None:
        self.links.unlink(endpoint)

    def linked(self) -> set[str]:
        return self.links.linked()

    def channel(self, endpoint: str, peer_id: str, *, watch: bool = False) -> Channel:
        existing = self._channels.get(endpoint)
        if existing is not None:
            return existing
        watcher: list[_ZmqWatch] = []

        def before_connect(sock: zmq.asyncio.Socket) -> None:
            watcher.append(_ZmqWatch(sock))

        sock = self.factory.dealer(
            endpoint, self._key(peer_id), before_connect=before_connect if watch else None
        )
        channel = self._channels[endpoint] = _ZmqChannel(sock)
        channel.watch = watcher[0] if watcher else None
        return channel

    def has_channel(self, endpoint: str) -> bool:
        return endpoint in self._channels

    def drop_channel(self, endpoint: str) -> None:
        channel = self._channels.pop(endpoint, None)
        if channel is not None:
            channel.close()

    def reply(self, identity: object, frames: Sequence[Any]) -> None:
        self._router_raw.send_multipart([identity, *frames], copy=False)  # type: ignore[list-item]

    async def receive(self, handle: OnMessage) -> None:
        await drain(self.sub_socket, handle, links=self.links)

    async def serve(self, handle: OnRequest) -> None:
        assert self._router is not None, "bind first"
        await drain(self._router, lambda frames: handle(frames[0], frames[1:]))

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        for sock in (self._sub, self._router):
            if sock is not None:
                sock.close(linger=0)
        if self._pub is not None:
            self._pub.close(linger=200)  # let the last message (a bye) go out
        self.factory.stop()
        if self._own_ctx:
            self.ctx.term()
