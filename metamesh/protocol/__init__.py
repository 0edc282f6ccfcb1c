"""The wire protocol: envelope, message kinds, msgpack codec, validation, limits.

- ``envelope``: the envelope, protocol versions, the global domain, topics
- ``kinds``: one frozen ``msgspec.Struct`` per message kind, a module per group of kinds
- ``_fields``: the field types those structs are made of, with their bounds (``msgspec.Meta``)
- ``codec``: frames in and out; all validation of untrusted input, in one place
- ``batch``: batch frames (version 2), many small messages of one author in one
- ``proof``: the origin digest, batch headers, and the proof that keeps a signed batch's member
  verifiable alone
- ``arrays``: numpy arrays as raw frames, zero-copy both ways
- ``limits``: every bound on received input, with LAN and EDGE profiles
- ``endpoints``: ``tcp://`` endpoints as they travel (IP literals only)

This package knows nothing of sockets and never imports torch. The spec is
``PROTOCOL.md`` at the repository root.
"""

from __future__ import annotations

from metamesh.protocol.codec import Signer, Verifier, decode, encode, relay_frames, signed_parts
from metamesh.protocol.envelope import (
    DEFAULT_HOPS,
    GLOBAL_DOMAIN,
    PROTOCOL_MAX,
    PROTOCOL_MIN,
    Envelope,
    is_domain,
    topic_prefix,
)
from metamesh.protocol.kinds import (
    KINDS,
    Body,
    Bye,
    Delta,
    Graft,
    Heartbeat,
    Hello,
    IHave,
    Insight,
    Meta,
    PeerAddr,
    Prompt,
    Prune,
    QTable,
    Snapshot,
    SnapshotRequest,
    Status,
    StatusRequest,
)
from metamesh.protocol.limits import ALLOWED_DTYPES, EDGE, LAN, Limits

__all__ = [
    "ALLOWED_DTYPES",
    "DEFAULT_HOPS",
    "EDGE",
    "GLOBAL_DOMAIN",
    "KINDS",
    "LAN",
    "PROTOCOL_MAX",
    "PROTOCOL_MIN",
    "Body",
    "Bye",
    "Delta",
    "Envelope",
    "Graft",
    "Heartbeat",
    "Hello",
    "IHave",
    "Insight",
    "Limits",
    "Meta",
    "PeerAddr",
    "Prompt",
    "Prune",
    "QTable",
    "Signer",
    "Snapshot",
    "SnapshotRequest",
    "Status",
    "StatusRequest",
    "Verifier",
    "decode",
    "encode",
    "is_domain",
    "relay_frames",
    "signed_parts",
    "topic_prefix",
]
