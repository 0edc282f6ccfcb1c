"""Node-to-node throughput between two processes over tcp loopback.

Prints, in one run, the full metamesh path (encode, send, receive, decode,
validate, dedup, dispatch in a real Node) next to raw pyzmq asyncio PUB/SUB
with one ``await recv_multipart()`` per message and with non-blocking
draining, for the same payload; then 40 MB deltas, metamesh against raw
pyzmq for the same bytes. Targets: metamesh >= 2x the one-await raw figure
for insights; >= 0.8 of raw bandwidth for 40 MB deltas. ``--signed`` runs the
insights again as a node runs by default with a keys directory (CurveZMQ on
every socket, every message origin-signed and verified): target >= 0.5x the
unsigned rate of the same run.

Run: ``python bench/bus.py`` (``--quick`` for a shorter run, ``--signed`` for the signed run too)
"""

from __future__ import annotations

import argparse
import asyncio
import multiprocessing as mp
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import zmq
import zmq.asyncio

DOMAIN = "bench"


def _insight() -> Any:
    from metamesh.protocol import Insight

    names = [f"expert{i}" for i in range(8)]
    return Insight(
        names,
        [0.1 * i for i in range(8)],
        [100 + i for i in range(8)],
        0.42,
        832,
        17,
        {"train_loss": 0.4, "heldout_loss": 0.45},
    )


def _delta(nbytes: int) -> Any:
    from metamesh.protocol import Delta

    arr = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
    return Delta("experts", {"w": arr}, 1, 1000)


# -- raw pyzmq ------------------------------------------------------------------------------


def _raw_sender(endpoint_q: Any, go: Any, done: Any, frames: list[bytes], count: int, hwm: int) -> None:
    ctx = zmq.Context()
    pub = ctx.socket(zmq.PUB)
    pub.setsockopt(zmq.SNDHWM, hwm)
    port = pub.bind_to_random_port("tcp://127.0.0.1")
    endpoint_q.put(f"tcp://127.0.0.1:{port}")
    go.wait(30)
    # Send until the receiver has what it counts (bounded in messages and time), then
    # keep the socket open until it says so: closing early would drop what is in flight.
    deadline = time.monotonic() + 120
    sent = 0
    while not done.is_set() and sent < count * 4 and time.monotonic() < deadline:
        pub.send_multipart(frames, copy=False)
        sent += 1
    done.wait(max(0.0, deadline - time.monotonic()))
    pub.close(linger=0)
    ctx.term()


async def _raw_receive(endpoint: str, count: int, mode: str, ready: Any) -> float:
    ctx = zmq.asyncio.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.RCVHWM, 100_000)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)
    raw = zmq.Socket.shadow(sub.underlying)
    ready.set()
    got = 0
    first = await sub.recv_multipart(copy=False)
    del first
    start = time.perf_counter()
    while got < count:
        if mode == "await":
            await sub.recv_multipart(copy=False)
            got += 1
        else:
            await sub.poll()
            for _ in range(512):
                try:
                    raw.recv_multipart(zmq.NOBLOCK, copy=False)
                except zmq.Again:
                    break
                got += 1
    elapsed = time.perf_counter() - start
    sub.close(linger=0)
    ctx.term()
    return elapsed


def raw_run(frames: list[Any], count: int, mode: str) -> float:
    """Messages (or bytes) per second for raw pyzmq."""
    mpc = mp.get_context("spawn")
    q, go, done = mpc.Queue(), mpc.Event(), mpc.Event()
    sender = mpc.Process(
        target=_raw_sender, args=(q, go, done, [bytes(memoryview(f)) for f in frames], count, 100_000)
    )
    sender.start()
    endpoint = q.get(timeout=30)
    ready = mp.Event()

    async def main() -> float:
        task = asyncio.ensure_future(_raw_receive(endpoint, count, mode, ready))
        await asyncio.sleep(0.3)  # let the SUB connection finish before the sender starts
        go.set()
        return await task

    elapsed = asyncio.run(main())
    done.set()
    sender.join(60)
    return count / elapsed


# -- metamesh -------------------------------------------------------------------------------


def make_keys(root: Path) -> dict[str, str]:
    """A keys directory for the sender and the receiver, each authorizing the other."""
    from metamesh.gossip.keys import generate_keys

    dirs = {n: root / f"keys-{n}" for n in ("sender", "receiver")}
    for d in dirs.values():
        generate_keys(d)
    for trusting, d in dirs.items():
        for trusted, other in dirs.items():
            if trusted != trusting:
                (d / "authorized" / f"{trusted}.key").write_text((other / "node.key").read_text())
    return {n: str(d) for n, d in dirs.items()}


