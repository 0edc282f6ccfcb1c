"""Membership: hello, heartbeat and bye, the peer addresses they exchange, and member gossip.

Protocol 1 heartbeats were flooded with a sample of peers. Heartbeats now go to mesh
neighbours only (hops 0) and carry an incarnation, a digest of the member table and a bounded
list of member updates (``news``); a hello carries the sender's whole table (``members``), the
pull a node makes when a neighbour's digest differs from its own. These keys are optional and
left out when unset, so the frames of a v1 sender are unchanged and v1 receivers ignore them.
"""

from __future__ import annotations

from typing import Annotated, ClassVar, Literal

import msgspec

from metamesh.protocol._fields import (
    Count,
    Endpoint,
    Name,
    Names,
    NonNegative,
    Text,
    is_endpoint,
    is_name,
    names_ok,
)
from metamesh.protocol.kinds.base import Body, bad
from metamesh.protocol.limits import Limits

__all__ = [
    "MAX_MEMBERS",
    "MAX_NEWS",
    "Bye",
    "Heartbeat",
    "Hello",
    "Member",
    "PeerAddr",
    "Peers",
    "check_endpoints",
    "check_members",
]

#: Member updates one heartbeat carries at most.
MAX_NEWS = 32
#: Members one hello carries at most (the whole table of a node that knows up to this many).
MAX_MEMBERS = 1024


class PeerAddr(msgspec.Struct, frozen=True, array_like=True):
    """Where to reach a peer: its id, PUB and ROUTER endpoints; ``[id, pub, router]`` on the wire."""

    id: Name
    pub: Endpoint
    router: Endpoint

    def pack(self) -> list[str]:
        return [self.id, self.pub, self.router]


Peers = Annotated[tuple[PeerAddr, ...], msgspec.Meta(max_length=1024)]


class Member(msgspec.Struct, frozen=True, array_like=True):
    """One row of a member table: ``[id, pub, router, inc, state, domains]`` on the wire.

    ``inc`` is the member's incarnation: only the member raises it (when it starts, when it
    changes domains, and to refute a suspicion of itself); ``state`` is what the sender holds.
    """

    id: Name
    pub: Endpoint
    router: Endpoint
    inc: Count
    state: Literal["alive", "suspect", "dead"]
    domains: Names = ()


News = Annotated[tuple[Member, ...], msgspec.Meta(max_length=MAX_NEWS)]
Members = Annotated[tuple[Member, ...], msgspec.Meta(max_length=MAX_MEMBERS)]


def check_endpoints(peers: tuple[PeerAddr, ...], *own: str) -> None:
    """Endpoints are IP literals (PROTOCOL.md section 4) and peer ids are names."""
    for endpoint in own:
        if not is_endpoint(endpoint):
            raise bad("endpoint", endpoint)
    for peer in peers:
        if not (is_name(peer.id) and is_endpoint(peer.pub) and is_endpoint(peer.router)):
            raise bad("peers", peer)


def check_members(members: tuple[Member, ...] | msgspec.UnsetType, key: str) -> None:
    """Member rows hold names and IP-literal endpoints, each member once."""
    if isinstance(members, msgspec.UnsetType):
        return
    if len({m.id for m in members}) != len(members):
        raise bad(key, "a member given twice")
    for m in members:
        if not (is_name(m.id) and is_endpoint(m.pub) and is_endpoint(m.router) and names_ok(m.domains)):
            raise bad(key, m)


class Hello(Body, frozen=True):
    """First message to a new peer: where to reach me, my domains, whom I know."""

    KIND: ClassVar[str] = "hello"
    NAMES = ("domains",)
    pub: Endpoint
    router: Endpoint
    domains: Names = ()
    peers: Peers = ()
    name: Text = ""
    inc: Count | msgspec.UnsetType = msgspec.UNSET
    members: Members | msgspec.UnsetType = msgspec.UNSET

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        check_endpoints(self.peers, self.pub, self.router)
        check_members(self.members, "members")


class Heartbeat(Body, frozen=True):
    """Periodic liveness to mesh neighbours, with a digest of the member table and its news.

    A v1 sender floods it with ``peers``; a current one sends it with hops 0, ``peers`` empty.
    """

    KIND: ClassVar[str] = "heartbeat"
    NAMES = ("domains",)
    pub: Endpoint
    router: Endpoint
    domains: Names = ()
    peers: Peers = ()
    uptime: NonNegative = 0.0
    inc: Count | msgspec.UnsetType = msgspec.UNSET
    digest: Count | msgspec.UnsetType = msgspec.UNSET
    size: Count | msgspec.UnsetType = msgspec.UNSET
    news: News | msgspec.UnsetType = msgspec.UNSET

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        check_endpoints(self.peers, self.pub, self.router)
        check_members(self.news, "news")


class Bye(Body, frozen=True):
    """Graceful leave: peers drop the sender at once instead of waiting for timeouts."""

    KIND: ClassVar[str] = "bye"
    reason: Text = ""
