"""100,000 random and mutated frames into a live, learning node's SUB and ROUTER sockets.

The target is a real node process learning prompts. The fuzzer is a node of its own (so
the target links its SUB to it) that publishes garbage on its PUB, and a DEALER that
sends garbage to the target's ROUTER. Sends go in bounded batches, each waited on until
the target has accounted for it, so nothing is lost to a high-water mark unseen.
"""

from __future__ import annotations

import asyncio
import random
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import zmq
import zmq.asyncio

from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from metamesh.protocol import GLOBAL_DOMAIN, Delta, Envelope, Heartbeat, Hello, Insight, QTable, encode
from tests.cluster import Cluster

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

TOTAL = 100_000
BATCH = 500
SUB_SHARE = 0.6  # the rest go to the ROUTER


def valid_messages(rng: random.Random) -> list[list[bytes]]:
    """Well-formed messages of several kinds from a made-up sender, to mutate."""
    now = time.time()
    bodies: list[Any] = [
        Insight.of({"e0": 0.5, "e1": 0.25}, {"e0": 3, "e1": 4}, avg_loss=0.4, total_samples=7),
        QTable(("s0", "s1"), ("a", "b"), np.ones((2, 2)), np.ones((2, 2)), 4),
        Delta("m", {"w": np.arange(64, dtype=np.float32)}, 0, 5),
        Hello("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", ("math",), (), "fuzzed"),
        Heartbeat("tcp://127.0.0.1:1", "tcp://127.0.0.1:2", ("math",), (), 1.0),
    ]
    out = []
    for body in bodies:
        env = Envelope("fuzzed", rng.randrange(1 << 40), GLOBAL_DOMAIN, body, now, hops=2)
        out.append([bytes(memoryview(f)) for f in encode(env)])
    return out


def mutate(frames: list[bytes], rng: random.Random) -> list[bytes]:
    """One of several corruptions; the topic keeps its prefix so the SUB filter lets it in."""
    frames = list(frames)
    match rng.randrange(7):
        case 0:  # flip bytes in the header
            head = bytearray(frames[1])
            for _ in range(rng.randint(1, 4)):
                head[rng.randrange(len(head))] ^= 1 << rng.randrange(8)
            frames[1] = bytes(head)
        case 1:  # truncate the header
            frames[1] = frames[1][: rng.randrange(len(frames[1]))]
        case 2:  # random header bytes
            frames[1] = rng.randbytes(rng.randint(0, 300))
        case 3:  # drop or add frames
            frames = frames[:1] if rng.random() < 0.5 else [*frames, rng.randbytes(rng.randint(0, 64))]
        case 4:  # a bad topic under the subscribed prefix
            frames[0] = b"_global/" + rng.randbytes(rng.randint(0, 40))
        case 5:  # an array frame of the wrong size
            frames = [*frames[:2], rng.randbytes(rng.randint(0, 300))]
        case _:  # a header that is valid msgpack but not a message
            frames[1] = rng.choice([b"\x90", b"\xc0", b"\x81\xa1v\xcd\xff\xff", b"\x81\x01\x02"])
    return frames


def garbage(rng: random.Random, valid: list[list[bytes]]) -> list[bytes]:
    if rng.random() < 0.25:  # pure noise, after a subscribed topic
        return [
            b"_global/" + rng.randbytes(rng.randint(0, 20)),
            *(rng.randbytes(rng.randint(0, 200)) for _ in range(rng.randint(0, 4))),
        ]
    return mutate(rng.choice(valid), rng)


def accounted(report: dict[str, Any]) -> int:
    c = report["counters"]
    return sum(c["rejected"].values()) + sum(c["dropped"].values()) + sum(c["received"].values())


def rss_kb(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


async def test_a_live_node_survives_a_fuzz_flood_and_keeps_learning(cluster: Cluster, tmp_path: Path) -> None:
    # Mutated hellos advertise mutated addresses (127.0.0.1 -> 167.0.0.1): loopback only, here.
    target = cluster.start(
        "target",
        "--learner",
        "prompts",
        "--pace",
        "0.02",
        "--eval-every",
        "0",
        "--peer-networks",
        "127.0.0.0/8",
    )
    assert target.proc is not None

    async def status() -> dict[str, Any]:
        report = await asyncio.to_thread(target.status, 10.0)
        assert report is not None, "the target stopped answering"
        return report

    config = load_config(
        profile="local", overrides={"home": tmp_path / "fz", "name": "fz", "seed": [target.router]}
    )
    rng = random.Random(20261201)
    valid = valid_messages(rng)
    ctx = zmq.asyncio.Context()
    dealer = ctx.socket(zmq.DEALER)
    dealer.setsockopt(zmq.LINGER, 0)
    dealer.setsockopt(zmq.RCVHWM, 10)  # replies to the odd valid request are not read
    dealer.connect(target.router)
    try:
        async with Node(config) as fz:
            # The target's SUB must be linked to fz, and carrying its messages, before the flood.
            for _ in range(200):  # bounded: at most 200 probes, 0.1 s apart
                env = fz.publish(
                    GLOBAL_DOMAIN, Insight.of({"e": 1.0}, {"e": 1}, avg_loss=1.0, total_samples=1)
                )
                report = await status()
                if report["state"].get(f"fz/insight/{GLOBAL_DOMAIN}", -1) >= env.seq:
                    break
                await asyncio.sleep(0.1)
            else:
                raise AssertionError("the target never linked to the fuzzer")
            before = await status()
            rss_before = rss_kb(target.proc.pid)
            episodes_before = before["learner"]["episodes"]
            sent = 0
            started = time.monotonic()
            while sent < TOTAL:
                for _ in range(BATCH):
                    frames = garbage(rng, valid)
                    if rng.random() < SUB_SHARE:
                        fz.transport.publish(frames)
                    else:
                        await dealer.send_multipart(frames)
                sent += BATCH
                deadline = time.monotonic() + 30
                while accounted(await status()) - accounted(before) < sent:
                    assert time.monotonic() < deadline, "fuzz frames went unaccounted"
                    await asyncio.sleep(0.02)
            seconds = time.monotonic() - started
            after = await status()
            assert target.alive()
            rejected = sum(after["counters"]["rejected"].values()) - sum(
                before["counters"]["rejected"].values()
            )
            # Mutations that happen to stay valid are accepted like any message; everything else has a reason.
            assert rejected >= 0.9 * TOTAL, (rejected, after["counters"]["rejected"])
            assert len(after["counters"]["rejected"]) >= 8  # many distinct reasons, all counted
            rss_after = rss_kb(target.proc.pid)
            assert rss_after < rss_before + 64 * 1024, "memory grew under the flood"
            # Still learning afterwards, and still in touch with its peer.
            deadline = time.monotonic() + 30
            while (await status())["learner"]["episodes"] < episodes_before + 50:
                assert time.monotonic() < deadline, "the target stopped learning"
                await asyncio.sleep(0.1)
            assert "fz" in fz.membership.alive() or (await status())["peers"]["fz"]["state"] == "alive"
            linked = {e["pub"] for e in target.events() if e["event"] == "connect"}
            assert all(pub.startswith("tcp://127.") for pub in linked), linked
            reasons = after["counters"]["rejected"]
            print(f"fuzzed {TOTAL} frames in {seconds:.1f} s; rejected {rejected}: {reasons}; "
                  f"RSS {rss_before // 1024} -> {rss_after // 1024} MB")  # fmt: skip
    finally:
        dealer.close(linger=0)
        ctx.term()
