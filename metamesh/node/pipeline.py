"""The receive pipeline: decode → validate → dedup → verify → learner validate → merge → relay.

A published message is decoded and validated by the protocol, asked of the replay window
before its body and arrays are read, its signature verified, checked for age, quarantine and
staleness, shown to the learner's ``validate``, kept as its sender's latest state, merged, and
only then relayed (eagerly, or by ``ihave`` when large: PROTOCOL.md section 9.3). A message
refused at any step, by the learner included, is neither kept, served nor relayed. Nothing
here blocks or raises into the receive loop.
"""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

from metamesh.errors import ProtocolError, Reason, TransportError
from metamesh.gossip.dedup import ReplayWindow, Verdict
from metamesh.node.core import Core
from metamesh.node.hosting import LearnerHost
from metamesh.node.learner import STATE_KINDS
from metamesh.node.peers import Peers
from metamesh.node.rpc import Decoder, Requests
from metamesh.node.snapshots import StateStore
from metamesh.node.trust import HEALTH_METRICS, Trust
from metamesh.protocol import (
    Bye,
    Envelope,
    Heartbeat,
    Hello,
    IHave,
    Insight,
    Meta,
    PeerAddr,
    Snapshot,
    SnapshotRequest,
    relay_frames,
)
from metamesh.protocol.batch import UNBATCHED_KINDS, decode_batch, is_batch, relay_batch

__all__ = ["LAZY_KINDS", "MEMBERSHIP_KINDS", "UNRELAYED_KINDS", "Pipeline"]

log = logging.getLogger(__name__)

#: Kinds never relayed: a leave concerns its linked peers only, and direct requests published
#: instead of sent (PROTOCOL.md section 2.1) are not acted on at all.
UNRELAYED_KINDS = frozenset({"bye"}) | UNBATCHED_KINDS
#: Kinds that keep a quarantined peer known as alive; everything else of it is ignored.
MEMBERSHIP_KINDS = frozenset({"hello", "heartbeat", "bye"})
#: Kinds relayed by ``ihave`` when large: learner state and the coordinator's meta-parameters.
LAZY_KINDS = STATE_KINDS | {"meta"}
#: How long a node waits for the direct copy of a message announced by ``ihave`` before fetching it.
LAZY_FETCH_DELAY = 0.05


