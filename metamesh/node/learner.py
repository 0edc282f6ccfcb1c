"""The one small interface every learner implements.

A learner learns on its own data, says what to share, and merges what peers
share. It knows nothing of sockets: the node calls it, publishes what it
returns and hands it decoded, validated messages.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol, runtime_checkable

from metamesh.protocol import Body, Meta

__all__ = ["Learner", "Share", "StepPacer"]

#: What a learner wants published: the domain it belongs to and the body.
Share = tuple[str, Body]


@runtime_checkable
class Learner(Protocol):
    """Plugged into a node; all methods run on the node's event loop.

    ``step`` may await (LLM calls) and should return within a second or so;
    CPU-heavy work belongs in a worker thread (``asyncio.to_thread``). It may
    return ``False`` to say it found nothing to do: the node then waits longer
    before the next step, up to a second (see :class:`StepPacer`).

    Optional hooks the node calls when present: ``attach(node)`` once, at
    construction (for a learner that must see the node's peers), and
    ``drain_events()`` after each step, returning ``(name, fields)`` pairs
    for the node's event log.
    """

    name: str

    async def step(self) -> bool | None:
        """One unit of local learning (an episode, a training round); ``False`` if there was none to do."""

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


class StepPacer:
    """How long the node waits between two steps of its learner.

    After every step it waits the configured ``pace``, and more in two cases:

    * a step that returned ``False`` (nothing to do) backs off: ``idle_first``,
      twice that, ... up to ``idle_max``, until a step does work again;
    * no step starts less than ``min_interval`` after the one before began, so
      a learner whose step returns at once (and returns nothing) runs at most
      1 / ``min_interval`` steps a second instead of spinning a core.

    A step that takes ``min_interval`` or longer, or any step at a ``pace`` of
    ``min_interval`` or more (every experiment's), is not slowed at all.
    """

    def __init__(
        self,
        *,
        min_interval: float = 0.005,
        idle_first: float = 0.01,
        idle_max: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.min_interval = min_interval
        self.idle_first = idle_first
        self.idle_max = idle_max
        self._clock = clock
        self._began = clock()
        self._idle = 0.0

    def delay(self, did_work: bool | None, pace: float) -> float:
        """Seconds to wait now, after a step that began at the end of the last wait."""
        if did_work is False:
            self._idle = min(max(self._idle * 2, self.idle_first), self.idle_max)
            return max(pace, self._idle)
        self._idle = 0.0
        return max(pace, self.min_interval - (self._clock() - self._began))

    async def wait(self, did_work: bool | None, pace: float) -> None:
        """Sleep :meth:`delay` seconds (yielding to the loop even when that is 0)."""
        await asyncio.sleep(self.delay(did_work, pace))
        self._began = self._clock()
