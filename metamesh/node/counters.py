"""Counters a node keeps about its traffic, for status and Prometheus."""

from __future__ import annotations

from collections import Counter
from typing import Any

__all__ = ["Counters"]

_MAX_PEERS_TRACKED = 1024


class Counters:
    """Messages by kind and direction, drops, and rejections by reason and peer.

    Per-peer rejection counts are bounded: past the cap, new peers are counted
    under ``"other"`` so a flood of fake sender ids cannot grow memory.
    """

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.received: Counter[str] = Counter()
        self.relayed: Counter[str] = Counter()
        self.dropped: Counter[str] = Counter()
        self.rejected: Counter[str] = Counter()
        self.rejected_by_peer: dict[str, Counter[str]] = {}
        self.merge_failed: Counter[str] = Counter()
        """Messages the learner raised on (in merge, validate or apply_meta), by kind."""
        self.bytes_sent = 0
        self.bytes_received = 0

    def reject(self, reason: str, peer: str = "unknown") -> None:
        self.rejected[reason] += 1
        if peer not in self.rejected_by_peer and len(self.rejected_by_peer) >= _MAX_PEERS_TRACKED:
            peer = "other"
        self.rejected_by_peer.setdefault(peer, Counter())[reason] += 1

    def report(self) -> dict[str, Any]:
        return {
            "sent": dict(self.sent),
            "received": dict(self.received),
            "relayed": dict(self.relayed),
            "dropped": dict(self.dropped),
            "rejected": dict(self.rejected),
            "rejected_by_peer": {p: dict(c) for p, c in self.rejected_by_peer.items()},
            "merge_failed": dict(self.merge_failed),
            "bytes_sent": self.bytes_sent,
            "bytes_received": self.bytes_received,
        }
