"""Direct requests and replies: snapshots, lazy relay, status and mesh links."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Annotated, Any, ClassVar

import msgspec

from metamesh.protocol._fields import MAX_ITEMS, Count, Name, Names, NonNegative, plain
from metamesh.protocol.kinds.base import Body, bad
from metamesh.protocol.kinds.membership import Peers, check_endpoints
from metamesh.protocol.limits import Limits

__all__ = ["Graft", "IHave", "Prune", "Snapshot", "SnapshotRequest", "Status", "StatusRequest"]


class SnapshotRequest(Body, frozen=True):
    """A late joiner asks a peer's ROUTER for the latest state of these domains (all when empty)."""

    KIND: ClassVar[str] = "snapshot_request"
    NAMES = ("domains", "senders")
    domains: Names = ()
    senders: Names = ()
    """Only the latest messages of these authors (all when empty): how an ``ihave`` is fetched."""


class Snapshot(Body, frozen=True):
    """Ends a snapshot reply: how many messages came before it, and the newest
    sequence number per sender they cover, so the joiner can discard older live ones."""

    KIND: ClassVar[str] = "snapshot"
    NAMES = ("covered",)
    count: Count
    covered: Annotated[Mapping[Name, Count], msgspec.Meta(max_length=MAX_ITEMS)] = msgspec.field(
        default_factory=dict
    )


class IHave(Body, frozen=True):
    """Lazy relay of a large message: "I hold ``origin``'s message ``seq``; fetch it if you lack it".

    Published with hops 0 on the message's domain in place of relaying its
    bytes; ``hops`` is what the fetched message may still travel.
    """

    KIND: ClassVar[str] = "ihave"
    NAMES = ("origin", "kind")
    origin: Name
    seq: Count
    kind: Name
    hops: Annotated[int, msgspec.Meta(ge=0, le=16)]

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        if self.hops > limits.max_hops:
            raise bad("hops", self.hops)


class StatusRequest(Body, frozen=True):
    """Asks a node's ROUTER for its status (direct only)."""

    KIND: ClassVar[str] = "status_request"


class Status(Body, frozen=True):
    """A node's status report: plain data for people and tools, bounded in depth."""

    KIND: ClassVar[str] = "status"
    report: Mapping[str, Any]

    def check(self, limits: Limits) -> None:
        if not plain(dict(self.report), limits.max_plain_depth):
            raise bad("report", "not plain data, or nested too deep")


class Graft(Body, frozen=True):
    """Asks a peer to add me to its mesh for the envelope's domain (direct only)."""

    KIND: ClassVar[str] = "graft"


class Prune(Body, frozen=True):
    """Removes a mesh link; the pruned peer waits ``backoff`` seconds before grafting
    again, and may try the ``peers`` offered instead (peer exchange)."""

    KIND: ClassVar[str] = "prune"
    backoff: NonNegative = 60.0
    peers: Peers = ()

    def check(self, limits: Limits) -> None:
        Body.check(self, limits)
        check_endpoints(self.peers)
