"""The in-memory twin of the ZeroMQ transport: several nodes in one process, no sockets.

A :class:`MemoryNetwork` is one event loop's wire. Each :meth:`MemoryNetwork.transport`
is a :class:`~metamesh.gossip.transport.Transport` that behaves as the ZeroMQ one does
where a node can tell: a subscriber receives only from publishers it is linked to and
only topics it subscribed to; what a publisher sent before a link existed is not
received (PUB/SUB drops it); a bounded inbox drops at its high-water mark; requests
to an endpoint nobody serves go unanswered (the requester times out).

Faults are deterministic for a seed: :class:`Faults` drops, duplicates and delays
messages (``delay`` plus up to ``jitter`` seconds), and :meth:`MemoryNetwork.partition`
cuts the network into groups until :meth:`MemoryNetwork.heal`. Frames are copied to
``bytes`` when sent, as the wire would.

Endpoints are ``tcp://HOST:PORT`` like real ones (peers advertise them in hellos); the
network tells transports apart by port alone, given out from 40000 up.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter, deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from metamesh.errors import TransportError
from metamesh.gossip.transport import Channel, Frames, OnMessage, OnRequest, Transport

__all__ = ["Faults", "MemoryNetwork", "MemoryTransport"]

#: Messages a transport's inbox holds before it drops (ZeroMQ's default receive HWM).
DEFAULT_HWM = 1000


@dataclass(frozen=True, slots=True, kw_only=True)
class Faults:
    """What the wire does to each message, decided by the network's seeded random source."""

    drop: float = 0.0
    duplicate: float = 0.0
    delay: float = 0.0
    jitter: float = 0.0
    requests: bool = True
    """Whether direct requests and replies suffer the same faults as published messages."""


def _port(endpoint: str) -> int:
    try:
        return int(endpoint.rsplit(":", 1)[1])
    except (IndexError, ValueError) as exc:
        raise TransportError(f"not an endpoint: {endpoint!r}") from exc


class _Inbox:
    """A bounded queue of messages and a waiter, drained in batches by one task."""

    def __init__(self, hwm: int, dropped: Counter[str], what: str) -> None:
        self.items: deque[Any] = deque()
        self.hwm = hwm
        self._dropped = dropped
        self._what = what
        self._wake: asyncio.Event = asyncio.Event()

    def put(self, item: Any) -> None:
        if len(self.items) >= self.hwm:
            self._dropped[self._what] += 1
            return
        self.items.append(item)
        self._wake.set()

    async def wait(self) -> None:
        while not self.items:
            self._wake.clear()
            await self._wake.wait()


