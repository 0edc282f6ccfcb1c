"""The latest state per (sender, kind, domain), and serving it to late joiners (the Clone pattern).

PROTOCOL.md sections 9.4 and 9.5. A message is kept here only once it passed every check the
node makes, the learner's own validation included, so what a node serves is what it accepted.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

from metamesh.errors import TransportError
from metamesh.node.core import Core
from metamesh.node.learner import STATE_KINDS
from metamesh.node.rpc import Requests
from metamesh.protocol import GLOBAL_DOMAIN, Envelope, Meta, Snapshot, SnapshotRequest

__all__ = ["Latest", "Snapshots", "StateStore"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class Latest:
    """One kept message: its sequence number, domain and frames as authored (header on)."""

    seq: int
    domain: str
    frames: tuple[Any, ...] = field(repr=False)


_NO_LATEST = Latest(-1, "", ())


class StateStore:
    """The latest accepted message per ``(sender, kind, domain)``, and the newest meta held."""

    def __init__(self) -> None:
        self.latest: dict[tuple[str, str, str], Latest] = {}
        self.meta: Meta | None = None
        self.meta_frames: tuple[Any, ...] = ()
        self.meta_id: tuple[str, int] = ("", -1)  # (sender, seq) of the meta held

    def seq(self, sender: str, kind: str, domain: str) -> int:
        """The sequence number kept for that key, -1 if none."""
        return self.latest.get((sender, kind, domain), _NO_LATEST).seq

    def keep(self, sender: str, kind: str, domain: str, seq: int, frames: tuple[Any, ...]) -> Latest | None:
        """Keep a message; returns what it replaced (to put back if the merge fails)."""
        key = (sender, kind, domain)
        previous = self.latest.get(key)
        self.latest[key] = Latest(seq, domain, frames)
        return previous

    def restore(self, sender: str, kind: str, domain: str, previous: Latest | None) -> None:
        key = (sender, kind, domain)
        if previous is None:
            self.latest.pop(key, None)
        else:
            self.latest[key] = previous

    def hold_meta(self, meta: Meta, frames: tuple[Any, ...], env_id: tuple[str, int]) -> None:
        self.meta, self.meta_frames, self.meta_id = meta, frames, env_id

    def own(self, env: Envelope, frames: tuple[Any, ...]) -> None:
        """Keep what this node published, if it is learner state or meta: served like a peer's."""
        body = env.body
        if isinstance(body, Meta):  # a coordinator serves its own meta to late joiners too
            self.hold_meta(body, frames, env.id)
        elif body.KIND in STATE_KINDS:
            self.keep(env.sender, body.KIND, env.domain, env.seq, frames)

    def signed(self, env: Envelope, frames: tuple[Any, ...]) -> None:
        """Own state coalesced and sent signed: its final frames (a proved batch member, or
        signed alone) replace the header kept at publish, if it is still what is kept."""
        if self.holds(env.sender, env.body.KIND, env.domain, env.seq):
            self.own(env, frames)

    def holds(self, sender: str, kind: str, domain: str, seq: int) -> bool:
        """Whether this exact message is what we keep (and serve) for ``(sender, kind, domain)``."""
        if kind == "meta":
            return self.meta_id == (sender, seq)
        return self.seq(sender, kind, domain) == seq

    def has_newer(self, sender: str, kind: str, domain: str, seq: int) -> bool:
        """Whether what we hold for that key is ``seq`` or newer."""
        if kind == "meta":
            return self.meta_id[0] == sender and self.meta_id[1] >= seq
        return self.seq(sender, kind, domain) >= seq

    def entries(
        self, domains: AbstractSet[str], senders: AbstractSet[str]
    ) -> Iterator[tuple[str, str, bytes, tuple[Any, ...], int]]:
        """``(sender, kind, topic, frames, seq)`` of what a snapshot filtered so carries."""
        for (sender, kind, _), latest in list(self.latest.items()):
            if (domains and latest.domain not in domains) or (senders and sender not in senders):
                continue
            yield sender, kind, f"{latest.domain}/{kind}/0".encode(), latest.frames, latest.seq
        if self.meta is not None and self.meta_frames and (not senders or self.meta_id[0] in senders):
            yield self.meta_id[0], "meta", f"{GLOBAL_DOMAIN}/meta/0".encode(), self.meta_frames, -1

    def report(self) -> dict[str, int]:
        return {f"{s}/{k}/{d}": latest.seq for (s, k, d), latest in self.latest.items()}


class Snapshots:
    """Serves snapshots from a :class:`StateStore` and asks peers for theirs."""

    def __init__(self, core: Core, store: StateStore, requests: Requests) -> None:
        self._core = core
        self._store = store
        self._requests = requests
        core.signed = store.signed

    def serve(
        self, identity: object, request: Envelope, domains: set[str], senders: AbstractSet[str]
    ) -> None:
        """The latest message per (sender, kind, domain) as authored, then an end mark."""
        covered: dict[str, int] = {}
        count = 0
        wire = self._core.wire
        self._core.flush()  # own state published in this turn is signed once it is sent
        for sender, kind, topic, frames, seq in self._store.entries(domains, senders):
            wire.reply(identity, [topic, *frames])
            if kind != "meta":
                covered[sender] = max(covered.get(sender, 0), seq)
            count += 1
        self._requests.reply(identity, request, Snapshot(count, covered))

    async def fetch(self, router: str, deliver: Callable[[Envelope], bool]) -> None:
        """Catch up on what was published before we linked; ``deliver`` each message (True:
        it was applied)."""
        try:
            replies = await self._requests.request(
                router, SnapshotRequest(tuple(sorted(self._core.domains))), timeout=10.0
            )
        except (TimeoutError, TransportError) as exc:
            log.warning("snapshot from %s failed: %s", router, exc)
            return
        applied = 0
        for env in replies:
            if isinstance(env.body, Snapshot):
                self._core.events.write("snapshot", source=router, count=env.body.count, applied=applied)
                continue
            if env.sender != self._core.id and deliver(env):
                applied += 1
