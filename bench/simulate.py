"""Dissemination to 10,000 nodes on the in-memory transport, running the node's own gossip code.

Whole :class:`~metamesh.node.runtime.Node` objects cost a task group, timers, a state directory
and an event log each; 10,000 of them do not fit one process on this machine class. So this
drives the node's real parts in rounds with a virtual clock, and says which:

- the wire is :class:`~metamesh.gossip.memory.MemoryNetwork` with ``Faults(drop=loss)`` (the
  twin of the ZeroMQ transport: PUB/SUB links, topic prefixes, seeded loss), one
  :class:`~metamesh.gossip.memory.MemoryTransport` per node;
- liveness is :class:`~metamesh.gossip.membership.Membership` per node, fed one observation
  per known peer per heartbeat (a partial view of ``VIEW`` peers, as peer exchange gives);
- meshes are :class:`~metamesh.gossip.meshing.Meshes` per node, ``_global`` plus the domain,
  ticked each heartbeat with the alive peers as candidates, as ``MeshKeeper.tick`` does; a graft
  is answered by the target's ``Meshes.on_graft`` (a refusal backs off like a prune) and a
  prune is told to the peer; each node's SUB links then follow ``Meshes.desired()`` as
  ``Peers.reconcile`` does;
- messages are real envelopes: encoded with :func:`~metamesh.protocol.encode`, decoded with
  :func:`~metamesh.protocol.decode` (the replay window as its ``skip``), deduplicated by
  :class:`~metamesh.gossip.dedup.ReplayWindow` and relayed with
  :func:`~metamesh.protocol.relay_frames` while hops remain, with the node's default hop
  budget (``max_hops // 2``).

A round is one relay step: what a node received in round ``r`` it decodes and relays in round
``r + 1``. The comparison, in the same run, is against two models (not the node's code): a
flood, where every node forwards a new message to every peer it knows (the whole network), and
push gossip at fanout 3, where a node pushes a new message to 3 random peers in each of its
next ``4 * ceil(log10(N + 1))`` rounds, memberlist's retransmit limit.

Run: ``python bench/simulate.py`` (N = 100, 1,000, 10,000 at 1% loss; ``--quick`` stops at 1,000).
"""

from __future__ import annotations

import argparse
import asyncio
import inspect
import math
import random
import statistics
import time
from dataclasses import dataclass, field

import numpy as np

from metamesh.errors import ProtocolError
from metamesh.gossip.dedup import ReplayWindow, Verdict
from metamesh.gossip.membership import Membership, MembershipConfig
from metamesh.gossip.memory import Faults, MemoryNetwork, MemoryTransport
from metamesh.gossip.mesh import MeshConfig
from metamesh.gossip.meshing import Meshes
from metamesh.protocol import GLOBAL_DOMAIN, Envelope, Insight, decode, encode, relay_frames
from metamesh.protocol.limits import LAN as LIMITS

__all__ = ["Result", "flood", "main", "push", "simulate"]

DOMAIN = "math"
VIEW = 32
"""Peers each node knows (a partial view, as peer exchange gives it)."""
HEARTBEATS = 12
"""Heartbeats of mesh upkeep before messages flow (virtual seconds)."""
TARGET = 0.9999
HOPS = LIMITS.max_hops // 2
"""The hop budget a node gives what it publishes (``Core.envelope``)."""


@dataclass(slots=True)
class Result:
    """One protocol at one N: rounds to ``TARGET`` per message and messages per node."""

    n: int
    rounds: list[int | None] = field(default_factory=list)
    """Rounds until ``TARGET`` of the nodes had each message (None: never)."""
    reach: list[float] = field(default_factory=list)
    """Share of the nodes each message reached in the end."""
    per_node_round_max: int = 0
    """The most messages any node received in any one round (one message in flight)."""
    per_node_message: float = 0.0
    """Messages received per node per message disseminated (mean)."""
    links_max: int = 0
    links_mean: float = 0.0
    upkeep: float = 0.0
    """Grafts and prunes per node per heartbeat once the meshes formed (mesh only)."""

    def worst(self) -> int | None:
        return None if None in self.rounds else max(r for r in self.rounds if r is not None)