class MemoryNetwork:
    """The wire shared by in-memory transports on one event loop."""

    def __init__(self, *, seed: int = 0, faults: Faults | None = None) -> None:
        self.faults = faults or Faults()
        self.rng = random.Random(seed)
        self._by_port: dict[int, MemoryTransport] = {}
        self._next_port = 40000
        self._groups: list[set[MemoryTransport]] = []
        self._subs: dict[int, set[MemoryTransport]] = {}  # publisher port -> linked subscribers
        self.stats: Counter[str] = Counter()
        """Messages ``sent``, ``delivered``, ``dropped`` (faults), ``duplicated``, ``cut`` (partition)."""

    def transport(self, *, hwm: int = DEFAULT_HWM, max_frame_bytes: int = 0) -> MemoryTransport:
        """A new transport on this network (``max_frame_bytes``: as ``MAXMSGSIZE``, 0 for none)."""
        return MemoryTransport(self, hwm=hwm, max_frame_bytes=max_frame_bytes)

    def partition(self, *groups: Iterable[MemoryTransport]) -> None:
        """Only transports in the same group reach each other (those in none reach no one)."""
        self._groups = [set(g) for g in groups]

    def heal(self) -> None:
        self._groups = []

    def reachable(self, a: MemoryTransport, b: MemoryTransport) -> bool:
        return not self._groups or any(a in g and b in g for g in self._groups)

    def allocate(self, transport: MemoryTransport, endpoint: str) -> str:
        port = _port(endpoint)
        if port == 0:
            while self._next_port in self._by_port:
                self._next_port += 1
            port = self._next_port
        if port in self._by_port:
            raise TransportError(f"cannot bind {endpoint}: address in use")
        self._by_port[port] = transport
        return f"{endpoint.rsplit(':', 1)[0]}:{port}"

    def release(self, transport: MemoryTransport) -> None:
        for port in [p for p, t in self._by_port.items() if t is transport]:
            del self._by_port[port]

    def add_link(self, endpoint: str, subscriber: MemoryTransport) -> None:
        """``subscriber`` receives what the publisher at ``endpoint`` sends from now on (bound
        now or later, as a ZeroMQ connect keeps trying)."""
        self._subs.setdefault(_port(endpoint), set()).add(subscriber)

    def remove_link(self, endpoint: str, subscriber: MemoryTransport) -> None:
        self._subs.get(_port(endpoint), set()).discard(subscriber)

    def subscribers(self, publisher: MemoryTransport) -> list[MemoryTransport]:
        if not publisher.pub_endpoint:
            return []
        return list(self._subs.get(_port(publisher.pub_endpoint), ()))

    def at(self, endpoint: str) -> MemoryTransport | None:
        try:
            return self._by_port.get(_port(endpoint))
        except TransportError:
            return None

    def carry(self, src: MemoryTransport, dst: MemoryTransport, deliver: Any, *, request: bool) -> None:
        """Move one message from ``src`` to ``dst``; ``deliver()`` puts it in place."""
        self.stats["sent"] += 1
        if not self.reachable(src, dst):
            self.stats["cut"] += 1
            return
        faults = self.faults
        if request and not faults.requests:
            deliver()
            self.stats["delivered"] += 1
            return
        if faults.drop and self.rng.random() < faults.drop:
            self.stats["dropped"] += 1
            return
        copies = 2 if faults.duplicate and self.rng.random() < faults.duplicate else 1
        self.stats["duplicated"] += copies - 1
        for _ in range(copies):
            wait = faults.delay + (self.rng.uniform(0, faults.jitter) if faults.jitter else 0.0)
            self.stats["delivered"] += 1
            if wait > 0:
                asyncio.get_running_loop().call_later(wait, deliver)
            else:
                deliver()


class _MemoryChannel(Channel):
    def __init__(self, owner: MemoryTransport, endpoint: str) -> None:
        super().__init__()
        self.owner = owner
        self.endpoint = endpoint
        self.replies: asyncio.Queue[Frames] = asyncio.Queue(maxsize=owner.hwm)
        self.closed = False

    async def send(self, frames: Sequence[Any]) -> None:
        if self.closed:
            raise TransportError(f"channel to {self.endpoint} is closed")
        target = self.owner.network.at(self.endpoint)
        if target is None or target.closed or not target.serving:
            return  # as a DEALER would: queued for a server that never answers
        copied = _copy(frames)
        self.owner.network.carry(
            self.owner, target, lambda: target.requests.put((self, copied)), request=True
        )

    async def recv(self) -> Frames:
        return await self.replies.get()

    def deliver(self, frames: Frames) -> None:
        if not self.closed and not self.replies.full():
            self.replies.put_nowait(frames)

    def close(self) -> None:
        self.closed = True


def _copy(frames: Sequence[Any]) -> Frames:
    return [f if type(f) is bytes else bytes(memoryview(f)) for f in frames]


