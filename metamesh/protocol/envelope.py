"""The envelope every message travels in, protocol versions and topics.

A message is a ZeroMQ multipart ``[topic, header, *arrays, signature?]``. The
topic ``b"<domain>/<kind>/<hops>"`` puts the domain first so a SUB socket
selects domains by prefix; it is the only part a relay rewrites (one hop
less), so the header and arrays reach every node byte for byte as their
author sent them, which keeps origin signatures valid across relays.
"""

from __future__ import annotations

import re
from typing import Any

import msgspec

from metamesh.protocol.kinds.base import Body

__all__ = [
    "BATCH_VERSION",
    "DEFAULT_HOPS",
    "GLOBAL_DOMAIN",
    "MESSAGE_VERSION",
    "PROTOCOL_MAX",
    "PROTOCOL_MIN",
    "Envelope",
    "is_domain",
    "topic",
    "topic_prefix",
]

#: Oldest protocol version this code accepts.
PROTOCOL_MIN = 1
#: Newest protocol version this code speaks.
#: 1 — envelope with version, kind, sender, sequence, created-at, domain,
#:     reply-to and signed flag; 14 kinds; arrays as raw frames; hops in the topic.
#: 2 — adds the batch frame (``metamesh.protocol.batch``, PROTOCOL.md section 2.2): many
#:     small messages of one author in one multipart message, one signature for all.
#:     Single messages are unchanged and still carry ``v`` = 1.
PROTOCOL_MAX = 2
#: The ``v`` of a single message: its format has not changed since version 1.
MESSAGE_VERSION = 1
#: The ``v`` of a batch header, the version that brought batches.
BATCH_VERSION = 2

#: Membership, meta-parameters and direct requests travel in this reserved domain;
#: user domains cannot start with ``_``.
GLOBAL_DOMAIN = "_global"
DEFAULT_HOPS = 6

_DOMAIN_RE = re.compile(r"[a-z0-9][a-z0-9_-]{0,47}\Z")


def is_domain(name: str) -> bool:
    """True for the global domain and for well-formed user domain names."""
    return name == GLOBAL_DOMAIN or bool(_DOMAIN_RE.match(name))


def topic_prefix(domain: str) -> bytes:
    """What a SUB socket subscribes to for one domain (the trailing ``/`` keeps
    ``math`` from also matching ``maths``)."""
    return domain.encode("ascii") + b"/"


def topic(domain: str, kind: str, hops: int) -> bytes:
    return f"{domain}/{kind}/{hops}".encode("ascii")


class Envelope(msgspec.Struct, eq=False, gc=False):
    """One message: who sent it, in which domain, in what order, and its body.

    ``(sender, seq)`` identifies a message network-wide; ``seq`` increases
    strictly per sender, across restarts. ``hops`` is how many more times it
    may be relayed. ``raw`` holds the received frames after the topic, so a
    relay forwards them without re-encoding or copying.
    """

    sender: str
    seq: int
    domain: str
    body: Body
    created: float
    hops: int = DEFAULT_HOPS
    reply_to: int | None = None
    version: int = MESSAGE_VERSION
    signature: bytes | None = None
    raw: tuple[Any, ...] = ()

    @property
    def kind(self) -> str:
        return self.body.KIND

    @property
    def id(self) -> tuple[str, int]:
        return (self.sender, self.seq)
