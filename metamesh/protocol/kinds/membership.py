"""Membership: hello, heartbeat and bye, and the peer addresses they exchange."""

from __future__ import annotations

from typing import Annotated, ClassVar

import msgspec

from metamesh.protocol._fields import Endpoint, Name, Names, NonNegative, Text, is_endpoint, is_name
from metamesh.protocol.kinds.base import Body, bad
from metamesh.protocol.limits import Limits

__all__ = ["Bye", "Heartbeat", "Hello", "PeerAddr", "Peers", "check_endpoints"]


class PeerAddr(msgspec.Struct, frozen=True, array_like=True):
    """Where to reach a peer: its id, PUB and ROUTER endpoints; ``[id, pub, router]`` on the wire."""

    id: Name
    pub: Endpoint
    router: Endpoint

    def pack(self) -> list[str]:
        return [self.id, self.pub, self.router]


Peers = Annotated[tuple[PeerAddr, ...], msgspec.Meta(max_length=1024)]


def check_endpoints(peers: tuple[PeerAddr, ...], *own: str) -> None:
    """Endpoints are IP literals (PROTOCOL.md section 4) and peer ids are names."""
    for endpoint in own:
        if not is_endpoint(endpoint):
            raise bad("endpoint", endpoint)
    for peer in peers:
        if not (is_name(peer.id) and is_endpoint(peer.pub) and is_endpoint(peer.router)):
            raise bad("peers", peer)


class Hello(Body, frozen=True):
    """First message to a new peer: where to reach me, my domains, whom I know."""

    KIND: ClassVar[str] = "hello"
    NAMES = ("domains",)
    pub: Endpoint
    router: Endpoint
    domains: Names = ()
    peers: Peers = ()
    name: Text = ""

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        check_endpoints(self.peers, self.pub, self.router)


class Heartbeat(Body, frozen=True):
    """Periodic liveness, carrying the same peer exchange as hello."""

    KIND: ClassVar[str] = "heartbeat"
    NAMES = ("domains",)
    pub: Endpoint
    router: Endpoint
    domains: Names = ()
    peers: Peers = ()
    uptime: NonNegative = 0.0

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        check_endpoints(self.peers, self.pub, self.router)


class Bye(Body, frozen=True):
    """Graceful leave: peers drop the sender at once instead of waiting for timeouts."""

    KIND: ClassVar[str] = "bye"
    reason: Text = ""
