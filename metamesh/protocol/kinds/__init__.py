"""One frozen typed struct per message kind, grouped by what they are for.

- ``base``: ``Body``, the base of every kind
- ``membership``: hello, heartbeat, bye, and ``PeerAddr``
- ``learning``: insight, qtable, delta, prompt
- ``meta``: meta-parameters
- ``requests``: snapshot_request, snapshot, ihave, status_request, status, graft, prune

Messages are values: never mutate one after it is built or decoded (a relay
forwards the original frames, so a mutation would not even travel).
"""

from __future__ import annotations

from collections.abc import Mapping

from metamesh.protocol.kinds.base import Body
from metamesh.protocol.kinds.learning import Delta, Insight, Prompt, QTable
from metamesh.protocol.kinds.membership import Bye, Heartbeat, Hello, PeerAddr
from metamesh.protocol.kinds.meta import Meta
from metamesh.protocol.kinds.requests import (
    Graft,
    IHave,
    Prune,
    Snapshot,
    SnapshotRequest,
    Status,
    StatusRequest,
)

__all__ = [
    "KINDS",
    "Body",
    "Bye",
    "Delta",
    "Graft",
    "Heartbeat",
    "Hello",
    "IHave",
    "Insight",
    "Meta",
    "PeerAddr",
    "Prompt",
    "Prune",
    "QTable",
    "Snapshot",
    "SnapshotRequest",
    "Status",
    "StatusRequest",
]

#: Every kind by its wire name.
KINDS: Mapping[str, type[Body]] = {
    cls.KIND: cls
    for cls in (
        Hello,
        Heartbeat,
        Bye,
        Insight,
        QTable,
        Delta,
        Meta,
        SnapshotRequest,
        Snapshot,
        IHave,
        Prompt,
        StatusRequest,
        Status,
        Graft,
        Prune,
    )
}
