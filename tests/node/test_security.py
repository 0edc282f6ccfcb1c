"""Origin signatures, replay protection and unknown authors, on real sockets over loopback.

Four nodes in one event loop form a full mesh on an encrypted network. ``m`` is
an insider: its Curve key is allowlisted, so it can publish, and it uses its
links to forge, tamper with and replay messages in ``a``'s name.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import msgpack
import pytest

from metamesh.gossip.keys import generate_keys, load_keys
from metamesh.gossip.signing import OriginSigner
from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from metamesh.protocol import Envelope, Insight, encode

pytestmark = [pytest.mark.slow, pytest.mark.timeout(60)]

NAMES = ("a", "b", "c", "m")
DOMAIN = "math"


async def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout} s waiting for {what}")
        await asyncio.sleep(0.02)


def make_keys(
    root: Path, names: tuple[str, ...], *, unsigned: frozenset[str] = frozenset()
) -> dict[str, Path]:
    """A keys directory per node, each authorizing every other; ``unsigned`` peers' signing keys
    are left out of everyone's ``authorized/`` (admitted on the wire, unknown as authors)."""
    dirs = {n: root / f"keys-{n}" for n in names}
    for d in dirs.values():
        generate_keys(d)
    for trusting, d in dirs.items():
        for trusted, other in dirs.items():
            if trusted != trusting:
                text = (other / "node.key").read_text()
                if trusted in unsigned:
                    text = text.splitlines()[0] + "\n"
                (d / "authorized" / f"{trusted}.key").write_text(text)
    return dirs


@contextlib.asynccontextmanager
async def network(tmp_path: Path, keys: dict[str, Path], **overrides: Any) -> AsyncIterator[dict[str, Node]]:
    nodes: dict[str, Node] = {}
    try:
        for name, key_dir in keys.items():
            seeds = [f"a@{nodes['a'].router_endpoint}"] if nodes else []
            config = load_config(
                profile="local",
                overrides={
                    "home": tmp_path / name,
                    "name": name,
                    "keys": key_dir,
                    "seed": seeds,
                    "domain": [DOMAIN],
                    **overrides,
                },
            )
            nodes[name] = Node(config)
            await nodes[name].start()
        yield nodes
    finally:
        for node in nodes.values():
            await node.stop()


def meshed(nodes: dict[str, Node], names: tuple[str, ...]) -> Callable[[], bool]:
    """Every node in ``names`` sees the others alive and holds a SUB link to each."""

    def check() -> bool:
        for name in names:
            node = nodes[name]
            alive = set(node.membership.alive())
            if alive < set(names) - {name}:
                return False
            if not all(node.peers[p].connected for p in set(names) - {name}):
                return False
        return True

    return check


async def links_up(m: Node, honest: list[Node]) -> None:
    """Wait until ``m``'s messages reach every honest node straight from ``m`` (a connected SUB may
    still be handshaking). The probes are published with no hops left: a probe relayed by ``a``
    would say nothing of the direct link the raw frames below travel on (one CI run failed so)."""
    for _ in range(100):  # bounded: one probe per 0.1 s for at most 10 s
        env = m.publish(DOMAIN, insight(1.0), hops=0)
        deadline = time.monotonic() + 0.1
        while time.monotonic() < deadline:
            if all(held(n, m.id) >= env.seq for n in honest):
                return
            await asyncio.sleep(0.01)
    raise AssertionError(f"{m.id}'s messages never reached every node")


def insight(loss: float) -> Insight:
    return Insight.of({"e0": loss}, {"e0": 10}, avg_loss=loss, total_samples=10)


def frames_as(
    sender: str, seq: int, body: Insight, signer: OriginSigner, *, created: float | None = None
) -> list[Any]:
    env = Envelope(sender, seq, DOMAIN, body, time.time() if created is None else created, hops=3)
    return encode(env, signer=signer)


def held(node: Node, sender: str = "a") -> int:
    latest = node.latest.get((sender, "insight", DOMAIN))
    return -1 if latest is None else latest.seq


