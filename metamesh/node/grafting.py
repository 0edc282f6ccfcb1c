"""Meshes kept within their degree band by graft and prune, and domains joined and left.

PROTOCOL.md sections 9.1 and 9.2: every heartbeat the meshes say whom to graft and prune
(``tick``); a graft is asked of the peer's server, and a prune in reply (or no answer) backs
that peer off. The subscriber's links follow (``Peers.reconcile``).
"""

from __future__ import annotations

import contextlib
import logging
import time
from collections.abc import Mapping, Sequence

from metamesh.errors import TransportError
from metamesh.gossip.hysteresis import DomainMembership
from metamesh.gossip.membership import PeerState
from metamesh.node.core import Core
from metamesh.node.peers import Peers
from metamesh.node.rpc import Requests
from metamesh.protocol import GLOBAL_DOMAIN, Graft, PeerAddr, Prune, topic_prefix

__all__ = ["MeshKeeper"]

log = logging.getLogger(__name__)


class MeshKeeper:
    """Grafts, prunes, and the domains the node is in."""

    def __init__(self, core: Core, peers: Peers, requests: Requests) -> None:
        cfg = core.config
        self._core = core
        self._peers = peers
        self._requests = requests
        self.domain_membership = DomainMembership(
            enter=cfg.domain_enter,
            exit=cfg.domain_exit,
            min_dwell=cfg.domain_dwell,
            fixed=frozenset(cfg.domain),
        )

    def subscribe_all(self) -> None:
        """Subscribe to ``_global`` and every domain the node is in (at start)."""
        wire = self._core.wire
        wire.subscribe(topic_prefix(GLOBAL_DOMAIN))
        for domain in self._core.domains:
            wire.subscribe(topic_prefix(domain))

    # -- requests from peers ---------------------------------------------------------

    def on_graft(self, domain: str, peer: str, now: float) -> bool:
        """A peer asks into our mesh of ``domain``: True if it is in (and linked)."""
        if peer in self._peers.records and self._peers.meshes.on_graft(domain, peer, now):
            self._peers.reconcile()
            return True
        return False

    def on_prune(self, domain: str, peer: str, backoff: float, addrs: Sequence[PeerAddr]) -> None:
        self._peers.meshes.pruned(domain, peer, time.monotonic(), backoff)
        for addr in addrs:
            self._peers.learn(addr)
        self._peers.reconcile()

    # -- every heartbeat ---------------------------------------------------------------

    def update_domains(self, affinity: Mapping[str, float], now: float) -> None:
        """Join and leave domains as the learner's affinity crosses the Schmitt trigger."""
        core, wire, meshes = self._core, self._core.wire, self._peers.meshes
        for change in self.domain_membership.update(affinity, now):
            prefix = topic_prefix(change.domain)
            if change.joined:
                wire.subscribe(prefix)
                core.domains.add(change.domain)
                meshes.join(change.domain)
            else:
                wire.unsubscribe(prefix)
                core.domains.discard(change.domain)
                for peer_id in meshes.leave(change.domain):
                    core.spawn(self.prune(peer_id, change.domain), "prune")
            core.events.write(
                "domain", domain=change.domain, joined=change.joined, affinity=round(change.affinity, 4)
            )

    def tick(self, now: float) -> None:
        peers = self._peers
        states = peers.membership.snapshot()
        alive = [p for p, s in states.items() if s is PeerState.ALIVE and p in peers.records]
        present = [p for p, s in states.items() if s is not PeerState.DEAD and p in peers.records]

        def per_domain(ids: list[str]) -> dict[str, list[str]]:
            out = {d: [p for p in ids if d in peers.records[p].domains] for d in self._core.domains}
            out[GLOBAL_DOMAIN] = ids
            return out

        answered = [p for p in present if peers.records[p].answered]
        actions = peers.meshes.tick(now, per_domain(alive), self._core.rng, per_domain(present), answered)
        for domain, graft, prune in actions:
            for peer_id in graft:
                self._core.spawn(self.graft(peer_id, domain), "graft")
            for peer_id in prune:
                self._core.spawn(self.prune(peer_id, domain), "prune")
        peers.reconcile()

    # -- asking peers ------------------------------------------------------------------

    async def graft(self, peer_id: str, domain: str) -> None:
        """Ask a peer into our mesh of ``domain``; a prune in reply means not now."""
        peers = self._peers
        record = peers.records.get(peer_id)
        if record is None:
            return
        try:
            if not record.hello_sent:
                record.hello_sent = True
                for env in await self._requests.request(record.addr.router, peers.hello(), timeout=2.0):
                    peers.dispatch(env)
            [reply] = await self._requests.request(record.addr.router, Graft(), timeout=2.0, domain=domain)
            record.answered = True
        except (TimeoutError, TransportError, ValueError) as exc:
            log.debug("graft %s in %s failed: %s", peer_id, domain, exc)
            # Backed off like a prune: a peer that never answers (an address nobody serves, say)
            # must not keep a mesh slot, nor the next one, from peers that do.
            peers.meshes.pruned(domain, peer_id, time.monotonic(), peers.meshes.config.prune_backoff)
            peers.reconcile()
            return
        if isinstance(reply.body, Prune):
            peers.meshes.pruned(domain, peer_id, time.monotonic(), reply.body.backoff)
            peers.reconcile()

    async def prune(self, peer_id: str, domain: str) -> None:
        record = self._peers.records.get(peer_id)
        if record is not None:
            with contextlib.suppress(TimeoutError, TransportError):
                body = Prune(self._peers.meshes.config.prune_backoff, self._peers.exchange())
                await self._requests.request(
                    record.addr.router, body, timeout=2.0, domain=domain, expect_reply=False
                )