def _mm_sender(
    home: str, q: Any, go: Any, done: Any, body_kind: str, nbytes: int, count: int, keys: str | None
) -> None:
    from metamesh.node.config import load_config
    from metamesh.node.runtime import Node

    async def main() -> None:
        extra: dict[str, Any] = {"keys": keys} if keys else {}
        cfg = load_config(
            profile="local", overrides={"home": home, "name": "sender", "domain": [DOMAIN], **extra}
        )
        cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "send_hwm": 100_000})
        async with Node(cfg) as node:
            q.put(node.router_endpoint)
            while not go.is_set():
                await asyncio.sleep(0.01)
            body = _insight() if body_kind == "insight" else _delta(nbytes)
            deadline = time.monotonic() + 120
            sent = 0
            while not done.is_set() and sent < count * 4 and time.monotonic() < deadline:
                node.publish(DOMAIN, body, hops=0)
                sent += 1
                if body_kind != "insight" or sent % 1000 == 0:
                    await asyncio.sleep(0)
            while not done.is_set() and time.monotonic() < deadline:
                await asyncio.sleep(0.05)

    asyncio.run(main())


def mm_run(body_kind: str, nbytes: int, count: int, *, signed: bool = False) -> float:
    """Messages per second received and fully processed by a metamesh Node (``signed``: with
    keys, as a node runs by default: Curve on every socket, origin signatures verified)."""
    from metamesh.node.config import load_config
    from metamesh.node.runtime import Node

    mpc = mp.get_context("spawn")
    q, go, done = mpc.Queue(), mpc.Event(), mpc.Event()
    with tempfile.TemporaryDirectory() as tmp:
        keys = make_keys(Path(tmp)) if signed else {}
        sender = mpc.Process(
            target=_mm_sender,
            args=(str(Path(tmp, "s")), q, go, done, body_kind, nbytes, count, keys.get("sender")),
        )
        sender.start()
        router = q.get(timeout=30)

        async def main() -> float:
            cfg = load_config(
                profile="local",
                overrides={
                    "home": str(Path(tmp, "r")),
                    "name": "receiver",
                    "seed": [f"sender@{router}" if signed else router],
                    "domain": [DOMAIN],
                    **({"keys": keys["receiver"]} if signed else {}),
                },
            )
            cfg = type(cfg)(**{**{f: getattr(cfg, f) for f in cfg.__dataclass_fields__}, "recv_hwm": 100_000})
            async with Node(cfg) as node:
                deadline = time.monotonic() + 60
                while not node.membership.alive():
                    if time.monotonic() > deadline:
                        raise SystemExit("the sender never answered")
                    await asyncio.sleep(0.01)
                await asyncio.sleep(0.3)
                go.set()
                kind = "insight" if body_kind == "insight" else "delta"
                while node.counters.received[kind] == 0:
                    await asyncio.sleep(0)
                start = time.perf_counter()
                base = node.counters.received[kind]
                while node.counters.received[kind] - base < count:
                    await asyncio.sleep(0.001)
                rate = (node.counters.received[kind] - base) / (time.perf_counter() - start)
                assert node.transport.encrypted == signed, "the signed run runs with keys"
                return rate

        rate = asyncio.run(main())
        done.set()
        sender.join(60)
        if sender.is_alive():
            sender.kill()
    return rate


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--signed", action="store_true", help="also run insights signed (keys on)")
    args = parser.parse_args()
    from metamesh.protocol import Envelope, encode

    n = 20_000 if args.quick else 100_000
    frames = encode(Envelope("sender", 1, DOMAIN, _insight(), time.time(), hops=0))
    size = sum(memoryview(f).nbytes for f in frames)
    raw_await = raw_run(frames, n, "await")
    raw_drain = raw_run(frames, n, "drain")
    mm = mm_run("insight", 0, n)
    print(f"insight messages ({size} bytes on the wire), {n:,} messages, two processes, tcp loopback:")
    print(f"  raw pyzmq asyncio, one await per message  {raw_await:>10,.0f} msg/s")
    print(f"  raw pyzmq asyncio, non-blocking drain     {raw_drain:>10,.0f} msg/s")
    print(f"  metamesh full path (decode+validate+dispatch) {mm:>10,.0f} msg/s")
    print(f"  metamesh / one-await raw = {mm / raw_await:.2f} (target >= 2)", end="")
    print(f"; / drained ceiling = {mm / raw_drain:.2f}")
    if args.signed:
        mm_signed = mm_run("insight", 0, n, signed=True)
        print(f"  metamesh signed (Curve + origin signatures) {mm_signed:>10,.0f} msg/s")
        print(f"  signed / unsigned = {mm_signed / mm:.2f} (target >= 0.5)")
    nbytes = 40 * 1024 * 1024
    k = 10 if args.quick else 30
    dframes = encode(Envelope("sender", 1, DOMAIN, _delta(nbytes), time.time(), hops=0))
    raw_bw = raw_run(dframes, k, "drain") * nbytes / 1e9
    mm_bw = mm_run("delta", nbytes, k) * nbytes / 1e9
    print(f"40 MB deltas, {k} messages:")
    print(f"  raw pyzmq   {raw_bw:6.2f} GB/s")
    print(f"  metamesh    {mm_bw:6.2f} GB/s   ratio {mm_bw / raw_bw:.2f} (target >= 0.8)")


if __name__ == "__main__":
    main()