async def test_forged_and_tampered_messages_are_dropped_by_every_node(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, NAMES)
    a_signer = OriginSigner(load_keys(keys["a"]).sign_secret or b"")
    m_signer = OriginSigner(load_keys(keys["m"]).sign_secret or b"")
    async with network(tmp_path, keys) as nodes:
        await wait_for(meshed(nodes, NAMES), 20, "a full mesh")
        m, honest = nodes["m"], [nodes["b"], nodes["c"]]
        await links_up(m, honest)
        before = {n.id: (n.counters.rejected["bad_signature"], n.counters.relayed["insight"]) for n in honest}

        # 1. A forgery: a's name, m's key. 2. A genuine message of a's, altered in transit by m.
        seq = nodes["a"].sequence.next()
        m.transport.publish(frames_as("a", seq, insight(0.9), m_signer))
        genuine = frames_as("a", seq, insight(0.1), a_signer)
        header = msgpack.unpackb(genuine[1])
        header["p"]["avg_loss"] = 0.0001  # claim a far better loss
        tampered = [genuine[0], msgpack.packb(header), *genuine[2:]]
        m.transport.publish(tampered)
        await wait_for(
            lambda: all(n.counters.rejected["bad_signature"] >= before[n.id][0] + 2 for n in honest),
            10,
            "both bad messages to be refused",
        )
        # 3. The untouched original, relayed by m: signatures survive relays, so it is accepted.
        m.transport.publish(genuine)
        await wait_for(lambda: all(held(n) == seq for n in honest), 10, "the genuine message")
        for n in honest:
            assert n.counters.rejected["bad_signature"] == before[n.id][0] + 2, n.id  # refused, not relayed
            assert n.counters.rejected_by_peer["unknown"]["bad_signature"] >= 2  # a is not blamed
            assert "a" not in n.scores.quarantined
        assert held(nodes["a"]) == -1  # a never takes a message in its own name


async def test_replayed_stale_and_future_messages_are_dropped(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, NAMES)
    a_signer = OriginSigner(load_keys(keys["a"]).sign_secret or b"")
    async with network(tmp_path, keys, replay_window=64) as nodes:
        await wait_for(meshed(nodes, NAMES), 20, "a full mesh")
        a, m, honest = nodes["a"], nodes["m"], [nodes["b"], nodes["c"]]
        await links_up(m, honest)
        env = a.publish(DOMAIN, insight(0.5))
        await wait_for(lambda: all(held(n) == env.seq for n in honest), 10, "a's insight")
        original = [f"{DOMAIN}/insight/3".encode(), *a.latest[("a", "insight", DOMAIN)].frames]
        dup = {n.id: n.counters.dropped["duplicate"] for n in honest}
        m.transport.publish(original)  # a byte-for-byte replay
        await wait_for(
            lambda: all(n.counters.dropped["duplicate"] > dup[n.id] for n in honest), 10, "the replay"
        )

        # Move a's sequence well past the window (64 here), as a busy node's would move.
        for _ in range(100):
            a.sequence.next()
        later = a.publish(DOMAIN, insight(0.45))
        await wait_for(lambda: all(held(n) == later.seq for n in honest), 10, "a's later insight")
        # Older than the replay window, stale, and from the future:
        now = time.time()
        m.transport.publish(frames_as("a", env.seq - 1, insight(0.4), a_signer))
        m.transport.publish(frames_as("a", a.sequence.next(), insight(0.3), a_signer, created=now - 3600))
        m.transport.publish(frames_as("a", a.sequence.next(), insight(0.2), a_signer, created=now + 3600))
        for reason in ("replayed", "stale", "future"):
            await wait_for(lambda r=reason: all(n.counters.rejected[r] >= 1 for n in honest), 10, reason)
        assert all(held(n) == later.seq for n in honest)  # none of them replaced the state held


async def test_a_peer_without_a_known_signing_key_is_refused(tmp_path: Path) -> None:
    keys = make_keys(tmp_path, NAMES, unsigned=frozenset({"m"}))
    async with network(tmp_path, keys) as nodes:
        await wait_for(meshed(nodes, ("a", "b", "c")), 20, "the known nodes to mesh")
        # m's Curve key is allowlisted, so its hellos reach a (its seed), but a cannot verify them:
        # a neither answers nor tells anyone of m, so m stays outside.
        a = nodes["a"]
        await wait_for(lambda: a.counters.rejected["unknown_author"] >= 2, 15, "m's hellos to be refused")
        assert a.counters.rejected_by_peer["unknown"]["unknown_author"] >= 2
        for name in ("a", "b", "c"):
            assert "m" not in nodes[name].peers, name
            assert nodes[name].membership.state("m") is None, name
        assert not nodes["m"].membership.alive()


def test_status_shows_why_a_peer_is_trusted_less() -> None:
    from metamesh.cli.status_cmd import render

    report = {
        "node": "a",
        "peers": {
            "b": {"state": "alive", "connected": True, "domains": ["math"], "pub": "tcp://x:1"},
            "m": {"state": "alive", "connected": True, "domains": ["math"], "pub": "tcp://x:2"},
        },
        "quarantined": ["m"],
        "scores": {"m": 9.5},
        "peer_weights": {"b": 0.75},
    }
    lines = {line.split()[0]: line for line in render(report).splitlines() if line.strip()}
    assert "QUARANTINED, score 9.5" in lines["m"]
    assert "weight 0.75" in lines["b"] and "QUARANTINED" not in lines["b"]
