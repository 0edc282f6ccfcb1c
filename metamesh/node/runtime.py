"""The node: sockets, membership, relay, snapshots, checkpoints, and its learner.

A :class:`Node` is an async context manager. ``start`` returns once its sockets
are bound and its endpoints known; every task it runs is owned by the node and
cancelled (under a time limit) by ``stop``, which first says ``bye`` and writes
a checkpoint. Receive loops drain ready sockets with non-blocking reads, so a
busy node pays one event-loop round trip per batch, not per message.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import logging
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from collections.abc import Set as AbstractSet
from dataclasses import dataclass, field
from typing import Any

import zmq
import zmq.asyncio

from metamesh import __version__
from metamesh.errors import ConfigError, LLMError, ProtocolError, Reason, StateError, TransportError
from metamesh.gossip.beacon import Beacon
from metamesh.gossip.dedup import ReplayWindow, Verdict
from metamesh.gossip.hysteresis import DomainMembership
from metamesh.gossip.keys import load_keys
from metamesh.gossip.membership import Membership, MembershipConfig, PeerState
from metamesh.gossip.mesh import MeshConfig
from metamesh.gossip.receive import SubLinks, drain
from metamesh.gossip.resolve import resolve_host, resolve_tcp
from metamesh.gossip.score import PeerScores, ScoreChange
from metamesh.gossip.transport import SocketFactory, SocketOptions
from metamesh.node.config import NodeConfig
from metamesh.node.counters import Counters
from metamesh.node.learner import Learner, StepPacer
from metamesh.node.meshing import Meshes
from metamesh.node.metrics import MetricsServer
from metamesh.node.reachability import Reachability
from metamesh.node.state import NodeDir, encode_checkpoint
from metamesh.protocol import (
    GLOBAL_DOMAIN,
    Body,
    Bye,
    Envelope,
    Graft,
    Heartbeat,
    Hello,
    IHave,
    Insight,
    Meta,
    PeerAddr,
    Prune,
    Signer,
    Snapshot,
    SnapshotRequest,
    Status,
    StatusRequest,
    Verifier,
    decode,
    encode,
    relay_frames,
    topic_prefix,
)
from metamesh.protocol.endpoints import format_tcp, parse_tcp

__all__ = ["Node"]

log = logging.getLogger(__name__)

#: Kinds whose latest message per sender is kept for late joiners and merged by learners.
STATE_KINDS = frozenset({"qtable", "delta", "insight", "prompt"})
#: Insight metrics that are a peer's own monitor report (PROTOCOL.md, insight).
HEALTH_METRICS = frozenset({"drift", "drifting", "misaligned"})
#: A peer reporting this much drift (Jensen-Shannon, 0..1) gets no weight in merges.
DRIFT_ZERO_WEIGHT = 0.4
#: Kinds that keep a quarantined peer known as alive; everything else of it is ignored.
MEMBERSHIP_KINDS = frozenset({"hello", "heartbeat", "bye"})
#: Kinds relayed by ``ihave`` when large: learner state and the coordinator's meta-parameters.
LAZY_KINDS = STATE_KINDS | {"meta"}
STATUS_TOPIC = f"{GLOBAL_DOMAIN}/status_request/0".encode()
#: How long a node waits for the direct copy of a message announced by ``ihave`` before fetching it.
LAZY_FETCH_DELAY = 0.05
STOP_TIMEOUT = 5.0
# Seconds a host name lookup (a seed, --advertise) may take before it counts as failed.
RESOLVE_TIMEOUT = 5.0
#: Peers kept in a checkpoint, greeted again after a restart.
MAX_REMEMBERED_PEERS = 32
#: Hellos a remembered peer gets before it is given up (it may have left for good).
REMEMBERED_TRIES = 4
#: Silent peers probed per round (each at most once per ``suspect_after``).
PROBES_PER_ROUND = 8
#: A peer dead this many ``dead_after`` periods is given up: forgotten, no longer probed.
GIVE_UP_AFTER = 10


@dataclass(slots=True)
class PeerRecord:
    """What a node knows of one peer."""

    addr: PeerAddr
    domains: tuple[str, ...] = ()
    connected: bool = False
    hello_sent: bool = False
    answered: bool = False
    """It has answered a request at its advertised ROUTER: an address someone serves."""


@dataclass(slots=True)
class _Latest:
    seq: int
    domain: str
    frames: tuple[Any, ...] = field(repr=False)


_NO_LATEST = _Latest(-1, "", ())


class Node:
    """One metamesh node. Use ``async with Node(config, learner=...) as node:``."""

    def __init__(
        self,
        config: NodeConfig,
        *,
        learner: Learner | None = None,
        ctx: zmq.asyncio.Context | None = None,
    ) -> None:
        self.config = config
        self.learner = learner
        attach = getattr(learner, "attach", None)
        if callable(attach):
            attach(self)  # a learner that needs to see the node (the coordinator: its peers' domains)
        self.dir = NodeDir(config.home)  # first: a home in use (HomeInUse) stops us before anything opens
        try:
            self.id = self.dir.identity(config.name)
        except StateError:
            self.dir.close()
            raise
        self._own_ctx = ctx is None
        self.ctx = ctx or zmq.asyncio.Context()
        self.counters = Counters()
        self.membership = Membership(
            MembershipConfig(
                heartbeat_interval=config.heartbeat_interval,
                suspect_after=config.suspect_after,
                dead_after=config.dead_after,
                rejoin_heartbeats=config.rejoin_heartbeats,
            )
        )
        self.peers: dict[str, PeerRecord] = {}
        self._peer_networks = [ipaddress.ip_network(n, strict=False) for n in config.peer_networks]
        self._refused_peers: set[str] = set()
        self.domains: set[str] = set(config.domain)
        self.domain_membership = DomainMembership(
            enter=config.domain_enter,
            exit=config.domain_exit,
            min_dwell=config.domain_dwell,
            fixed=frozenset(config.domain),
        )
        self.meshes = Meshes(
            MeshConfig(
                d=config.mesh_d,
                d_lo=config.mesh_d_lo,
                d_hi=config.mesh_d_hi,
                prune_backoff=config.prune_backoff,
            ),
            [GLOBAL_DOMAIN, *config.domain],
        )
        self._rng = random.Random(f"{config.random_seed}:{self.id}")
        # The latest message per (sender, kind, domain): a prompt learner's row per category domain,
        # an experts node's insight (data domain) and offset (exchange domain) are separate states.
        self.latest: dict[tuple[str, str, str], _Latest] = {}
        self.meta: Meta | None = None
        self._meta_frames: tuple[Any, ...] = ()
        self._meta_id: tuple[str, int] = ("", -1)  # (sender, seq) of the meta held
        # Exactly-once delivery per (sender, seq), IPsec-style; stale and future timestamps are
        # refused besides, so a replay after a sender is evicted from the window is caught too.
        self._replay = ReplayWindow(window=config.replay_window, max_senders=max(4096, config.max_peers * 8))
        self.scores = PeerScores(
            above=config.quarantine_above, below=config.quarantine_below, half_life=config.score_half_life
        )
        self.peer_weights: dict[str, float] = {}  # from peers' own drift reports
        self._signer: Signer | None = None
        self._verifier: Verifier | None = None
        self._fetching: set[tuple[str, int]] = set()  # announced by ihave, being fetched
        self._probing: set[str] = set()  # silent peers being asked whether they are back
        self._last_probe_round = 0.0
        self._tasks: set[asyncio.Task[None]] = set()
        self._stopping = asyncio.Event()
        self._peer_joined = asyncio.Event()
        self._caught_up = asyncio.Event()  # the first snapshot from a seed arrived (or failed)
        self._stopped = False
        self._started_at = 0.0
        self._dealers: dict[str, tuple[zmq.asyncio.Socket, asyncio.Lock]] = {}
        self._factory: SocketFactory | None = None
        self._beacon: Beacon | None = None
        self._metrics: MetricsServer | None = None
        self.metrics_port = 0
        self._beacons_heard: set[str] = set()
        self.pub_endpoint = ""
        self.router_endpoint = ""
        self.events = self.dir.events()
        self._seq = self.dir.sequence()
        self._checkpoint_failed = False
        self._checkpoint_generation = 0
        self._last_checkpoint_event = 0.0
        self.restored = False
        self._remembered: list[PeerAddr] = []

    # -- lifecycle -------------------------------------------------------------

    async def __aenter__(self) -> Node:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()

    async def start(self) -> None:
        """Bind sockets, restore the checkpoint and start every task; returns when ready."""
        cfg = self.config
        try:  # before any socket exists: a name peers cannot use stops the start cleanly
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
            self._signer = OriginSigner(keys.sign_secret)
            self._verifier = OriginVerifier({**(keys.signers or {}), self.id: keys.sign_public})
        self._factory = SocketFactory(
            self.ctx,
            limits=cfg.limits,
            options=SocketOptions(send_hwm=cfg.send_hwm, recv_hwm=cfg.recv_hwm),
            keys=keys,
        )
        self._factory.start()
        try:
            self._pub, pub_bound = self._factory.pub(format_tcp(cfg.host, cfg.pub_port))
            self._router, router_bound = self._factory.router(format_tcp(cfg.host, cfg.router_port))
        except TransportError:
            self._release()
            raise
        self.pub_endpoint = format_tcp(host, int(pub_bound.rsplit(":", 1)[1]))
        self.router_endpoint = format_tcp(host, int(router_bound.rsplit(":", 1)[1]))
        self._pub_raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._pub.underlying)
        self._router_raw: zmq.Socket[bytes] = zmq.Socket.shadow(self._router.underlying)
        self._sub = self._factory.sub()
        self._links = SubLinks(self._factory, self._sub)  # unlinked only between whole messages
        self._sub.setsockopt(zmq.SUBSCRIBE, topic_prefix(GLOBAL_DOMAIN))
        for domain in self.domains:
            self._sub.setsockopt(zmq.SUBSCRIBE, topic_prefix(domain))
        self._restore()
        self._started_at = time.time()
        self.events.write(
            "start",
            node=self.id,
            pub=self.pub_endpoint,
            router=self.router_endpoint,
            version=__version__,
            restored=self.restored,
            seq=self._seq.peek,
        )
        self._spawn(self._sub_loop(), "sub")
        self._spawn(self._router_loop(), "router")
        self._spawn(self._heartbeat_loop(), "heartbeat")
        self._spawn(self._checkpoint_loop(), "checkpoint")
        self._reach = Reachability(
            cfg.seed, own_id=self.id, keys=keys, keys_dir=cfg.keys, bound=cfg.dead_after, now=time.monotonic()
        )
        self._spawn(self._seed_loop(), "seeds")
        if self.learner is not None:
            self._spawn(self._learn_loop(), "learn")
        if cfg.beacon:
            self._beacon = Beacon(
                own_id=self.id,
                pub_port=int(pub_bound.rsplit(":", 1)[1]),
                router_port=int(router_bound.rsplit(":", 1)[1]),
                port=cfg.beacon_port,
                address=cfg.beacon_address,
                interval=cfg.beacon_interval,
                on_peer=self._on_beacon,
            )
            await self._beacon.start()
            self._spawn(self._beacon.run(), "beacon")
        if cfg.metrics_port:
            self._metrics = MetricsServer(self.status)
            self.metrics_port = await self._metrics.start(cfg.host, max(cfg.metrics_port, 0))
        log.info("node %s ready: pub %s router %s", self.id, self.pub_endpoint, self.router_endpoint)

    def _release(self) -> None:
        """Give back what ``__init__`` and a failed ``start`` took: sockets, context, event log."""
        self._stopped = True
        if self._factory is not None:
            self._factory.stop()
        self.events.close()
        self.dir.close()
        if self._own_ctx:
            self.ctx.destroy(linger=0)

    def request_stop(self) -> None:
        """Ask the node to stop (safe from a signal handler)."""
        self._stopping.set()

    async def wait_stopped(self) -> None:
        await self._stopping.wait()

    async def stop(self, reason: str = "shutdown") -> None:
        """Say bye, checkpoint, cancel every task (bounded in time), close every socket."""
        if self._stopped:
            return
        self._stopped = True
        self._stopping.set()
        with contextlib.suppress(zmq.ZMQError):
            self.publish(GLOBAL_DOMAIN, Bye(reason))
        self.checkpoint(record=True)
        for task in self._tasks:
            task.cancel()
        if self._tasks:
            _, pending = await asyncio.wait(self._tasks, timeout=STOP_TIMEOUT)
            if pending:
                log.error("%d tasks did not stop within %.0f s", len(pending), STOP_TIMEOUT)
        if self._beacon is not None:
            self._beacon.close()
        if self._metrics is not None:
            self._metrics.close()
        self._reach.close()
        for sock, _ in self._dealers.values():
            sock.close(linger=0)
        self._sub.close(linger=0)
        self._router.close(linger=0)
        self._pub.close(linger=200)  # let the bye go out
        if self._factory is not None:
            self._factory.stop()
        self.events.write("stop", reason=reason, seq=self._seq.peek)
        self.events.close()
        self.dir.close()
        if self._own_ctx:
            self.ctx.term()

    def _spawn(self, coro: Awaitable[None], name: str) -> None:
        task: asyncio.Task[None] = asyncio.ensure_future(coro)
        task.set_name(f"{self.id}:{name}")
        self._tasks.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task[None]) -> None:
        self._tasks.discard(task)
        if task.cancelled() or self._stopped:
            return
        exc = task.exception()
        if exc is not None:
            log.error("task %s failed: %r; stopping the node", task.get_name(), exc, exc_info=exc)
            self.events.write("task_failed", task=task.get_name(), error=repr(exc))
            self.request_stop()

    # -- state -----------------------------------------------------------------

    def _restore(self) -> None:
        state = self.dir.load_checkpoint()
        if state is None:
            return
        self.restored = True
        # Peers alive at the last checkpoint: a restarted node says hello to them even without seeds.
        for row in state.get("peers", [])[:MAX_REMEMBERED_PEERS]:
            if isinstance(row, list | tuple) and len(row) == 3 and all(isinstance(x, str) for x in row):
                self._remembered.append(PeerAddr(*row))
        learner_state = state.get("learner")
        if self.learner is not None and isinstance(learner_state, dict):
            self.learner.load_state(learner_state)
        log.info("node %s restored its checkpoint", self.id)

    def _checkpoint_data(self) -> tuple[int, bytes]:
        """The node's state now, encoded, with its generation (newer states have higher ones)."""
        state: dict[str, Any] = {"node": self.id, "saved_at": time.time(), "seq": self._seq.peek}
        alive = self.membership.alive()
        state["peers"] = [self.peers[p].addr.pack() for p in alive if p in self.peers][:MAX_REMEMBERED_PEERS]
        if self.learner is not None:
            state["learner"] = self.learner.state()
        self._checkpoint_generation += 1
        return self._checkpoint_generation, encode_checkpoint(state)

    def checkpoint(self, *, record: bool = False) -> bool:
        """Write a checkpoint now, waiting for the disk (at stop). On a full disk or unwritable
        directory, log and keep running."""
        generation, data = self._checkpoint_data()
        try:
            size = self.dir.write_checkpoint(data, generation)
        except StateError as exc:
            return self._checkpoint_failure(exc)
        return self._checkpoint_success(size, record)

    async def checkpoint_async(self) -> bool:
        """:meth:`checkpoint`, with the write and its fsyncs in a worker thread.

        The state is taken here, in the event loop, so it is consistent; only the disk is
        waited on elsewhere. A disk that takes seconds to sync (a busy SD card, a shared
        volume) must not hold up heartbeats and messages for as long.
        """
        generation, data = self._checkpoint_data()
        try:
            size = await asyncio.to_thread(self.dir.write_checkpoint, data, generation)
        except StateError as exc:
            return self._checkpoint_failure(exc)
        return self._checkpoint_success(size, False)

    def _checkpoint_failure(self, exc: StateError) -> bool:
        if not self._checkpoint_failed:
            log.error("checkpoint failed (%s); the node keeps running in memory", exc)
            self.events.write("checkpoint_failed", error=str(exc))
        self._checkpoint_failed = True
        return False

    def _checkpoint_success(self, size: int | None, record: bool) -> bool:
        if size is None:  # a newer checkpoint got to the disk first
            return True
        self._checkpoint_failed = False
        now = time.monotonic()
        if record or now - self._last_checkpoint_event >= 1.0:  # logged at most once a second
            self._last_checkpoint_event = now
            episodes = self.learner.summary().get("episodes") if self.learner is not None else None
            self.events.write("checkpoint", bytes=size, seq=self._seq.peek, episodes=episodes)
        return True

    async def _checkpoint_loop(self) -> None:
        while True:
            await self.checkpoint_async()
            await asyncio.sleep(self.config.checkpoint_interval)

    # -- sending ---------------------------------------------------------------

    def envelope(
        self, domain: str, body: Body, *, reply_to: int | None = None, hops: int | None = None
    ) -> Envelope:
        """A new envelope from this node with the next sequence number."""
        return Envelope(
            sender=self.id,
            seq=self._seq.next(),
            domain=domain,
            body=body,
            created=time.time(),
            hops=self.config.limits.max_hops // 2 if hops is None else hops,
            reply_to=reply_to,
        )

    def publish(self, domain: str, body: Body, *, hops: int | None = None) -> Envelope:
        """Publish on the PUB socket; never blocks (a slow subscriber drops at its HWM)."""
        env = self.envelope(domain, body, hops=hops)
        frames = encode(env, signer=self._signer)
        self._pub_raw.send_multipart(frames, copy=False)
        self.counters.sent[body.KIND] += 1
        self.counters.bytes_sent += sum(memoryview(f).nbytes for f in frames)
        if body.KIND in STATE_KINDS:
            self.latest[(self.id, body.KIND, domain)] = _Latest(env.seq, domain, tuple(frames[1:]))
        elif isinstance(body, Meta):  # a coordinator serves its own meta to late joiners too
            self._hold_meta(body, tuple(frames[1:]), env.id)
        return env

    def _hold_meta(self, meta: Meta, frames: tuple[Any, ...], env_id: tuple[str, int]) -> None:
        self.meta, self._meta_frames, self._meta_id = meta, frames, env_id

    # -- receiving -------------------------------------------------------------

    async def _sub_loop(self) -> None:
        await drain(self._sub, self._on_published, links=self._links)

    async def _router_loop(self) -> None:
        await drain(self._router, self._on_request)

    def _decode(
        self,
        frames: Sequence[Any],
        skip: Callable[[str, int], bool] | None = None,
        *,
        signed: bool = True,
    ) -> Envelope | None:
        """Decode and verify, counting every rejection; a sender caught sending bad content is charged."""
        try:
            return decode(frames, self.config.limits, skip=skip, verify=self._verifier if signed else None)
        except ProtocolError as exc:
            if exc.reason is Reason.DUPLICATE:
                self.counters.dropped["duplicate"] += 1
                return None
            author = exc.author if exc.author is not None and exc.author != self.id else None
            self.counters.reject(exc.reason.value, author or "unknown")
            if author is not None:
                self._blame(author, exc.reason.value)
            log.debug("rejected a message: %s", exc)
            return None

    def _known(self, sender: str, seq: int) -> bool:
        """Our own message come back, or one already delivered: not worth reading its arrays."""
        if sender == self.id:
            return True
        verdict = self._replay.check(sender, seq)
        if verdict is Verdict.TOO_OLD:
            raise ProtocolError(Reason.REPLAYED, f"{sender}#{seq} is below its replay window")
        return verdict is Verdict.DUPLICATE

    def _on_published(self, frames: list[Any]) -> None:
        size = sum(f.buffer.nbytes for f in frames)
        self.counters.bytes_received += size
        env = self._decode(frames, self._known)
        if env is None:
            return
        age = time.time() - env.created
        if age > self.config.max_message_age or -age > self.config.max_clock_skew:
            self.counters.reject((Reason.STALE if age > 0 else Reason.FUTURE).value, env.sender)
            return
        self._accept(env, env.hops, size)

    def _blame(self, peer: str, reason: str) -> None:
        """Charge ``peer`` one misbehaviour; past the threshold it is quarantined."""
        change = self.scores.charge(peer, time.monotonic())
        if change is not None:
            self._score_changed(change, reason)

    def _score_changed(self, change: ScoreChange, reason: str = "") -> None:
        state = "quarantined" if change.quarantined else "released"
        weigh = getattr(self.learner, "weigh_peer", None)
        if callable(weigh):  # what a quarantined peer said before no longer counts either
            weigh(change.peer, 0.0 if change.quarantined else self.peer_weights.get(change.peer, 1.0))
        self.events.write(
            "quarantine", peer=change.peer, state=state, score=round(change.score, 3), reason=reason
        )
        log.warning(
            "peer %s %s (score %.1f%s)", change.peer, state, change.score, f", {reason}" if reason else ""
        )

    def _accept(self, env: Envelope, hops: int, size: int) -> None:
        """Deliver a message once, relaying it on: eagerly when small, by ``ihave`` when large."""
        verdict = self._replay.accept(env.sender, env.seq)
        if verdict is not Verdict.NEW:
            self.counters.dropped["duplicate" if verdict is Verdict.DUPLICATE else "too_old"] += 1
            return
        if env.sender in self.scores.quarantined and env.kind not in MEMBERSHIP_KINDS:
            self.counters.reject(Reason.QUARANTINED.value, env.sender)  # neither merged nor relayed
            return
        self.counters.received[env.kind] += 1
        lazy = env.kind in LAZY_KINDS and 0 < self.config.lazy_relay_bytes < size
        if hops > 0 and env.kind != "bye" and not lazy:
            self._pub_raw.send_multipart(relay_frames(env), copy=False)
            self.counters.relayed[env.kind] += 1
        self._dispatch(env)
        if hops > 0 and lazy and self._holds(env.sender, env.kind, env.domain, env.seq):
            # Peers linked to the author have it already; the others fetch it from us (gossipsub's
            # IHAVE/IWANT), so a large delta crosses each link about once instead of once per relay.
            self.publish(env.domain, IHave(env.sender, env.seq, env.kind, hops - 1), hops=0)
            self.counters.relayed[env.kind] += 1

    def _holds(self, sender: str, kind: str, domain: str, seq: int) -> bool:
        """Whether this exact message is what we keep (and serve) for ``(sender, kind, domain)``."""
        if kind == "meta":
            return self._meta_id == (sender, seq)
        return self.latest.get((sender, kind, domain), _NO_LATEST).seq == seq

    def _on_ihave(self, announcer: str, domain: str, body: IHave) -> None:
        key = (body.origin, body.seq)
        if body.kind == "meta":
            newer = self._meta_id[0] == body.origin and self._meta_id[1] >= body.seq
        else:
            newer = self.latest.get((body.origin, body.kind, domain), _NO_LATEST).seq >= body.seq
        if body.origin == self.id or self._replay.check(*key) is not Verdict.NEW or newer:
            return
        record = self.peers.get(announcer)
        if key in self._fetching or record is None or body.kind not in LAZY_KINDS:
            return
        self._fetching.add(key)
        self._spawn(self._fetch_announced(record.addr, domain, body), "fetch")

    async def _fetch_announced(self, announcer: PeerAddr, domain: str, body: IHave) -> None:
        key = (body.origin, body.seq)
        try:
            await asyncio.sleep(LAZY_FETCH_DELAY)  # the direct copy is usually on its way
            if self._replay.check(*key) is not Verdict.NEW:
                return
            request = SnapshotRequest((domain,), (body.origin,))
            replies = await self.request(announcer.router, request, timeout=5.0, peer_id=announcer.id)
        except (TimeoutError, TransportError) as exc:
            log.debug("fetching %s#%d from %s failed: %s", *key, announcer.id, exc)
            return
        finally:
            self._fetching.discard(key)
        for env in replies:
            if not isinstance(env.body, Snapshot) and env.sender != self.id:
                self.counters.received["fetched"] += 1
                self._accept(env, body.hops, sum(memoryview(f).nbytes for f in env.raw))

    def _dispatch(self, env: Envelope) -> None:
        body = env.body
        now = time.monotonic()
        match body:
            case Hello() | Heartbeat():
                self._observe_peer(env.sender, body.pub, body.router, body.domains, now)
                for addr in body.peers:
                    self._learn_peer(addr)
            case Bye():
                transition = self.membership.bye(env.sender, now)
                if transition is not None:
                    self.events.write("peer", peer=env.sender, old=_state_name(transition.old), new="left")
                self.meshes.forget(env.sender)
                self._reconcile()
            case IHave():
                self._on_ihave(env.sender, env.domain, body)
            case Meta():
                if self.meta is None or body.version > self.meta.version:
                    self._hold_meta(body, env.raw, env.id)
                    self.events.write("meta", version=body.version, sender=env.sender)
                    if self.learner is not None:
                        self.learner.apply_meta(body)
            case _ if env.kind in STATE_KINDS:
                if isinstance(body, Insight) and not HEALTH_METRICS.isdisjoint(body.metrics):
                    self._peer_health(env.sender, body.metrics)
                key = (env.sender, env.kind, env.domain)
                previous = self.latest.get(key)
                if previous is not None and previous.seq >= env.seq:
                    self.counters.dropped["stale"] += 1
                    return
                self.latest[key] = _Latest(env.seq, env.domain, env.raw)
                if self.learner is not None:
                    self.learner.merge(env.sender, env.domain, body)
            case _:
                self.counters.dropped[f"unexpected_{env.kind}"] += 1

    def _peer_health(self, peer: str, metrics: Mapping[str, float]) -> None:
        """A peer's own monitor figures: trust it less as it drifts; one in alert is charged.

        Its weight in merges falls linearly from 1 (no drift) to 0 at a drift of
        ``DRIFT_ZERO_WEIGHT``; each insight reporting an alert (drifting or misaligned)
        charges its score once, so a peer that stays in alert is quarantined.
        """
        drift = metrics.get("drift")
        alarmed = metrics.get("drifting", 0.0) >= 0.5 or metrics.get("misaligned", 0.0) >= 0.5
        weight = 1.0 if drift is None else min(max(1.0 - drift / DRIFT_ZERO_WEIGHT, 0.0), 1.0)
        if alarmed:
            weight = min(weight, 0.5)
        if weight != self.peer_weights.get(peer, 1.0):
            self.events.write("peer_weight", peer=peer, weight=round(weight, 3), drift=drift, alert=alarmed)
        self.peer_weights[peer] = weight
        weigh = getattr(self.learner, "weigh_peer", None)
        if callable(weigh):
            weigh(peer, weight)
        if alarmed:
            self._blame(peer, "drift")

    # -- peers -----------------------------------------------------------------

    def _observe_peer(
        self, peer_id: str, pub: str, router: str, domains: Sequence[str] | None, now: float
    ) -> None:
        addr = PeerAddr(peer_id, pub, router)
        if peer_id != self.id and self._outside_networks(addr):
            return
        record = self._learn_peer(addr)
        if record is not None and domains is not None:
            record.domains = tuple(domains)
        transition = self.membership.observe(peer_id, now)
        if transition is not None:
            self._peer_joined.set()
            self.events.write("peer", peer=peer_id, old=_state_name(transition.old), new=transition.new.value)
            log.info("peer %s: %s -> %s", peer_id, _state_name(transition.old), transition.new.value)

    def _outside_networks(self, addr: PeerAddr) -> bool:
        """Whether a peer advertises an address outside ``peer_networks`` (counted, logged once)."""
        known = self.peers.get(addr.id)
        if not self._peer_networks or (known is not None and known.addr == addr):
            return False  # no networks given, or an address already let in
        try:
            hosts = [parse_tcp(addr.pub)[0], parse_tcp(addr.router)[0]]
        except ValueError:  # not from the wire (which checks it): an address in an older checkpoint
            hosts = []
        if hosts and all(any(h in net for net in self._peer_networks) for h in hosts):
            return False
        self.counters.dropped["peer_outside_networks"] += 1
        if len(self._refused_peers) < 4 * self.config.max_peers and addr.id not in self._refused_peers:
            self._refused_peers.add(addr.id)
            log.warning("not linking to %s at %s: outside --peer-networks", addr.id, addr.pub)
        return True

    def _learn_peer(self, addr: PeerAddr) -> PeerRecord | None:
        """Remember where a peer is; links to it follow the meshes (``_reconcile``)."""
        if addr.id == self.id or self._outside_networks(addr):
            return None
        record = self.peers.get(addr.id)
        if record is not None and record.addr != addr:
            self._disconnect(addr.id)
            record.addr = addr
            record.answered = False  # what answered was the old address
        if record is None:
            if len(self.peers) >= self.config.max_peers * 4:
                return None
            record = self.peers[addr.id] = PeerRecord(addr)
        return record

    def _connect(self, peer_id: str) -> bool:
        record = self.peers.get(peer_id)
        if record is None:
            return False
        if record.connected:
            return True
        assert self._factory is not None
        try:
            self._links.link(record.addr.pub, self._server_key(peer_id))
        except TransportError as exc:
            self.counters.dropped["unconnectable_peer"] += 1
            log.debug("not connecting to %s: %s", peer_id, exc)
            return False
        record.connected = True
        self.events.write("connect", peer=peer_id, pub=record.addr.pub)
        return True

    def _reconcile(self) -> None:
        """Hold SUB links to exactly the union of our mesh peers."""
        desired = self.meshes.desired()
        for peer_id in desired:
            if not self._connect(peer_id):
                self.meshes.forget(peer_id)
        for peer_id, record in self.peers.items():
            if record.connected and peer_id not in desired:
                self._disconnect(peer_id)

    def _on_beacon(self, peer_id: str, ip: str, pub_port: int, router_port: int) -> None:
        if peer_id not in self._beacons_heard and len(self._beacons_heard) < 4 * self.config.max_peers:
            self._beacons_heard.add(peer_id)
            self.events.write("beacon", peer=peer_id, ip=ip)
        self._observe_peer(
            peer_id, f"tcp://{ip}:{pub_port}", f"tcp://{ip}:{router_port}", None, time.monotonic()
        )

    def _server_key(self, peer_id: str) -> bytes | None:
        assert self._factory is not None
        keys = self._factory.keys
        return None if keys is None else keys.server_key(peer_id)

    def _disconnect(self, peer_id: str) -> None:
        record = self.peers.get(peer_id)
        if record is None or not record.connected:
            return
        self._links.unlink(record.addr.pub)  # done by the sub loop, between whole messages
        log.debug("unlinked from %s at %s", peer_id, record.addr.pub)
        record.connected = False
        record.hello_sent = False

    def _hello(self) -> Hello:
        return Hello(
            self.pub_endpoint, self.router_endpoint, tuple(sorted(self.domains)), self._exchange(), self.id
        )

    def _exchange(self) -> tuple[PeerAddr, ...]:
        """Peers worth telling others about: alive ones, a bounded random sample."""
        alive = [self.peers[p].addr for p in self.membership.alive() if p in self.peers]
        random.shuffle(alive)
        return tuple(alive[:32])

    async def _graft(self, peer_id: str, domain: str) -> None:
        """Ask a peer into our mesh of ``domain``; a prune in reply means not now."""
        record = self.peers.get(peer_id)
        if record is None:
            return
        try:
            if not record.hello_sent:
                record.hello_sent = True
                for env in await self.request(record.addr.router, self._hello(), timeout=2.0):
                    self._dispatch(env)
            [reply] = await self.request(record.addr.router, Graft(), timeout=2.0, domain=domain)
            record.answered = True
        except (TimeoutError, TransportError, ValueError) as exc:
            log.debug("graft %s in %s failed: %s", peer_id, domain, exc)
            # Backed off like a prune: a peer that never answers (an address nobody serves, say)
            # must not keep a mesh slot, nor the next one, from peers that do.
            self.meshes.pruned(domain, peer_id, time.monotonic(), self.meshes.config.prune_backoff)
            self._reconcile()
            return
        if isinstance(reply.body, Prune):
            self.meshes.pruned(domain, peer_id, time.monotonic(), reply.body.backoff)
            self._reconcile()

    async def _prune(self, peer_id: str, domain: str) -> None:
        record = self.peers.get(peer_id)
        if record is not None:
            with contextlib.suppress(TimeoutError, TransportError):
                body = Prune(self.meshes.config.prune_backoff, self._exchange())
                await self.request(record.addr.router, body, timeout=2.0, domain=domain, expect_reply=False)

    def _mesh_tick(self, now: float) -> None:
        states = self.membership.snapshot()
        alive = [p for p, s in states.items() if s is PeerState.ALIVE and p in self.peers]
        present = [p for p, s in states.items() if s is not PeerState.DEAD and p in self.peers]

        def per_domain(peers: list[str]) -> dict[str, list[str]]:
            out = {d: [p for p in peers if d in self.peers[p].domains] for d in self.domains}
            out[GLOBAL_DOMAIN] = peers
            return out

        answered = [p for p in present if self.peers[p].answered]
        actions = self.meshes.tick(now, per_domain(alive), self._rng, per_domain(present), answered)
        for domain, graft, prune in actions:
            for peer_id in graft:
                self._spawn(self._graft(peer_id, domain), "graft")
            for peer_id in prune:
                self._spawn(self._prune(peer_id, domain), "prune")
        self._reconcile()

    async def _seed_loop(self) -> None:
        """Say hello to every seed until it answers, backing off, so seeds may start later.

        Peers remembered from the checkpoint get a few hellos too, so a node restarted
        without seeds (a coordinator, say) is back in its network at once.
        """
        pending = list(self.config.seed)
        remembered = {f"{a.id}@{a.router}": REMEMBERED_TRIES for a in self._remembered}
        pending += [r for r in remembered if r not in pending]
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
                        self.events.write("seed_unresolved", seed=seed, error=str(exc))
                    continue
                self._reach.trying(seed, endpoint)
                try:
                    replies = await self.request(endpoint, self._hello(), timeout=1.0, peer_id=peer_id)
                except (TimeoutError, TransportError) as exc:
                    log.debug("seed %s not answering yet: %s", seed, exc)
                    dealer = self._dealers.get(endpoint)
                    if self._reach.failed(seed, str(exc)) and dealer is not None and not dealer[1].locked():
                        del self._dealers[endpoint]  # refused: libzmq would never retry this one
                        dealer[0].close(linger=0)
                    if seed in remembered:
                        remembered[seed] -= 1
                        if not remembered[seed]:
                            pending.remove(seed)
                    continue
                pending.remove(seed)
                self._reach.answered(seed)
                for env in replies:
                    self._dispatch(env)
                    record = self.peers.get(env.sender)
                    if record is not None and record.addr.router == endpoint:
                        record.answered = True
                if not snapshot_asked:  # the first to answer, seed or remembered peer: a seed may be gone
                    snapshot_asked = True
                    self._spawn(self._fetch_snapshot(endpoint), "snapshot")
            if pending:
                await asyncio.sleep(delay)
                delay = min(delay * 2, 5.0)

    async def _heartbeat_loop(self) -> None:
        last = time.monotonic()
        while True:
            now = time.monotonic()
            stalled = now - last - self.config.heartbeat_interval
            last = now
            if stalled > self.config.suspect_after / 2:  # we stood still, not our peers
                self.membership.forgive(stalled)
                self.events.write("stalled", seconds=round(stalled, 3))
            self.publish(
                GLOBAL_DOMAIN,
                Heartbeat(
                    self.pub_endpoint,
                    self.router_endpoint,
                    tuple(sorted(self.domains)),
                    self._exchange(),
                    time.time() - self._started_at,
                ),
            )
            if self.learner is not None:
                self._update_domains(now)
            for transition in self.membership.tick(now):
                self.events.write(
                    "peer", peer=transition.peer, old=_state_name(transition.old), new=transition.new.value
                )
                log.info(
                    "peer %s: %s -> %s", transition.peer, _state_name(transition.old), transition.new.value
                )
            for change in self.scores.tick(now):
                self._score_changed(change)
            for seed, cause in self._reach.due(now, len(self.membership.alive())):
                self.events.write("seed_unreachable", seed=seed, cause=cause)
            self._probe_silent(now)
            self._mesh_tick(now)
            await asyncio.sleep(self.config.heartbeat_interval)

    def _probe_silent(self, now: float) -> None:
        """Ask suspect and dead peers directly whether they are back.

        A dead peer's SUB links are gone (it left every mesh), so no heartbeat of
        its would reach us when a cut link heals: without a probe both sides would
        stay apart. A probe is ``rejoin_heartbeats`` hellos in a row, so the
        membership hysteresis holds. A peer dead for ``GIVE_UP_AFTER`` periods
        is forgotten; peer exchange, beacons or seeds bring it back if it returns.
        Peers that have answered us before are probed first: peers named in
        forged or mangled messages, at addresses nobody serves, must not take
        every probe slot from a real peer that is only cut off.
        """
        cfg = self.config
        if now - self._last_probe_round < cfg.suspect_after:
            return
        self._last_probe_round = now
        absent = self.membership.absent(now)
        self._rng.shuffle(absent)
        absent.sort(key=lambda item: not (item[0] in self.peers and self.peers[item[0]].answered))
        for peer_id, since in absent:
            if since > GIVE_UP_AFTER * cfg.dead_after and self.membership.state(peer_id) is PeerState.DEAD:
                self.membership.forget(peer_id)
                self.events.write("peer", peer=peer_id, old="dead", new="forgotten")
                continue
            if (
                len(self._probing) < PROBES_PER_ROUND
                and peer_id not in self._probing
                and peer_id in self.peers
            ):
                self._probing.add(peer_id)
                self._spawn(self._probe(peer_id), "probe")

    async def _probe(self, peer_id: str) -> None:
        try:
            for _ in range(self.config.rejoin_heartbeats):
                record = self.peers.get(peer_id)
                if record is None:
                    return
                replies = await self.request(
                    record.addr.router,
                    self._hello(),
                    timeout=self.config.heartbeat_interval * 2,
                    peer_id=peer_id,
                )
                record.answered = True
                for env in replies:
                    self._dispatch(env)
                if self.membership.state(peer_id) is PeerState.ALIVE:
                    self._reconcile()
                    return
        except (TimeoutError, TransportError) as exc:
            log.debug("probe of %s: no answer (%s)", peer_id, exc)
        finally:
            self._probing.discard(peer_id)

    def _update_domains(self, now: float) -> None:
        """Join and leave domains as the learner's affinity crosses the Schmitt trigger."""
        assert self.learner is not None
        for change in self.domain_membership.update(self.learner.affinity(), now):
            prefix = topic_prefix(change.domain)
            if change.joined:
                self._sub.setsockopt(zmq.SUBSCRIBE, prefix)
                self.domains.add(change.domain)
                self.meshes.join(change.domain)
            else:
                self._sub.setsockopt(zmq.UNSUBSCRIBE, prefix)
                self.domains.discard(change.domain)
                for peer_id in self.meshes.leave(change.domain):
                    self._spawn(self._prune(peer_id, change.domain), "prune")
            self.events.write(
                "domain", domain=change.domain, joined=change.joined, affinity=round(change.affinity, 4)
            )

    # -- direct requests -------------------------------------------------------

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
        """Send ``body`` to a peer's ROUTER and collect the replies to it.

        A snapshot request collects until the closing ``snapshot``; anything
        else returns after the first reply. Raises TimeoutError.
        """
        if router not in self._dealers:
            assert self._factory is not None
            peer_id = peer_id or next((p for p, r in self.peers.items() if r.addr.router == router), "")
            hook = self._reach.before_connect(router)  # a seed's connection is watched from its start
            sock = self._factory.dealer(router, self._server_key(peer_id), before_connect=hook)
            self._dealers[router] = (sock, asyncio.Lock())
        sock, lock = self._dealers[router]
        async with lock:
            env = self.envelope(domain, body, hops=0)
            await sock.send_multipart(encode(env, signer=self._signer), copy=False)
            if not expect_reply:
                return []
            replies: list[Envelope] = []
            async with asyncio.timeout(timeout):
                while True:
                    frames = await sock.recv_multipart(copy=False)
                    reply = self._decode(frames)
                    if reply is None:
                        continue
                    if isinstance(body, SnapshotRequest):
                        if reply.reply_to == env.seq and isinstance(reply.body, Snapshot):
                            replies.append(reply)
                            return replies
                        if reply.reply_to is None:
                            replies.append(reply)
                    elif reply.reply_to == env.seq:
                        return [reply]

    def _on_request(self, frames: list[Any]) -> None:
        identity, rest = frames[0], frames[1:]
        # A status request is read-only and comes from tools without a signing identity.
        env = self._decode(rest, signed=bytes(rest[0].buffer if rest else b"") != STATUS_TOPIC)
        if env is None:
            return
        self.counters.received[env.kind] += 1
        match env.body:
            case Hello():
                self._dispatch(env)
                self._reply(identity, env, self._hello())
            case StatusRequest():
                self._reply(identity, env, Status(self.status()))
            case SnapshotRequest(domains=domains, senders=senders):
                self._send_snapshot(identity, env, set(domains), set(senders))
            case Graft():
                now = time.monotonic()
                if env.sender in self.peers and self.meshes.on_graft(env.domain, env.sender, now):
                    self._reply(identity, env, Graft())
                    self._reconcile()
                else:
                    self._reply(identity, env, Prune(self.config.prune_backoff, self._exchange()))
            case Prune(backoff=backoff, peers=peers):
                self.meshes.pruned(env.domain, env.sender, time.monotonic(), backoff)
                for addr in peers:
                    self._learn_peer(addr)
                self._reconcile()
            case _:
                self.counters.dropped[f"unexpected_request_{env.kind}"] += 1

    def _reply(self, identity: Any, request: Envelope, body: Body) -> None:
        reply = self.envelope(GLOBAL_DOMAIN, body, reply_to=request.seq, hops=0)
        self._router_raw.send_multipart([identity, *encode(reply, signer=self._signer)], copy=False)
        self.counters.sent[body.KIND] += 1

    def _send_snapshot(
        self, identity: Any, request: Envelope, domains: set[str], senders: AbstractSet[str] = frozenset()
    ) -> None:
        """The Clone pattern: the latest message per (sender, kind, domain) as authored, then an end mark."""
        covered: dict[str, int] = {}
        count = 0
        for (sender, kind, _), latest in list(self.latest.items()):
            if (domains and latest.domain not in domains) or (senders and sender not in senders):
                continue
            topic = f"{latest.domain}/{kind}/0".encode()
            self._router_raw.send_multipart([identity, topic, *latest.frames], copy=False)
            covered[sender] = max(covered.get(sender, 0), latest.seq)
            count += 1
        if self.meta is not None and self._meta_frames and (not senders or self._meta_id[0] in senders):
            self._router_raw.send_multipart(
                [identity, f"{GLOBAL_DOMAIN}/meta/0".encode(), *self._meta_frames], copy=False
            )
            count += 1
        self._reply(identity, request, Snapshot(count, covered))

    async def _fetch_snapshot(self, router: str) -> None:
        """Catch up on what was published before we connected."""
        try:
            replies = await self.request(router, SnapshotRequest(tuple(sorted(self.domains))), timeout=10.0)
        except (TimeoutError, TransportError) as exc:
            log.warning("snapshot from %s failed: %s", router, exc)
            self._caught_up.set()
            return
        applied = 0
        for env in replies:
            if isinstance(env.body, Snapshot):
                self.events.write("snapshot", source=router, count=env.body.count, applied=applied)
                continue
            if env.sender != self.id and env.sender not in self.scores.quarantined:
                self._dispatch(env)
                applied += 1
        self._caught_up.set()

    # -- learning --------------------------------------------------------------

    async def _learn_loop(self) -> None:
        assert self.learner is not None
        drain = getattr(self.learner, "drain_events", None)
        drain_blame = getattr(self.learner, "drain_blame", None)  # peers whose content it refused
        if self.config.seed:
            # Learn from what the network already knows: a late joiner starts from its domain's state.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._caught_up.wait(), 15.0)
        if self.config.wait_peers:
            deadline = time.monotonic() + 30.0
            while len(self.membership.alive()) < self.config.wait_peers and time.monotonic() < deadline:
                self._peer_joined.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._peer_joined.wait(), deadline - time.monotonic())
            self.events.write("learning", peers=len(self.membership.alive()))
        backoff, pacer = 1.0, StepPacer()  # the pacer keeps a step that returns at once from spinning
        while True:
            try:
                did_work = await self.learner.step()
                backoff = 1.0
            except LLMError as exc:
                # The LLM is down or confused: keep gossiping, say it once per outage, retry.
                if backoff == 1.0:
                    log.error("learning paused: %s", exc)
                    self.events.write("llm_error", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            shares = self.learner.share()
            if shares:
                # Persist before publishing: what a peer has seen survives a kill -9.
                await self.checkpoint_async()
            for domain, body in shares:
                self.publish(domain, body)
            if drain is not None:
                for name, fields in drain():
                    self.events.write(name, **fields)
            for peer, reason in drain_blame() if drain_blame is not None else ():
                self.counters.reject(reason, peer)
                self._blame(peer, reason)
            await pacer.wait(did_work, self.config.pace)

    # -- status ----------------------------------------------------------------

    def status(self) -> dict[str, Any]:
        """Plain-data status report, as served to ``metamesh status``."""
        states = self.membership.snapshot()
        return {
            "node": self.id,
            "version": __version__,
            "profile": self.config.profile,
            "pub": self.pub_endpoint,
            "router": self.router_endpoint,
            "uptime": round(time.time() - self._started_at, 3),
            "seq": self._seq.peek,
            "domains": sorted(self.domains),
            "peers": {
                pid: {
                    "state": states[pid].value if pid in states else "unknown",
                    "pub": rec.addr.pub,
                    "connected": rec.connected,
                    "domains": list(rec.domains),
                }
                for pid, rec in self.peers.items()
            },
            "counters": self.counters.report(),
            "learner": dict(self.learner.summary()) if self.learner is not None else {},
            "meta_version": self.meta.version if self.meta is not None else None,
            "state": {f"{s}/{k}/{d}": latest.seq for (s, k, d), latest in self.latest.items()},
            "quarantined": sorted(self.scores.quarantined),
            "peer_weights": {p: round(w, 3) for p, w in sorted(self.peer_weights.items()) if w < 1.0},
            "scores": self.scores.report(time.monotonic()),
        }


def _state_name(state: PeerState | None) -> str:
    return "new" if state is None else state.value