class _Sim:
    """Per node: a transport, a membership, meshes and a replay window, all the node's own."""

    def __init__(self, n: int, seed: int, loss: float, mesh: MeshConfig, view: int) -> None:
        self.n = n
        self.rng = random.Random(seed)
        self.network = MemoryNetwork(seed=seed, faults=Faults(drop=loss))
        self.ids = [f"n{i:05d}" for i in range(n)]
        self.index = {p: i for i, p in enumerate(self.ids)}
        self.transports: list[MemoryTransport] = [self.network.transport(hwm=10_000) for _ in range(n)]
        self.pubs: list[str] = []
        cfg = MembershipConfig(heartbeat_interval=1.0, suspect_after=5.0, dead_after=30.0)
        self.members = [Membership(cfg) for _ in range(n)]
        # as ``Peers`` builds them: ``_global`` plus the domain, ``_global`` the shared one where
        # this version of Meshes knows of shared links
        shared = {"shared": GLOBAL_DOMAIN} if "shared" in inspect.signature(Meshes).parameters else {}
        self.meshes = [Meshes(mesh, [GLOBAL_DOMAIN, DOMAIN], **shared) for _ in range(n)]
        self.replay = [ReplayWindow() for _ in range(n)]
        self.views: list[set[int]] = []
        for i in range(n):
            others = self.rng.sample(range(n - 1), min(view, n - 1))
            self.views.append({j if j < i else j + 1 for j in others})
        self.upkeep = 0
        self.seq = [0] * n

    async def bind(self) -> None:
        for t in self.transports:
            pub, _ = await t.bind("tcp://10.0.0.1:0", "tcp://10.0.0.1:0")
            t.subscribe(f"{GLOBAL_DOMAIN}/".encode())
            t.subscribe(f"{DOMAIN}/".encode())
            self.pubs.append(pub)

    def heartbeat(self, now: float) -> None:
        """One heartbeat of every node: liveness, mesh tick, graft/prune answered, links reconciled."""
        ids, backoff = self.ids, self.meshes[0].config.prune_backoff
        for i in range(self.n):
            membership = self.members[i]
            for j in self.views[i]:
                membership.observe(ids[j], now)
            membership.tick(now)
        for i in range(self.n):
            alive = self.members[i].alive()
            wanted = {GLOBAL_DOMAIN: alive, DOMAIN: alive}
            for domain, graft, prune in self.meshes[i].tick(now, wanted, self.rng, wanted):
                for peer in graft:
                    j = self.index[peer]
                    self.upkeep += 1
                    if self.meshes[j].on_graft(domain, ids[i], now):
                        self.views[j].add(i)  # the graft's hello: the target learns of us
                        self.members[j].observe(ids[i], now)
                    else:
                        self.meshes[i].pruned(domain, peer, now, backoff)
                for peer in prune:
                    self.upkeep += 1
                    self.meshes[self.index[peer]].pruned(domain, ids[i], now, backoff)
        for i in range(self.n):
            self.reconcile(i)

    def reconcile(self, i: int) -> None:
        t = self.transports[i]
        want = {self.pubs[self.index[p]] for p in self.meshes[i].desired()}
        have = t.linked()
        for endpoint in have - want:
            t.unlink(endpoint)
        for endpoint in want - have:
            t.link(endpoint, "")

    def disseminate(self, origin: int, result: Result, max_rounds: int) -> None:
        """Publish one insight from ``origin`` and relay it round by round until it stops."""
        self.seq[origin] += 1
        env = Envelope(
            sender=self.ids[origin],
            seq=self.seq[origin],
            domain=DOMAIN,
            body=Insight.of({}, {}, avg_loss=0.5, total_samples=10),
            created=time.time(),
            hops=HOPS,
        )
        self.replay[origin].accept(env.sender, env.seq)
        self.transports[origin].publish(encode(env))
        have, need, rounds = 1, math.ceil(TARGET * self.n), None
        received = 0
        for r in range(1, max_rounds + 1):
            batches = []
            for i, t in enumerate(self.transports):
                if t.inbox.items:
                    batches.append((i, list(t.inbox.items)))
                    t.inbox.items.clear()
            if not batches:
                break
            for i, frames_list in batches:
                received += len(frames_list)
                result.per_node_round_max = max(result.per_node_round_max, len(frames_list))
                window = self.replay[i]

                def seen(sender: str, seq: int, window: ReplayWindow = window) -> bool:
                    return window.check(sender, seq) is not Verdict.NEW

                for frames in frames_list:
                    try:
                        got = decode(frames, LIMITS, skip=seen)
                    except ProtocolError:
                        continue  # a duplicate: a header parse, dropped
                    window.accept(got.sender, got.seq)
                    have += 1
                    if got.hops > 0:
                        self.transports[i].publish(relay_frames(got))
            if rounds is None and have >= need:
                rounds = r
        result.rounds.append(rounds)
        result.reach.append(have / self.n)
        result.per_node_message += received / self.n


async def simulate(
    n: int,
    *,
    loss: float = 0.01,
    messages: int = 5,
    seed: int = 1,
    mesh: MeshConfig | None = None,
    view: int = VIEW,
) -> Result:
    """Mesh gossip with the node's code (see the module docstring) for ``n`` nodes."""
    sim = _Sim(n, seed, loss, mesh or MeshConfig(), view)
    await sim.bind()
    for beat in range(HEARTBEATS):
        if beat == HEARTBEATS - 2:
            sim.upkeep = 0  # count the last two heartbeats only: upkeep once formed
        sim.heartbeat(float(beat))
    result = Result(n)
    result.upkeep = sim.upkeep / 2 / n
    links = [len(t.linked()) for t in sim.transports]
    result.links_max, result.links_mean = max(links), statistics.fmean(links)
    for _ in range(messages):
        sim.disseminate(sim.rng.randrange(n), result, max_rounds=4 * HOPS)
    result.per_node_message /= messages
    for t in sim.transports:
        t.close()
    return result


