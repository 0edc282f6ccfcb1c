"""Peers and membership: who is out there, where, whether alive, and which of them we link to.

A node remembers a bounded set of peers (from hellos, heartbeats, peer exchange, beacons,
seeds); membership says alive, suspect or dead with hysteresis (PROTOCOL.md section 9); the
subscriber is linked to exactly the union of the mesh peers (``reconcile``). Silent peers are
probed with hellos, since a dead peer's links are gone and nothing else would bring it back.

Heartbeats reach mesh neighbours only; the rest of the network is known by member gossip
(PROTOCOL.md, heartbeat): each heartbeat carries this node's incarnation, the digest of its
member table and a few queued updates; a neighbour whose digest differs is pulled from with a
hello, whose reply carries its whole table. Only neighbours are judged by silence.
"""

from __future__ import annotations

import asyncio
import ipaddress
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass

import msgspec

from metamesh.errors import TransportError
from metamesh.gossip.membership import (
    MemberRow,
    Membership,
    MembershipConfig,
    MemberTable,
    PeerState,
    Transition,
)
from metamesh.gossip.mesh import MeshConfig
from metamesh.gossip.meshing import Meshes
from metamesh.node.core import Core
from metamesh.node.rpc import Requests
from metamesh.protocol import GLOBAL_DOMAIN, Bye, Envelope, Heartbeat, Hello, PeerAddr
from metamesh.protocol.endpoints import parse_tcp
from metamesh.protocol.kinds.membership import MAX_MEMBERS, Member

__all__ = ["PeerRecord", "Peers", "state_name"]

log = logging.getLogger(__name__)

#: Silent peers probed per round (each at most once per ``suspect_after``).
PROBES_PER_ROUND = 8
#: A peer dead this many ``dead_after`` periods is given up: forgotten, no longer probed.
GIVE_UP_AFTER = 10
#: Member updates piggybacked on one heartbeat.
NEWS_PER_HEARTBEAT = 16


@dataclass(slots=True)
class PeerRecord:
    """What a node knows of one peer."""

    addr: PeerAddr
    domains: tuple[str, ...] = ()
    connected: bool = False
    hello_sent: bool = False
    answered: bool = False
    """It has answered a request at its advertised ROUTER: an address someone serves."""


def state_name(state: PeerState | None) -> str:
    return "new" if state is None else state.value