class Pipeline:
    """Everything a node does with a message it receives."""

    def __init__(
        self,
        core: Core,
        *,
        decoder: Decoder,
        trust: Trust,
        store: StateStore,
        host: LearnerHost,
        peers: Peers,
        requests: Requests,
    ) -> None:
        cfg = core.config
        self._core = core
        self._decode = decoder
        self._trust = trust
        self._store = store
        self._host = host
        self._peers = peers
        self._requests = requests
        # Exactly-once delivery per (sender, seq), IPsec-style; stale and future timestamps are
        # refused besides, so a replay after a sender is evicted from the window is caught too.
        self.replay = ReplayWindow(window=cfg.replay_window, max_senders=max(4096, cfg.max_peers * 8))
        self._fetching: set[tuple[str, int]] = set()  # announced by ihave, being fetched

    # -- published messages ------------------------------------------------------------

    def on_published(self, frames: list[Any]) -> None:
        """One message from the subscriber (the transport's receive loop calls this)."""
        core = self._core
        size = 0
        for frame in frames:
            size += len(frame)
        core.counters.bytes_received += size
        if is_batch(frames[0]):
            self._on_batch(frames, size)
            return
        env = self._decode(frames, self._known)
        if env is None:
            return
        if self._fresh(env):
            self.accept(env, env.hops, size)

    def _fresh(self, env: Envelope) -> bool:
        age = time.time() - env.created
        if age > self._core.config.max_message_age or -age > self._core.config.max_clock_skew:
            self._core.counters.reject((Reason.STALE if age > 0 else Reason.FUTURE).value, env.sender)
            return False
        return True

    def _on_batch(self, frames: list[Any], size: int) -> None:
        """A batch (PROTOCOL.md section 2.2): checked whole, its members delivered one by one, and
        relayed whole, as its author signed it, only if no member was refused and one was new."""
        core = self._core
        try:
            sender, members = decode_batch(frames, core.config.limits, verify=core.verifier)
        except ProtocolError as exc:  # counted as the decoder counts a single message's refusal
            author = exc.author if exc.author is not None and exc.author != core.id else None
            core.counters.reject(exc.reason.value, author or "unknown")
            if author is not None:
                self._trust.blame(author, exc.reason.value)
            log.debug("rejected a batch: %s", exc)
            return
        if sender == core.id:
            core.counters.dropped["duplicate"] += len(members)
            return
        core.counters.received["batch"] += 1
        new = refused = 0
        hops = members[0].hops
        for env in members:
            if not self._fresh(env):
                refused += 1
                continue
            verdict = self.deliver(env)
            new += verdict is not None
            refused += verdict is False
        if new and not refused and hops > 0:
            core.wire.publish(relay_batch(frames, hops))
            core.counters.relayed["batch"] += 1

    def _known(self, sender: str, seq: int) -> bool:
        """Our own message come back, or one already delivered: not worth reading its arrays."""
        if sender == self._core.id:
            return True
        verdict = self.replay.check(sender, seq)
        if verdict is Verdict.TOO_OLD:
            raise ProtocolError(Reason.REPLAYED, f"{sender}#{seq} is below its replay window")
        return verdict is Verdict.DUPLICATE

    def deliver(self, env: Envelope) -> bool | None:
        """Deliver a message once: None if it was not new, else whether it passed every check
        (and may be relayed)."""
        core = self._core
        verdict = self.replay.accept(env.sender, env.seq)
        if verdict is not Verdict.NEW:
            core.counters.dropped["duplicate" if verdict is Verdict.DUPLICATE else "too_old"] += 1
            return None
        kind = env.body.KIND
        if self._trust.quarantined(env.sender) and kind not in MEMBERSHIP_KINDS:
            core.counters.reject(Reason.QUARANTINED.value, env.sender)  # neither merged nor relayed
            return False
        core.counters.received[kind] += 1
        return self.apply(env)

    def accept(self, env: Envelope, hops: int, size: int) -> None:
        """Deliver a message once and, if every check passed, relay it on."""
        core = self._core
        if not self.deliver(env) or hops <= 0 or env.kind in UNRELAYED_KINDS:
            return
        if not (env.kind in LAZY_KINDS and 0 < core.config.lazy_relay_bytes < size):
            core.wire.publish(relay_frames(env))
            core.counters.relayed[env.kind] += 1
        elif self._store.holds(env.sender, env.kind, env.domain, env.seq):
            # Peers linked to the author have it already; the others fetch it from us (gossipsub's
            # IHAVE/IWANT), so a large delta crosses each link about once instead of once per relay.
            core.publish(env.domain, IHave(env.sender, env.seq, env.kind, hops - 1), hops=0)
            core.counters.relayed[env.kind] += 1

    def deliver_snapshot(self, env: Envelope) -> bool:
        """A message from a snapshot reply: applied as a live one, never relayed; True if applied."""
        if self._trust.quarantined(env.sender):
            return False
        return self.apply(env)

    def apply(self, env: Envelope) -> bool:
        """Act on a checked message; True if it passed every check and may be relayed."""
        core, body = self._core, env.body
        match body:
            case Hello() | Heartbeat() | Bye():
                self._peers.dispatch(env)
            case IHave():
                self._on_ihave(env.sender, env.domain, body)
            case Meta():
                meta = self._store.meta
                if meta is None or body.version > meta.version:
                    self._store.hold_meta(body, env.raw, env.id)
                    core.events.write("meta", version=body.version, sender=env.sender)
                    self._host.apply_meta(body)
            case _ if env.kind in STATE_KINDS:
                return self._apply_state(env)
            case _:
                core.counters.dropped[f"unexpected_{env.kind}"] += 1
                return False
        return True

    def _apply_state(self, env: Envelope) -> bool:
        core, body, kind = self._core, env.body, env.body.KIND
        if isinstance(body, Insight) and not HEALTH_METRICS.isdisjoint(body.metrics):
            self._trust.peer_health(env.sender, body.metrics)
        if self._store.seq(env.sender, kind, env.domain) >= env.seq:
            core.counters.dropped["stale"] += 1
            return False
        reason = self._host.validate(env)
        if reason is not None:
            core.counters.reject(reason, env.sender)  # refused by the learner: not kept, not relayed
            self._trust.blame(env.sender, reason)
            return False
        previous = self._store.keep(env.sender, kind, env.domain, env.seq, env.raw)
        if not self._host.merge(env):
            self._store.restore(env.sender, kind, env.domain, previous)
            return False
        return True

    # -- lazy relay ----------------------------------------------------------------------

    def _on_ihave(self, announcer: str, domain: str, body: IHave) -> None:
        key = (body.origin, body.seq)
        if body.origin == self._core.id or self.replay.check(*key) is not Verdict.NEW:
            return
        if self._store.has_newer(body.origin, body.kind, domain, body.seq):
            return
        record = self._peers.records.get(announcer)
        if key in self._fetching or record is None or body.kind not in LAZY_KINDS:
            return
        self._fetching.add(key)
        self._core.spawn(self._fetch_announced(record.addr, domain, body), "fetch")

    async def _fetch_announced(self, announcer: PeerAddr, domain: str, body: IHave) -> None:
        key = (body.origin, body.seq)
        try:
            await asyncio.sleep(LAZY_FETCH_DELAY)  # the direct copy is usually on its way
            if self.replay.check(*key) is not Verdict.NEW:
                return
            request = SnapshotRequest((domain,), (body.origin,))
            replies = await self._requests.request(
                announcer.router, request, timeout=5.0, peer_id=announcer.id
            )
        except (TimeoutError, TransportError) as exc:
            log.debug("fetching %s#%d from %s failed: %s", *key, announcer.id, exc)
            return
        finally:
            self._fetching.discard(key)
        for env in replies:
            if not isinstance(env.body, Snapshot) and env.sender != self._core.id:
                self._core.counters.received["fetched"] += 1
                self.accept(env, body.hops, sum(memoryview(f).nbytes for f in env.raw))