def flood(n: int, *, loss: float = 0.01, messages: int = 5, seed: int = 1) -> Result:
    """Model: a node forwards a new message once to every other node (full membership)."""
    rng = np.random.default_rng(seed)
    result = Result(n)
    for _ in range(messages):
        informed = np.zeros(n, bool)
        informed[rng.integers(n)] = True
        fresh, rounds, sent = 1, None, 0
        for r in range(1, 64):
            if not fresh:
                break
            sent += fresh * (n - 1)
            result.per_node_round_max = max(result.per_node_round_max, fresh)
            missing = ~informed
            # each uninformed node hears from any of the ``fresh`` senders unless every copy is lost
            hit = rng.random(int(missing.sum())) >= loss**fresh
            idx = np.flatnonzero(missing)[hit]
            informed[idx] = True
            fresh = len(idx)
            if rounds is None and informed.sum() >= math.ceil(TARGET * n):
                rounds = r
        result.rounds.append(rounds)
        result.reach.append(float(informed.mean()))
        result.per_node_message += sent / n / messages
    result.links_max = result.links_mean = n - 1
    return result


def push(n: int, *, fanout: int = 3, loss: float = 0.01, messages: int = 5, seed: int = 1) -> Result:
    """Model: a node pushes a new message to ``fanout`` random peers in each of its next
    ``4 * ceil(log10(n + 1))`` rounds (memberlist's retransmit limit)."""
    rng = np.random.default_rng(seed)
    limit = 4 * math.ceil(math.log10(n + 1))
    result = Result(n)
    for _ in range(messages):
        informed_at = np.full(n, -1)
        informed_at[rng.integers(n)] = 0
        rounds, sent = None, 0
        for r in range(1, 10 * limit):
            active = np.flatnonzero((informed_at >= 0) & (r - informed_at <= limit))
            if not len(active):
                break
            targets = rng.integers(0, n, (len(active), fanout)).ravel()
            sent += len(targets)
            targets = targets[rng.random(len(targets)) >= loss]
            per = np.bincount(targets, minlength=n)
            result.per_node_round_max = max(result.per_node_round_max, int(per.max()))
            new = targets[informed_at[targets] < 0]
            informed_at[new] = r
            if rounds is None and (informed_at >= 0).sum() >= math.ceil(TARGET * n):
                rounds = r
        result.rounds.append(rounds)
        result.reach.append(float((informed_at >= 0).mean()))
        result.per_node_message += sent / n / messages
    result.links_max = result.links_mean = fanout
    return result


def _fmt(x: int | None) -> str:
    return "never" if x is None else str(x)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="N = 100 and 1,000 only")
    parser.add_argument("--loss", type=float, default=0.01)
    parser.add_argument("--messages", type=int, default=5)
    args = parser.parse_args()
    sizes = (100, 1000) if args.quick else (100, 1000, 10_000)
    mesh = MeshConfig()
    print(
        f"loss {args.loss:.0%}; {args.messages} messages per N from random origins; target {TARGET:.2%}; "
        f"mesh d={mesh.d} [{mesh.d_lo}, {mesh.d_hi}] per mesh (_global + {DOMAIN}), hops {HOPS}, "
        f"view {VIEW}\n"
    )
    head = (
        f"| N | protocol | rounds to {TARGET:.2%} (worst / median) | reach | links per node (mean / max) "
        "| msgs recv per node per message | max msgs per node per round | upkeep per node per heartbeat | "
        "ratio of msgs per node to N = 100 | wall s |"
    )
    print(head)
    print("| --- " * 10 + "|")
    base: dict[str, float] = {}
    for n in sizes:
        rows: list[tuple[str, Result, float]] = []
        t0 = time.perf_counter()
        rows.append(
            ("mesh (node code)", asyncio.run(simulate(n, loss=args.loss, messages=args.messages)), 0.0)
        )
        rows[-1] = (rows[-1][0], rows[-1][1], time.perf_counter() - t0)
        for name, model in (("flood (model)", flood), ("push fanout 3 (model)", push)):
            t0 = time.perf_counter()
            res = model(n, loss=args.loss, messages=args.messages)
            rows.append((name, res, time.perf_counter() - t0))
        for name, res, wall in rows:
            base.setdefault(name, res.per_node_message)
            done = [r for r in res.rounds if r is not None]
            median = _fmt(int(statistics.median(done))) if done else "never"
            print(
                f"| {n:,} | {name} | {_fmt(res.worst())} / {median} | {min(res.reach):.4%} "
                f"| {res.links_mean:.1f} / {res.links_max} | {res.per_node_message:.1f} "
                f"| {res.per_node_round_max} | {res.upkeep:.3f} | {res.per_node_message / base[name]:.2f} "
                f"| {wall:.1f} |",
                flush=True,
            )


if __name__ == "__main__":
    main()