class Peers:
    """The peers of one node, their liveness, and the subscriber's links to them."""

    def __init__(self, core: Core, requests: Requests) -> None:
        cfg = core.config
        self._core = core
        self._requests = requests
        self.records: dict[str, PeerRecord] = {}
        self.membership = Membership(
            MembershipConfig(
                heartbeat_interval=cfg.heartbeat_interval,
                suspect_after=cfg.suspect_after,
                dead_after=cfg.dead_after,
                rejoin_heartbeats=cfg.rejoin_heartbeats,
            )
        )
        self.meshes = Meshes(
            MeshConfig(d=cfg.mesh_d, d_lo=cfg.mesh_d_lo, d_hi=cfg.mesh_d_hi, prune_backoff=cfg.prune_backoff),
            [GLOBAL_DOMAIN, *cfg.domain],
            shared=GLOBAL_DOMAIN,
        )
        self._networks = [ipaddress.ip_network(n, strict=False) for n in cfg.peer_networks]
        self._refused: set[str] = set()
        self._beacons_heard: set[str] = set()
        self._probing: set[str] = set()
        self._last_probe_round = 0.0
        # Incarnations start at the wall clock in ms, so a restarted node outranks its old rows.
        me = MemberRow(core.id, "", "", int(time.time() * 1000), PeerState.ALIVE, tuple(sorted(core.domains)))
        self.table = MemberTable(me, max_rows=cfg.max_peers * 4)
        self._pulled: dict[str, float] = {}  # peer -> when we last pulled its table
        self._pulling = False
        self.joined = asyncio.Event()  # a peer became alive
        requests.peer_of = self.peer_at

    def peer_at(self, router: str) -> str:
        return next((p for p, r in self.records.items() if r.addr.router == router), "")

    # -- what peers say ----------------------------------------------------------

    def dispatch(self, env: Envelope) -> None:
        """Apply a membership message: hello, heartbeat or bye."""
        body = env.body
        now = time.monotonic()
        match body:
            case Hello() | Heartbeat():
                self.observe(env.sender, body.pub, body.router, body.domains, now)
                for addr in body.peers:  # a v1 sender's peer exchange
                    self.learn(addr)
                if not isinstance(body.inc, int):
                    self._core.counters.received[f"v1_{body.KIND}"] += 1  # understood, as v1 meant it
                else:
                    own = MemberRow(
                        env.sender, body.pub, body.router, body.inc, PeerState.ALIVE, body.domains
                    )
                    self._gossiped(own, now)
                rows = body.members if isinstance(body, Hello) else body.news
                if not isinstance(rows, msgspec.UnsetType):
                    for m in rows:
                        self._gossiped(
                            MemberRow(m.id, m.pub, m.router, m.inc, PeerState(m.state), m.domains), now
                        )
                digest = body.digest if isinstance(body, Heartbeat) else msgspec.UNSET
                if isinstance(digest, int) and digest != self.table.digest():
                    self._pull(env.sender, now)
            case Bye():
                transition = self.membership.bye(env.sender, now)
                if transition is not None:
                    self._core.events.write(
                        "peer", peer=env.sender, old=state_name(transition.old), new="left"
                    )
                self.meshes.forget(env.sender)
                self.table.forget(env.sender)
                self.reconcile()

    def _gossiped(self, row: MemberRow, now: float) -> None:
        """A member row from a peer: merged into the table, and what changed applied."""
        if row.id == self._core.id or self.learn(PeerAddr(row.id, row.pub, row.router)) is None:
            self.table.merge(row)  # about us: refuted if it suspects us
            return
        held = self.table.merge(row)
        if held is None:
            return
        self.records[row.id].domains = held.domains
        self._transition(self.membership.told(row.id, held.state, now))

    def _transition(self, transition: Transition | None) -> None:
        if transition is None:
            return
        if transition.new is PeerState.ALIVE:
            self.joined.set()
        old, new = state_name(transition.old), transition.new.value
        self._core.events.write("peer", peer=transition.peer, old=old, new=new)
        log.info("peer %s: %s -> %s", transition.peer, old, new)

    def _pull(self, peer_id: str, now: float) -> None:
        """Pull a neighbour's whole table (pushing ours): one at a time, each peer once per
        ``suspect_after``."""
        if self._pulling or now - self._pulled.get(peer_id, -1e9) < self._core.config.suspect_after:
            return
        record = self.records.get(peer_id)
        if record is None:
            return
        if len(self._pulled) >= 4 * self._core.config.max_peers:  # bounded, like the records
            self._pulled.clear()
        self._pulled[peer_id] = now
        self._pulling = True
        self._core.counters.sent["member_pull"] += 1
        self._core.spawn(self._pull_from(record.addr), "pull")

    async def _pull_from(self, addr: PeerAddr) -> None:
        try:
            cfg = self._core.config
            replies = await self._requests.request(
                addr.router, self.hello(), timeout=cfg.heartbeat_interval * 2, peer_id=addr.id
            )
            for env in replies:
                self.dispatch(env)
        except (TimeoutError, TransportError) as exc:
            log.debug("pulling members from %s: %s", addr.id, exc)
        finally:
            self._pulling = False

    def observe(self, peer_id: str, pub: str, router: str, domains: Sequence[str] | None, now: float) -> None:
        addr = PeerAddr(peer_id, pub, router)
        if peer_id != self._core.id and self._outside_networks(addr):
            return
        record = self.learn(addr)
        if record is not None and domains is not None:
            record.domains = tuple(domains)
        transition = self.membership.observe(peer_id, now)
        if transition is not None and peer_id != self._core.id:
            self.table.judge(peer_id, transition.new)
        self._transition(transition)

    def on_beacon(self, peer_id: str, ip: str, pub_port: int, router_port: int) -> None:
        if peer_id not in self._beacons_heard and len(self._beacons_heard) < 4 * self._core.config.max_peers:
            self._beacons_heard.add(peer_id)
            self._core.events.write("beacon", peer=peer_id, ip=ip)
        self.observe(peer_id, f"tcp://{ip}:{pub_port}", f"tcp://{ip}:{router_port}", None, time.monotonic())

    def _outside_networks(self, addr: PeerAddr) -> bool:
        """Whether a peer advertises an address outside ``peer_networks`` (counted, logged once)."""
        known = self.records.get(addr.id)
        if not self._networks or (known is not None and known.addr == addr):
            return False  # no networks given, or an address already let in
        try:
            hosts = [parse_tcp(addr.pub)[0], parse_tcp(addr.router)[0]]
        except ValueError:  # not from the wire (which checks it): an address in an older checkpoint
            hosts = []
        if hosts and all(any(h in net for net in self._networks) for h in hosts):
            return False
        self._core.counters.dropped["peer_outside_networks"] += 1
        if len(self._refused) < 4 * self._core.config.max_peers and addr.id not in self._refused:
            self._refused.add(addr.id)
            log.warning("not linking to %s at %s: outside --peer-networks", addr.id, addr.pub)
        return True

    def learn(self, addr: PeerAddr) -> PeerRecord | None:
        """Remember where a peer is; links to it follow the meshes (:meth:`reconcile`)."""
        if addr.id == self._core.id or self._outside_networks(addr):
            return None
        record = self.records.get(addr.id)
        if record is not None and record.addr != addr:
            self.unlink(addr.id)
            record.addr = addr
            record.answered = False  # what answered was the old address
        if record is None:
            if len(self.records) >= self._core.config.max_peers * 4:
                return None
            record = self.records[addr.id] = PeerRecord(addr)
        return record

    # -- links -------------------------------------------------------------------

    def link(self, peer_id: str) -> bool:
        """Link the subscriber to a known peer's publisher; False if it cannot be."""
        record = self.records.get(peer_id)
        if record is None:
            return False
        if record.connected:
            return True
        try:
            self._core.wire.link(record.addr.pub, peer_id)
        except TransportError as exc:
            self._core.counters.dropped["unconnectable_peer"] += 1
            log.debug("not connecting to %s: %s", peer_id, exc)
            return False
        record.connected = True
        self._core.events.write("connect", peer=peer_id, pub=record.addr.pub)
        return True

    def unlink(self, peer_id: str) -> None:
        record = self.records.get(peer_id)
        if record is None or not record.connected:
            return
        self._core.wire.unlink(record.addr.pub)  # done by the receiving task, between whole messages
        log.debug("unlinked from %s at %s", peer_id, record.addr.pub)
        record.connected = False
        record.hello_sent = False

    def reconcile(self) -> None:
        """Hold links to exactly the union of our mesh peers."""
        desired = self.meshes.desired()
        for peer_id in desired:
            if not self.link(peer_id):
                self.meshes.forget(peer_id)
        for peer_id, record in self.records.items():
            if record.connected and peer_id not in desired:
                self.unlink(peer_id)

    # -- what we say ---------------------------------------------------------------

    def hello(self) -> Hello:
        """Our hello: where we are, a sample of peers (for v1 peers) and our whole member table."""
        core = self._core
        domains = tuple(sorted(core.domains))
        self.table.update_me(core.pub_endpoint, core.router_endpoint, domains)
        rows = tuple(_member(r) for r in self.table.table(MAX_MEMBERS) if r.pub)
        return Hello(
            core.pub_endpoint,
            core.router_endpoint,
            domains,
            self.exchange(),
            core.id,
            inc=self.table.me.inc,
            members=rows,
        )

    def heartbeat(self, uptime: float) -> Heartbeat:
        """Our heartbeat, for mesh neighbours (hops 0): incarnation, digest and a few news."""
        core, table = self._core, self.table
        domains = tuple(sorted(core.domains))
        table.update_me(core.pub_endpoint, core.router_endpoint, domains)
        news = tuple(_member(r) for r in table.news(NEWS_PER_HEARTBEAT) if r.pub)
        return Heartbeat(
            core.pub_endpoint,
            core.router_endpoint,
            domains,
            (),
            uptime,
            inc=table.me.inc,
            digest=table.digest(),
            size=table.size(),
            news=news,
        )

    def exchange(self) -> tuple[PeerAddr, ...]:
        """Peers worth telling others about: alive ones, a bounded random sample."""
        alive = [self.records[p].addr for p in self.membership.alive() if p in self.records]
        random.shuffle(alive)
        return tuple(alive[:32])

    def tick(self, now: float) -> None:
        """Membership transitions due now (neighbours judged by silence), gossiped and logged."""
        watched = [p for p, r in self.records.items() if r.connected]
        for transition in self.membership.tick(now, watched):
            self.table.judge(transition.peer, transition.new)
            self._transition(transition)

    # -- probing silent peers --------------------------------------------------------

    def probe_silent(self, now: float) -> None:
        """Ask suspect and dead peers directly whether they are back.

        A dead peer's links are gone (it left every mesh), so no heartbeat of its would
        reach us when a cut link heals: without a probe both sides would stay apart. A
        probe is ``rejoin_heartbeats`` hellos in a row, so the membership hysteresis holds.
        A peer dead for ``GIVE_UP_AFTER`` periods is forgotten; peer exchange, beacons or
        seeds bring it back if it returns. Peers that have answered us before are probed
        first: peers named in forged or mangled messages, at addresses nobody serves, must
        not take every probe slot from a real peer that is only cut off.
        """
        cfg = self._core.config
        if now - self._last_probe_round < cfg.suspect_after:
            return
        self._last_probe_round = now
        absent = self.membership.absent(now)
        self._core.rng.shuffle(absent)
        absent.sort(key=lambda item: not (item[0] in self.records and self.records[item[0]].answered))
        for peer_id, since in absent:
            if since > GIVE_UP_AFTER * cfg.dead_after and self.membership.state(peer_id) is PeerState.DEAD:
                self.membership.forget(peer_id)
                self.table.forget(peer_id)
                self._core.events.write("peer", peer=peer_id, old="dead", new="forgotten")
                continue
            if (
                len(self._probing) < PROBES_PER_ROUND
                and peer_id not in self._probing
                and peer_id in self.records
            ):
                self._probing.add(peer_id)
                self._core.spawn(self._probe(peer_id), "probe")

    async def _probe(self, peer_id: str) -> None:
        cfg = self._core.config
        try:
            for _ in range(cfg.rejoin_heartbeats):
                record = self.records.get(peer_id)
                if record is None:
                    return
                replies = await self._requests.request(
                    record.addr.router, self.hello(), timeout=cfg.heartbeat_interval * 2, peer_id=peer_id
                )
                record.answered = True
                for env in replies:
                    self.dispatch(env)
                if self.membership.state(peer_id) is PeerState.ALIVE:
                    self.reconcile()
                    return
        except (TimeoutError, TransportError) as exc:
            log.debug("probe of %s: no answer (%s)", peer_id, exc)
        finally:
            self._probing.discard(peer_id)

    def report(self) -> dict[str, dict[str, object]]:
        """Per peer: state, address, link and domains (``metamesh status``)."""
        states = self.membership.snapshot()
        return {
            pid: {
                "state": states[pid].value if pid in states else "unknown",
                "pub": rec.addr.pub,
                "connected": rec.connected,
                "domains": list(rec.domains),
            }
            for pid, rec in self.records.items()
        }


def _member(row: MemberRow) -> Member:
    return Member(row.id, row.pub, row.router, row.inc, row.state.value, row.domains)
