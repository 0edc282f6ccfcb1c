"""Maintenance on timers: heartbeats (and all that runs with them), and greeting seeds.

Every ``heartbeat_interval`` a node publishes a heartbeat to its mesh neighbours, moves domains
with its learner's affinity, ticks membership and scores, warns about unreachable seeds, probes
silent peers and keeps its meshes. Seeds (and peers remembered from the checkpoint) are greeted until they
answer, backing off; the first to answer is asked for a snapshot.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable

from metamesh.errors import TransportError
from metamesh.gossip.resolve import resolve_tcp
from metamesh.node.core import Core
from metamesh.node.grafting import MeshKeeper
from metamesh.node.hosting import LearnerHost
from metamesh.node.peers import Peers
from metamesh.node.rpc import Requests
from metamesh.node.snapshots import Snapshots
from metamesh.node.trust import Trust
from metamesh.protocol import GLOBAL_DOMAIN, Envelope, PeerAddr

__all__ = ["RESOLVE_TIMEOUT", "Maintenance"]

log = logging.getLogger(__name__)

#: Seconds a host name lookup (a seed, --advertise) may take before it counts as failed.
RESOLVE_TIMEOUT = 5.0
#: Hellos a remembered peer gets before it is given up (it may have left for good).
REMEMBERED_TRIES = 4


class Maintenance:
    """The heartbeat and seed loops of one node."""

    def __init__(
        self,
        core: Core,
        *,
        peers: Peers,
        mesh: MeshKeeper,
        trust: Trust,
        host: LearnerHost,
        requests: Requests,
        snapshots: Snapshots,
        deliver: Callable[[Envelope], bool],
    ) -> None:
        self._core = core
        self._peers = peers
        self._mesh = mesh
        self._trust = trust
        self._host = host
        self._requests = requests
        self._snapshots = snapshots
        self._deliver = deliver
        self.caught_up = asyncio.Event()  # the first snapshot from a seed arrived (or failed)

    async def heartbeat_loop(self) -> None:
        core, cfg, peers = self._core, self._core.config, self._peers
        last = time.monotonic()
        while True:
            now = time.monotonic()
            stalled = now - last - cfg.heartbeat_interval
            last = now
            if stalled > cfg.suspect_after / 2:  # we stood still, not our peers
                peers.membership.forgive(stalled)
                core.events.write("stalled", seconds=round(stalled, 3))
            # To mesh neighbours only (hops 0): the rest of the network hears of us by member
            # gossip, so a node's heartbeat traffic grows with its mesh degree, not with N.
            core.publish(GLOBAL_DOMAIN, peers.heartbeat(time.time() - core.started_at), hops=0)
            learner = self._host.learner
            if learner is not None:
                self._mesh.update_domains(learner.affinity(), now)
            peers.tick(now)
            self._trust.tick(now)
            for seed, cause in self._requests.reach.due(now, len(peers.membership.alive())):
                core.events.write("seed_unreachable", seed=seed, cause=cause)
            peers.probe_silent(now)
            self._mesh.tick(now)
            await asyncio.sleep(cfg.heartbeat_interval)

    async def seed_loop(self, remembered: list[PeerAddr]) -> None:
        """Say hello to every seed until it answers, backing off, so seeds may start later.

        Peers remembered from the checkpoint get a few hellos too, so a node restarted
        without seeds (a coordinator, say) is back in its network at once.
        """
        core, peers, reach = self._core, self._peers, self._requests.reach
        pending = list(core.config.seed)
        tries = {f"{a.id}@{a.router}": REMEMBERED_TRIES for a in remembered}
        pending += [r for r in tries if r not in pending]
        snapshot_asked = False
        unresolved: set[str] = set()
        delay = 0.1
        while pending:
            for seed in list(pending):
                peer_id, _, named = seed.rpartition("@")
                try:
                    endpoint = await resolve_tcp(named, RESOLVE_TIMEOUT)
                except TransportError as exc:
                    # Said once per seed; the seed is retried, with backoff, until it resolves.
                    if seed not in unresolved:
                        unresolved.add(seed)
                        log.warning("seed %s: %s; retrying", seed, exc)
                        core.events.write("seed_unresolved", seed=seed, error=str(exc))
                    continue
                reach.trying(seed, endpoint)
                try:
                    replies = await self._requests.request(
                        endpoint, peers.hello(), timeout=1.0, peer_id=peer_id
                    )
                except (TimeoutError, TransportError) as exc:
                    log.debug("seed %s not answering yet: %s", seed, exc)
                    wire = core.wire
                    if reach.failed(seed, str(exc)) and wire.has_channel(endpoint):
                        channel = wire.channel(endpoint, peer_id)
                        if not channel.lock.locked():
                            wire.drop_channel(endpoint)  # refused: libzmq would never retry this one
                    if seed in tries:
                        tries[seed] -= 1
                        if not tries[seed]:
                            pending.remove(seed)
                    continue
                pending.remove(seed)
                reach.answered(seed)
                for env in replies:
                    peers.dispatch(env)
                    record = peers.records.get(env.sender)
                    if record is not None and record.addr.router == endpoint:
                        record.answered = True
                if not snapshot_asked:  # the first to answer, seed or remembered peer: a seed may be gone
                    snapshot_asked = True
                    core.spawn(self._catch_up(endpoint), "snapshot")
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _catch_up(self, endpoint: str) -> None:
        try:
            await self._snapshots.fetch(endpoint, self._deliver)
        finally:
            self.caught_up.set()
