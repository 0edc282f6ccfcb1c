"""The one contract between a node and its learner.

A learner learns on its own data, says what to share, and merges what peers
share. It knows nothing of sockets: the node calls it, publishes what it
returns and hands it decoded, verified messages that it has validated.
"""

from __future__ import annotations

import abc
import asyncio
import time
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

from metamesh.protocol import Body, Meta

__all__ = ["STATE_KINDS", "Learner", "NodeView", "Share", "StepPacer"]

#: What a learner wants published: the domain it belongs to and the body.
Share = tuple[str, Body]

#: The protocol's kinds of learner state (PROTOCOL.md, section 9.4): kept per (sender, kind,
#: domain), served to late joiners, relayed. The protocol's set is closed; a learner declares
#: which of them it publishes and which it accepts (``Learner.publishes``, ``Learner.accepts``).
STATE_KINDS: frozenset[str] = frozenset({"qtable", "delta", "insight", "prompt"})


class NodeView(Protocol):
    """What a learner may see of the node hosting it (given to :meth:`Learner.attach`)."""

    @property
    def id(self) -> str: ...

    def peer_domains(self) -> set[str]:
        """The domains the node's known peers announce."""
        ...


class Learner(abc.ABC):
    """Plugged into a node; every method runs on the node's event loop.

    The node calls, and only calls, these hooks:

    ==================  =========  ==============================================================
    hook                required   when
    ==================  =========  ==============================================================
    ``step()``          yes        in a loop; one unit of local learning (may await an LLM)
    ``share()``         yes        after each step: ``(domain, body)`` pairs to publish
    ``validate(...)``   no         each peer message of an accepted kind, before it is kept,
                                   merged or relayed: a reason string refuses it
    ``merge(...)``      yes        each validated peer message of an accepted kind
    ``apply_meta(m)``   no         meta-parameters from a coordinator (newest version only)
    ``affinity()``      no         each heartbeat: the domains it belongs to, in [0, 1]
    ``summary()``       no         for status and progress: a few numbers
    ``state()``         no         for checkpoints: plain data and numpy arrays
    ``load_state(s)``   no         once, after a restart, with what ``state`` returned
    ``attach(node)``    no         once, when the node is made (a :class:`NodeView`)
    ``drain_events()``  no         after each step: ``(name, fields)`` pairs for the event log
    ``drain_blame()``   no         after each step: ``(peer, reason)`` for content it refused
                                   after accepting it (outliers found while aggregating)
    ``weigh_peer(...)``  no        when a peer's trust changes (drift reports, quarantine)
    ==================  =========  ==============================================================

    ``step`` should return within a second or so; CPU-heavy work belongs in a worker
    thread (``asyncio.to_thread``). It may return ``False`` to say it found nothing to
    do: the node then waits longer before the next step (see :class:`StepPacer`).

    ``publishes`` and ``accepts`` name the state kinds (of :data:`STATE_KINDS`, plus
    ``meta`` for a coordinator) the learner publishes and wants merged; a node keeps,
    serves and relays every state kind of its domains either way, but hands the learner
    only what it accepts. ``validate`` must not raise; ``merge`` should not either, but a
    node that catches an exception there counts it (``merge_failed`` by kind), neither
    keeps nor relays that message, and keeps running.
    """

    name: str = "learner"
    publishes: frozenset[str] = STATE_KINDS
    accepts: frozenset[str] = STATE_KINDS

    @abc.abstractmethod
    async def step(self) -> bool | None:
        """One unit of local learning (an episode, a training round); ``False`` if there was none to do."""

    @abc.abstractmethod
    def share(self) -> Sequence[Share]:
        """The current shareable state; the node publishes what it returns."""

    def validate(self, sender: str, domain: str, body: Body) -> str | None:
        """``None`` to accept a peer's message; else the reason it is refused (charged to the sender)."""
        return None

    @abc.abstractmethod
    def merge(self, sender: str, domain: str, body: Body) -> None:
        """Merge a peer's validated message."""

    def apply_meta(self, meta: Meta) -> None:
        """Apply meta-parameters from a coordinator."""
        return None

    def affinity(self) -> Mapping[str, float]:
        """How much this learner belongs to each domain, in [0, 1]."""
        return {}

    def summary(self) -> Mapping[str, float]:
        """A few numbers for status and progress displays."""
        return {}

    def state(self) -> dict[str, Any]:
        """Everything learned, for checkpoints (plain data and numpy arrays)."""
        return {}

    def load_state(self, state: Mapping[str, Any]) -> None:
        """Restore from :meth:`state` after a restart."""
        return None

    def attach(self, node: NodeView) -> None:
        """Called once by the node that hosts this learner."""
        return None

    def drain_events(self) -> Sequence[tuple[str, dict[str, Any]]]:
        """Events since the last call, for the node's event log."""
        return ()

    def drain_blame(self) -> Sequence[tuple[str, str]]:
        """Peers whose content was refused since the last call, and why."""
        return ()

    def weigh_peer(self, peer: str, weight: float) -> None:
        """How much ``peer``'s state counts from now on (1 fully, 0 not at all)."""
        return None


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
