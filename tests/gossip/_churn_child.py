"""Child process for test_sub_links: a real node's SUB unlinked while messages are half read.

``python tests/gossip/_churn_child.py MODE HOME [SECONDS]`` prints ``survived BYTES UNLINKS`` and
exits 0; the libzmq abort this guards against (``Assertion failed: !_more (src/fq.cpp:80)``)
kills it with SIGABRT instead.

- ``poll``: libzmq issue 2163 through the node: one two-frame message waits, a poll of the SUB
  reads its first frame, the node unlinks that peer, and the node must then read the message.
- ``churn``: several PUBs (in a thread) flood the node's global topic with two-frame messages
  while a task on the node's loop links and unlinks them through the node's own
  ``link``/``unlink``, yielding to the loop between changes as grafts and prunes do.
"""

from __future__ import annotations

import asyncio
import random
import sys
import threading
import time
from pathlib import Path

import zmq

from metamesh.gossip.transport import OnMessage, ZmqTransport
from metamesh.node.config import load_config
from metamesh.node.runtime import Node, PeerRecord
from metamesh.protocol import GLOBAL_DOMAIN
from metamesh.protocol.kinds import PeerAddr

FRAMES = [f"{GLOBAL_DOMAIN}/junk/0".encode(), b"x" * 64, b"y" * 2048]
DEADLINE = 10.0


def flood(pubs: list[zmq.Socket[bytes]], stop: threading.Event) -> None:
    while not stop.is_set():
        for pub in pubs:
            for _ in range(64):
                pub.send_multipart(FRAMES)


async def until(cond: object, what: str) -> None:
    deadline = time.monotonic() + DEADLINE
    while not cond():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        await asyncio.sleep(0.01)


class Recording(ZmqTransport):
    """The ZeroMQ transport, noting the shape of every message it hands the node."""

    seen: list[tuple[int, int]]  # (frames, bytes of the last) per message read

    async def receive(self, handle: OnMessage) -> None:
        self.seen = []

        def record(frames: list[zmq.Frame]) -> None:
            self.seen.append((len(frames), len(frames[-1].bytes)))
            handle(frames)

        await super().receive(record)


async def poll_then_unlink(node: Node, transport: Recording, pub: zmq.Socket[bytes]) -> None:
    """One message's first frame is read by a poll; the node unlinks its sender; it must still be
    read whole."""
    await until(lambda: hasattr(transport, "seen"), "the receiving task")
    seen = transport.seen
    await until(lambda: (pub.send_multipart(FRAMES), seen)[1], "a first message")
    pub.send_multipart([*FRAMES[:-1], b"marker"])  # after it, the node has nothing left to read
    await until(lambda: seen[-1] == (len(FRAMES), len(b"marker")), "the node idle")
    pub.send_multipart(FRAMES)
    # As pyzmq's loop does when the socket's descriptor wakes it: ask whether the SUB is readable,
    # which makes libzmq read the message's first frame...
    assert zmq.Socket.shadow(transport.sub_socket.underlying).poll(5000), "the message did not arrive"
    node.unlink("p0")  # ...and a prune unlinks its sender before the sub loop runs
    transport.sub_socket.get(zmq.EVENTS)  # the loop is told the socket is readable (the poll took the wake)
    # Before the fix: an abort (!_more, fq.cpp:80), or, once the unlink is done, a socket that
    # says it is readable but never yields the rest (a busy loop), or the rest taken from another
    # link's message.
    await until(lambda: seen[-1] != (len(FRAMES), len(b"marker")), "the half-read message")
    assert seen[-1] == (len(FRAMES), len(FRAMES[-1])), f"read as {seen[-1]}"
    await until(lambda: not transport.linked(), "the unlink")


async def churn(node: Node, pubs: list[zmq.Socket[bytes]], seconds: float) -> None:
    stop = threading.Event()
    thread = threading.Thread(target=flood, args=(pubs, stop), daemon=True)
    thread.start()
    rng = random.Random(7)
    deadline = time.monotonic() + seconds
    try:
        while time.monotonic() < deadline:
            peer = f"p{rng.randrange(len(pubs))}"
            if node.peers[peer].connected:
                node.unlink(peer)
            else:
                node.link(peer)
            await asyncio.sleep(0)  # a yield, as between a graft's reply and the next tick
    finally:
        stop.set()
        thread.join()


async def main(mode: str, home: Path, seconds: float) -> int:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pubs = []
    overrides: dict[str, object] = {"home": home, "name": "churned"}
    if mode == "poll":  # one heartbeat, at start: no mesh tick unlinks p0 before this test does
        overrides.update(heartbeat_interval=600.0, suspect_after=1200.0, dead_after=2400.0)
    config = load_config(profile="local", overrides=overrides)
    transport = Recording(limits=config.limits)
    node = Node(config, transport=transport)
    await node.start()
    try:
        if mode == "poll":  # the one mesh tick (it would unlink p0, in no mesh) is done by then
            await until(lambda: node.counters.sent["heartbeat"], "the first heartbeat")
        for i in range(1 if mode == "poll" else 6):
            pub = ctx.socket(zmq.PUB)
            pub.setsockopt(zmq.LINGER, 0)
            pubs.append(pub)
            endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
            node.peers[f"p{i}"] = PeerRecord(PeerAddr(f"p{i}", endpoint, "tcp://127.0.0.1:1"))
            node.link(f"p{i}")
        if mode == "poll":
            await poll_then_unlink(node, transport, pubs[0])
        else:
            await churn(node, pubs, seconds)
        received, unlinks = node.counters.bytes_received, transport.links.unlinked
    finally:
        await node.stop()
        for pub in pubs:
            pub.close(linger=0)
        ctx.term()
    print(f"survived {received} {unlinks}", flush=True)
    return 0


if __name__ == "__main__":
    seconds = float(sys.argv[3]) if len(sys.argv) > 3 else 0.0
    sys.exit(asyncio.run(main(sys.argv[1], Path(sys.argv[2]), seconds)))