class MemoryTransport(Transport):
    """One node's transport on a :class:`MemoryNetwork`; see the module docstring."""

    def __init__(self, network: MemoryNetwork, *, hwm: int = DEFAULT_HWM, max_frame_bytes: int = 0) -> None:
        self.network = network
        self.hwm = hwm
        self.max_frame_bytes = max_frame_bytes
        self.dropped: Counter[str] = Counter()
        """Messages this transport dropped: ``hwm`` (inbox full), ``too_large``."""
        self.inbox = _Inbox(hwm, self.dropped, "hwm")
        self.requests = _Inbox(hwm, self.dropped, "hwm")
        self.prefixes: set[bytes] = set()
        self.pub_endpoint = ""
        self.router_endpoint = ""
        self.serving = False
        self.closed = False
        self.published = 0
        self._links: set[str] = set()
        self._channels: dict[str, _MemoryChannel] = {}

    @property
    def encrypted(self) -> bool:
        return False

    async def bind(self, pub: str, router: str) -> tuple[str, str]:
        self.pub_endpoint = self.network.allocate(self, pub)
        try:
            self.router_endpoint = self.network.allocate(self, router)
        except TransportError:
            self.network.release(self)
            raise
        self.serving = True
        return self.pub_endpoint, self.router_endpoint

    def publish(self, frames: Sequence[Any]) -> None:
        if self.closed:
            raise TransportError("transport closed")
        self.published += 1
        copied = _copy(frames)
        topic = copied[0]
        for sub in self.network.subscribers(self):
            if sub.closed or not any(topic.startswith(p) for p in sub.prefixes):
                continue
            self.network.carry(self, sub, lambda sub=sub: sub.take(copied), request=False)

    def take(self, frames: Frames) -> None:
        """A message arrives (called by the network)."""
        if self.closed:
            return
        if self.max_frame_bytes and any(len(f) > self.max_frame_bytes for f in frames):
            self.dropped["too_large"] += 1
            return
        self.inbox.put(frames)

    def subscribe(self, prefix: bytes) -> None:
        self.prefixes.add(bytes(prefix))

    def unsubscribe(self, prefix: bytes) -> None:
        self.prefixes.discard(bytes(prefix))

    def link(self, endpoint: str, peer_id: str) -> None:
        if endpoint in self._links:
            return
        _port(endpoint)  # raises for what is no endpoint, as a connect would
        self._links.add(endpoint)
        self.network.add_link(endpoint, self)

    def unlink(self, endpoint: str) -> None:
        if endpoint not in self._links:
            return
        self._links.discard(endpoint)
        self.network.remove_link(endpoint, self)

    def linked(self) -> set[str]:
        return set(self._links)

    def channel(self, endpoint: str, peer_id: str, *, watch: bool = False) -> Channel:
        channel = self._channels.get(endpoint)
        if channel is None:
            channel = self._channels[endpoint] = _MemoryChannel(self, endpoint)
        return channel

    def has_channel(self, endpoint: str) -> bool:
        return endpoint in self._channels

    def drop_channel(self, endpoint: str) -> None:
        channel = self._channels.pop(endpoint, None)
        if channel is not None:
            channel.close()

    def reply(self, identity: object, frames: Sequence[Any]) -> None:
        if not isinstance(identity, _MemoryChannel):
            raise TransportError("not a requester of this network")
        copied = _copy(frames)
        self.network.carry(self, identity.owner, lambda: identity.deliver(copied), request=True)

    async def receive(self, handle: OnMessage) -> None:
        await self._drain(self.inbox, handle)

    async def serve(self, handle: OnRequest) -> None:
        await self._drain(self.requests, lambda item: handle(item[0], item[1]))

    @staticmethod
    async def _drain(inbox: _Inbox, handle: Any, batch: int = 512) -> None:
        while True:
            await inbox.wait()
            for _ in range(min(batch, len(inbox.items))):
                handle(inbox.items.popleft())
            await asyncio.sleep(0)

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.serving = False
        for endpoint in list(self._links):
            self.unlink(endpoint)
        for channel in self._channels.values():
            channel.close()
        self._channels.clear()
        self.network.release(self)
