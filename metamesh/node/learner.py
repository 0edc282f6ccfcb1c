"""The one small interface every learner implements.

A learner learns on its own data, says what to share, and merges what peers
share. It knows nothing of sockets: the node calls it, publishes what it
returns and hands it decoded, validated messages.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from metamesh.protocol import Body, Meta

__all__ = ["Learner", "Share"]

#: What a learner wants published: the domain it belongs to and the body.
Share = tuple[str, Body]


@runtime_checkable
class Learner(Protocol):
    """Plugged into a node; all methods run on the node's event loop.

    ``step`` may await (LLM calls) and should return within a second or so;
    CPU-heavy work belongs in a worker thread (``asyncio.to_thread``).

    Optional hooks the node calls when present: ``attach(node)`` once, at
    construction (for a learner that must see the node's peers), and
    ``drain_events()`` after each step, returning ``(name, fields)`` pairs
    for the node's event log.
    """

    name: str

    async def step(self) -> None:
        """One unit of local learning (an episode, a training round)."""

    def share(self) -> Sequence[Share]:
        """The current shareable state; the node publishes only what changed enough."""

    def merge(self, sender: str, domain: str, body: Body) -> None:
        """Merge a peer's validated message. Must not raise on bad values: reject and count."""

    def apply_meta(self, meta: Meta) -> None:
        """Apply meta-parameters from a coordinator."""

    def affinity(self) -> Mapping[str, float]:
        """How much this learner belongs to each domain, in [0, 1]."""

    def summary(self) -> Mapping[str, float]:
        """A few numbers for status and progress displays."""

    def state(self) -> dict[str, Any]:
        """Everything learned, for checkpoints (plain data and numpy arrays)."""

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state` after a restart."""
