"""A frozen copy of the v1 codec as it was before the protocol moved to msgspec.

Test fixture only: the wire-compatibility tests check that it reads what the
current encoder writes. Never edit it; it is the reference v1 peer.

The wire protocol: envelope, message kinds, msgpack codec, validation, limits.

- ``envelope``: the envelope, protocol versions, the global domain, topics
- ``kinds``: one frozen typed body per message kind and its wire form
- ``codec``: frames in and out; all validation of untrusted input
- ``arrays``: numpy arrays as raw frames, zero-copy both ways
- ``limits``: every bound on received input, with LAN and EDGE profiles

This package knows nothing of sockets and never imports torch. The spec is
``PROTOCOL.md`` at the repository root.
"""

from __future__ import annotations

from tests.protocol.v1.codec import Signer, Verifier, decode, encode, relay_frames, signed_parts
from tests.protocol.v1.envelope import (
    DEFAULT_HOPS,
    GLOBAL_DOMAIN,
    PROTOCOL_MAX,
    PROTOCOL_MIN,
    Envelope,
    is_domain,
    topic_prefix,
)
from tests.protocol.v1.kinds import (
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
from tests.protocol.v1.limits import ALLOWED_DTYPES, EDGE, LAN, Limits

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
