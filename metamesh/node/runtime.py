"""The node: a small facade over its parts, one concern each.

A :class:`Node` is an async context manager. ``start`` returns once its transport is bound
and its endpoints known; every task it runs is owned by the node and cancelled (under a time
limit) by ``stop``, which first says ``bye`` and writes a checkpoint.

========================  ==================================================================
part                      concern
========================  ==================================================================
``core.Core``             config, identity, transport, counters, event log, tasks, sending
``pipeline.Pipeline``     decode → validate → dedup → verify → learner validate → merge → relay
``peers.Peers``           known peers, membership, the subscriber's links, probes
``grafting.MeshKeeper``   meshes by graft and prune, domains joined and left
``timers.Maintenance``    heartbeats and what runs with them, greeting seeds
``rpc``                   requests to peers (``Requests``), answering ours (``RequestServer``)
``snapshots``             the latest state per sender, served to late joiners
``checkpoints``           the checkpoint on disk
``hosting.LearnerHost``   the learner's loop and every call into it, guarded
``trust.Trust``           scores, quarantine, weights from peers' drift reports
========================  ==================================================================
"""

from __future__ import annotations

import contextlib
import logging
import time
from typing import Any

from metamesh import __version__
from metamesh.errors import ConfigError, StateError, TransportError
from metamesh.gossip.beacon import Beacon
from metamesh.gossip.keys import load_keys
from metamesh.gossip.membership import Membership
from metamesh.gossip.resolve import resolve_host
from metamesh.gossip.score import PeerScores
from metamesh.gossip.transport import SocketOptions, Transport, ZmqTransport
from metamesh.node.checkpoints import Checkpoints
from metamesh.node.config import NodeConfig
from metamesh.node.core import Core
from metamesh.node.counters import Counters
from metamesh.node.grafting import MeshKeeper
from metamesh.node.hosting import LearnerHost
from metamesh.node.learner import Learner
from metamesh.node.metrics import MetricsServer
from metamesh.node.peers import PeerRecord, Peers
from metamesh.node.pipeline import Pipeline
from metamesh.node.reachability import Reachability
from metamesh.node.rpc import Decoder, Requests, RequestServer
from metamesh.node.snapshots import Latest, Snapshots, StateStore
from metamesh.node.state import NodeDir, SequenceLease
from metamesh.node.timers import RESOLVE_TIMEOUT, Maintenance
from metamesh.node.trust import Trust
from metamesh.protocol import GLOBAL_DOMAIN, Body, Bye, Envelope, Meta
from metamesh.protocol.endpoints import format_tcp

__all__ = ["Node", "PeerRecord"]

log = logging.getLogger(__name__)

STOP_TIMEOUT = 5.0


class Node:
    """One metamesh node. Use ``async with Node(config, learner=...) as node:``.

    ``transport`` defaults to ZeroMQ sockets (:class:`ZmqTransport`); pass a
    ``metamesh.gossip.memory`` transport to run nodes in one process without sockets.
    """

    def __init__(
        self, config: NodeConfig, *, learner: Learner | None = None, transport: Transport | None = None
    ) -> None:
        self.config = config
        self.learner = learner
        home = NodeDir(config.home)  # first: a home in use (HomeInUse) stops us before anything opens
        try:
            node_id = home.identity(config.name)
        except StateError:
            home.close()
            raise
        self.dir = home
        self.id = node_id
        self._core = core = Core(config, home, node_id, transport)
        self._trust = Trust(core, learner)
        self._host = LearnerHost(core, learner, self._trust)
        self._store = StateStore()
        decoder = Decoder(core, self._trust)
        self._reach = Reachability(
            config.seed,
            own_id=node_id,
            keys=None,
            keys_dir=config.keys,
            bound=config.dead_after,
            now=time.monotonic(),
        )
        self._requests = Requests(core, decoder, self._reach)
        self._peers = Peers(core, self._requests)
        self._mesh = MeshKeeper(core, self._peers, self._requests)
        self._snapshots = Snapshots(core, self._store, self._requests)
        self._pipeline = Pipeline(
            core,
            decoder=decoder,
            trust=self._trust,
            store=self._store,
            host=self._host,
            peers=self._peers,
            requests=self._requests,
        )
        self._server = RequestServer(
            core,
            decoder=decoder,
            requests=self._requests,
            peers=self._peers,
            mesh=self._mesh,
            snapshots=self._snapshots,
            status=self.status,
        )
        self._checkpoints = Checkpoints(core, self._peers, self._host)
        self._timers = Maintenance(
            core,
            peers=self._peers,
            mesh=self._mesh,
            trust=self._trust,
            host=self._host,
            requests=self._requests,
            snapshots=self._snapshots,
            deliver=self._pipeline.deliver_snapshot,
        )
        self._beacon: Beacon | None = None
        self._metrics: MetricsServer | None = None
        self.metrics_port = 0
        if learner is not None:
            learner.attach(self)  # a learner that needs to see the node (the coordinator: its peers' domains)

    # -- the public face -------------------------------------------------------------

    @property
    def transport(self) -> Transport:
        """The transport, once started (publish raw frames through it to test a receiver)."""
        return self._core.wire

    @property
    def counters(self) -> Counters:
        return self._core.counters

    @property
    def events(self) -> Any:
        return self._core.events

    @property
    def sequence(self) -> SequenceLease:
        """This node's sequence numbers (``peek`` the next; ``next`` takes one)."""
        return self._core.seq

    @property
    def membership(self) -> Membership:
        return self._peers.membership

    @property
    def peers(self) -> dict[str, PeerRecord]:
        return self._peers.records

    @property
    def domains(self) -> set[str]:
        return self._core.domains

    @property
    def latest(self) -> dict[tuple[str, str, str], Latest]:
        """The latest accepted message per (sender, kind, domain): what late joiners are served."""
        return self._store.latest

    @property
    def meta(self) -> Meta | None:
        return self._store.meta

    @property
    def scores(self) -> PeerScores:
        return self._trust.scores

    @property
    def peer_weights(self) -> dict[str, float]:
        return self._trust.peer_weights

    @property
    def pub_endpoint(self) -> str:
        return self._core.pub_endpoint

    @property
    def router_endpoint(self) -> str:
        return self._core.router_endpoint

    @property
    def restored(self) -> bool:
        return self._checkpoints.restored

    @property
    def checkpoint_failed(self) -> bool:
        """The last checkpoint could not be written (the node runs on in memory)."""
        return self._checkpoints.failed

    def peer_domains(self) -> set[str]:
        """The domains the known peers announce (for learners: ``NodeView``)."""
        return {d for record in self._peers.records.values() for d in record.domains}

    def link(self, peer_id: str) -> bool:
        """Link to a known peer's publisher now (meshes undo it at their next tick)."""
        return self._peers.link(peer_id)

    def unlink(self, peer_id: str) -> None:
        self._peers.unlink(peer_id)

    def receive(self, frames: list[Any]) -> None:
        """Run one published message through the receive pipeline, as if it had arrived."""
        self._pipeline.on_published(frames)

    # -- lifecycle -------------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind the transport, restore the checkpoint and start every task; returns when ready."""
        core, cfg = self._core, self.config
        try:  # before anything is bound: a name peers cannot use stops the start cleanly
            host = await resolve_host(cfg.advertised_host, RESOLVE_TIMEOUT)
        except TransportError as exc:
            self._release()
            raise ConfigError(
                f"cannot advertise {cfg.advertised_host!r} to peers: {exc}; "
                "give --advertise the address peers should reach this node at"
            ) from exc
        keys = load_keys(cfg.keys) if cfg.keys is not None else None
        if keys is not None:
            # Every message this node authors is signed; every message it accepts must be.
            from metamesh.gossip.signing import OriginSigner, OriginVerifier

            assert keys.sign_secret is not None and keys.sign_public is not None
            core.signer = OriginSigner(keys.sign_secret)
            core.verifier = OriginVerifier({**(keys.signers or {}), self.id: keys.sign_public})
            self._reach.keys = keys
        if core.transport is None:
            options = SocketOptions(send_hwm=cfg.send_hwm, recv_hwm=cfg.recv_hwm)
            core.transport = ZmqTransport(limits=cfg.limits, options=options, keys=keys)
        try:
            pub_bound, router_bound = await core.wire.bind(
                format_tcp(cfg.host, cfg.pub_port), format_tcp(cfg.host, cfg.router_port)
            )
        except TransportError:
            self._release()
            raise
        pub_port, router_port = int(pub_bound.rsplit(":", 1)[1]), int(router_bound.rsplit(":", 1)[1])
        core.pub_endpoint, core.router_endpoint = format_tcp(host, pub_port), format_tcp(host, router_port)
        self._mesh.subscribe_all()
        self._checkpoints.restore()
        core.started_at = time.time()
        core.events.write(
            "start",
            node=self.id,
            pub=core.pub_endpoint,
            router=core.router_endpoint,
            version=__version__,
            restored=self.restored,
            seq=core.seq.peek,
        )
        core.spawn(core.wire.receive(self._pipeline.on_published), "sub")
        core.spawn(core.wire.serve(self._server), "router")
        core.spawn(self._timers.heartbeat_loop(), "heartbeat")
        core.spawn(self._checkpoints.loop(), "checkpoint")
        core.spawn(self._timers.seed_loop(self._checkpoints.remembered), "seeds")
        if self.learner is not None:
            learning = self._host.learn_loop(
                caught_up=self._timers.caught_up,
                peers_alive=lambda: len(self._peers.membership.alive()),
                peer_joined=self._peers.joined,
                checkpoint=self._checkpoints.write_async,
                publish=self.publish,
            )
            core.spawn(learning, "learn")
        if cfg.beacon:
            self._beacon = Beacon(
                own_id=self.id,
                pub_port=pub_port,
                router_port=router_port,
                port=cfg.beacon_port,
                address=cfg.beacon_address,
                interval=cfg.beacon_interval,
                on_peer=self._peers.on_beacon,
            )
            await self._beacon.start()
            core.spawn(self._beacon.run(), "beacon")
        if cfg.metrics_port:
            self._metrics = MetricsServer(self.status)
            self.metrics_port = await self._metrics.start(cfg.host, max(cfg.metrics_port, 0))
        log.info("node %s ready: pub %s router %s", self.id, core.pub_endpoint, core.router_endpoint)

    def _release(self) -> None:
        """Give back what ``__init__`` and a failed ``start`` took: transport, event log, home."""
        core = self._core
        core.stopped = True
        if core.transport is not None:
            core.transport.close()
        core.events.close()
        self.dir.close()

    def request_stop(self) -> None:
        """Ask the node to stop (safe from a signal handler)."""
        self._core.stopping.set()

    async def wait_stopped(self) -> None:
        await self._core.stopping.wait()

    async def stop(self, reason: str = "shutdown") -> None:
        """Say bye, checkpoint, cancel every task (bounded in time), close the transport."""
        core = self._core
        if core.stopped:
            return
        core.stopped = True
        core.stopping.set()
        with contextlib.suppress(TransportError, OSError):
            self.publish(GLOBAL_DOMAIN, Bye(reason))
        self.checkpoint(record=True)
        await core.cancel_tasks(STOP_TIMEOUT)
        if self._beacon is not None:
            self._beacon.close()
        if self._metrics is not None:
            self._metrics.close()
        self._reach.close()
        core.wire.close()
        core.events.write("stop", reason=reason, seq=core.seq.peek)
        core.events.close()
        self.dir.close()

    # -- sending and asking ------------------------------------------------------------

    def envelope(
        self, domain: str, body: Body, *, reply_to: int | None = None, hops: int | None = None
    ) -> Envelope:
        """A new envelope from this node with the next sequence number."""
        return self._core.envelope(domain, body, reply_to=reply_to, hops=hops)

    def publish(self, domain: str, body: Body, *, hops: int | None = None) -> Envelope:
        """Publish; never blocks (a slow subscriber drops at its HWM). Own learner state is kept
        and served to late joiners like any peer's."""
        env, frames = self._core.publish(domain, body, hops=hops)
        self._store.own(env, tuple(frames[1:]))
        return env

    async def request(
        self,
        router: str,
        body: Body,
        *,
        timeout: float,
        peer_id: str = "",
        domain: str = GLOBAL_DOMAIN,
        expect_reply: bool = True,
    ) -> list[Envelope]:
        """Send ``body`` to a peer's server and collect the replies. Raises TimeoutError."""
        return await self._requests.request(
            router, body, timeout=timeout, peer_id=peer_id, domain=domain, expect_reply=expect_reply
        )

    def checkpoint(self, *, record: bool = False) -> bool:
        """Write a checkpoint now, waiting for the disk. On a full disk or unwritable directory,
        log and keep running."""
        return self._checkpoints.write(record=record)

    async def checkpoint_async(self) -> bool:
        return await self._checkpoints.write_async()

    def status(self) -> dict[str, Any]:
        """Plain-data status report, as served to ``metamesh status``."""
        core, meta = self._core, self._store.meta
        return {
            "node": self.id,
            "version": __version__,
            "profile": self.config.profile,
            "pub": core.pub_endpoint,
            "router": core.router_endpoint,
            "uptime": round(time.time() - core.started_at, 3),
            "seq": core.seq.peek,
            "domains": sorted(core.domains),
            "peers": self._peers.report(),
            "counters": core.counters.report(),
            "learner": dict(self.learner.summary()) if self.learner is not None else {},
            "meta_version": meta.version if meta is not None else None,
            "state": self._store.report(),
            "quarantined": sorted(self._trust.scores.quarantined),
            "peer_weights": {p: round(w, 3) for p, w in sorted(self._trust.peer_weights.items()) if w < 1.0},
            "scores": self._trust.scores.report(time.monotonic()),
        }
