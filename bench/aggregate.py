"""Weighted averaging of deltas, and one full domain round on real sockets.

Part 1, in one process: ``fedavg`` of N = 8 and 32 float32 deltas of 1M and
10M elements, in GB/s of input read, next to a numpy STREAM-style triad
(``a = b + s * c``: two arrays read, one written) measured in the same run.
Target: at least 0.5 of the triad's bandwidth.

Part 2, on real sockets: 8 node processes on tcp loopback, each a real
``metamesh.node.runtime.Node`` in one domain; on a signal every node
publishes a 1M-float32 delta and the round ends when every node has received
all 7 others and merged them (``fedavg``). The reference in the same run is
the same round with raw pyzmq PUB/SUB and the same averaging, no protocol,
validation, membership or relay. Target: under 0.3 s per round (Flower 1.41
takes about 15 s for the equivalent FedAvg round on this machine class, much
of it a 3 s polling interval and a process per task; not measured here).

Run: ``python bench/aggregate.py`` (``--quick`` for a shorter run; ``--eager`` relays
large deltas as bytes instead of by ``ihave`` announcements, for comparison)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import selectors
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from metamesh.node.learner import Learner

DOMAIN = "bench"
ELEMENTS = 1_000_000

# -- part 1: averaging bandwidth --------------------------------------------------


def best_of(fn: Any, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return min(times)


def averaging(quick: bool) -> None:
    from metamesh.gossip.merge.delta import Update, fedavg

    print("fedavg of N float32 deltas, GB/s of input read; triad a = b + s*c (3 arrays moved)")
    print(f"{'N':>4} {'elements':>10} {'fedavg ms':>10} {'GB/s':>7} {'triad GB/s':>11} {'ratio':>6}")
    rng = np.random.default_rng(0)
    for size in (1_000_000, 10_000_000):
        b, c = rng.standard_normal(size).astype(np.float32), rng.standard_normal(size).astype(np.float32)
        a = np.empty_like(b)

        def triad(a: np.ndarray = a, b: np.ndarray = b, c: np.ndarray = c) -> None:
            np.multiply(c, np.float32(0.5), out=a)
            np.add(a, b, out=a)

        triad_s = best_of(triad, 3 if quick else 7)
        triad_gbs = 3 * size * 4 / triad_s / 1e9
        for n in (8, 32):
            updates = [Update({"w": rng.standard_normal(size).astype(np.float32)}, 100 + i) for i in range(n)]
            seconds = best_of(lambda u=updates: fedavg(u), 2 if quick else 5)
            gbs = n * size * 4 / seconds / 1e9
            ratio = gbs / triad_gbs
            print(f"{n:>4} {size:>10,} {seconds * 1e3:>10.1f} {gbs:>7.2f} {triad_gbs:>11.2f} {ratio:>6.2f}")
            del updates


# -- part 2: a domain round on sockets --------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def emit(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def stdin_lines(loop: asyncio.AbstractEventLoop, queue: asyncio.Queue[str]) -> None:
    """Forward the driver's commands from stdin to the event loop."""

    def read() -> None:
        for line in sys.stdin:
            loop.call_soon_threadsafe(queue.put_nowait, line.strip())
        loop.call_soon_threadsafe(queue.put_nowait, "quit")

    threading.Thread(target=read, daemon=True).start()


class RoundLearner(Learner):
    """Publishes one delta per round on command; merges once all peers' deltas of the round arrived."""

    name = "bench"

    def __init__(self, peers: int, commands: asyncio.Queue[str]) -> None:
        from metamesh.gossip.merge.delta import Update

        self.peers = peers
        self.commands = commands
        self.round = 0
        self.own = Update({"w": np.full(ELEMENTS, 1.0, np.float32)}, 100)
        self.got: dict[int, dict[str, Any]] = {}
        self.pending: list[tuple[str, Any]] = []
        self.started = 0.0

    async def step(self) -> None:
        from metamesh.protocol import Delta

        command = await self.commands.get()
        if command == "quit":
            await asyncio.Event().wait()  # the driver stops this process
        self.round = int(command.split()[1])
        self.started = time.time()
        tensors = {"w": np.full(ELEMENTS, float(self.round), np.float32)}
        self.pending.append((DOMAIN, Delta("bench", tensors, 0, 100, round=self.round)))
        self._maybe_merge()

    def share(self) -> list[tuple[str, Any]]:
        out, self.pending = self.pending, []
        return out

    def merge(self, sender: str, domain: str, body: Any) -> None:
        from metamesh.protocol import Delta

        if isinstance(body, Delta) and body.model == "bench":
            self.got.setdefault(body.round, {})[sender] = body
            self._maybe_merge()

    def _maybe_merge(self) -> None:
        from metamesh.gossip.merge.delta import Update, fedavg

        got = self.got.get(self.round, {})
        if self.round == 0 or len(got) < self.peers or not self.started:
            return
        avg = fedavg([self.own, *(Update(dict(d.tensors), d.samples) for d in got.values())])
        expected = (100.0 + 100.0 * self.round * self.peers) / (100.0 * (self.peers + 1))
        emit({"round": self.round, "merged_at": time.time(), "ok": bool(np.allclose(avg["w"][:8], expected))})
        del self.got[self.round]
        self.started = 0.0

    def apply_meta(self, meta: Any) -> None: ...

    def affinity(self) -> dict[str, float]:
        return {DOMAIN: 1.0}

    def summary(self) -> dict[str, float]:
        return {"round": float(self.round)}

    def state(self) -> dict[str, Any]:
        return {}

    def load_state(self, state: Any) -> None: ...


async def node_worker(index: int, n: int, seed_port: int, home: str) -> None:
    from metamesh.node.config import PROFILES
    from metamesh.node.runtime import Node

    commands: asyncio.Queue[str] = asyncio.Queue()
    stdin_lines(asyncio.get_running_loop(), commands)
    base = PROFILES["local"]
    from dataclasses import replace

    config = replace(
        base,
        home=Path(home),
        name=f"b{index}",
        router_port=seed_port if index == 0 else 0,
        seed=() if index == 0 else (f"tcp://127.0.0.1:{seed_port}",),
        domain=(DOMAIN,),
        checkpoint_interval=3600.0,
        lazy_relay_bytes=0 if os.environ.get("METAMESH_BENCH_EAGER") else base.lazy_relay_bytes,
    )
    learner = RoundLearner(n - 1, commands)
    async with Node(config, learner=learner) as node:  # type: ignore[arg-type]
        deadline = time.monotonic() + 60
        while len(node.membership.alive()) < n - 1 and time.monotonic() < deadline:
            await asyncio.sleep(0.05)
        emit({"ready": len(node.membership.alive())})
        await node.wait_stopped()


async def raw_worker(index: int, ports: list[int]) -> None:
    import zmq
    import zmq.asyncio

    from metamesh.gossip.merge.delta import Update, fedavg

    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    pub.bind(f"tcp://127.0.0.1:{ports[index]}")
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    for i, port in enumerate(ports):
        if i != index:
            sub.connect(f"tcp://127.0.0.1:{port}")
    commands: asyncio.Queue[str] = asyncio.Queue()
    stdin_lines(asyncio.get_running_loop(), commands)
    peers = len(ports) - 1
    seen: set[bytes] = set()
    # Ping until every peer was heard, then keep pinging briefly so the others hear us too.
    for _ in range(400):
        await pub.send_multipart([b"ping", str(index).encode()])
        while await sub.poll(0):
            kind, who, *_ = await sub.recv_multipart()
            if kind == b"ping":
                seen.add(who)
        if len(seen) >= peers:
            break
        await asyncio.sleep(0.025)
    emit({"ready": len(seen)})
    own = Update({"w": np.full(ELEMENTS, 1.0, np.float32)}, 100)
    got: dict[int, list[Update]] = {}

    async def drain() -> None:
        while await sub.poll(0):
            kind, r, *rest = await sub.recv_multipart(copy=False)
            if bytes(kind) == b"delta":  # a faster peer's may come before our own go
                update = Update({"w": np.frombuffer(rest[0].buffer, np.float32)}, 100)
                got.setdefault(int(bytes(r)), []).append(update)

    while True:
        get = asyncio.ensure_future(commands.get())
        while not get.done():
            await pub.send_multipart([b"ping", str(index).encode()])
            await asyncio.wait([get], timeout=0.05)
            await drain()
        command = get.result()
        if command == "quit":
            break
        rnd = int(command.split()[1])
        payload = np.full(ELEMENTS, float(rnd), np.float32)
        await pub.send_multipart([b"delta", str(rnd).encode(), payload], copy=False)
        while len(got.get(rnd, [])) < peers:
            await sub.poll()
            await drain()
        avg = fedavg([own, *got.pop(rnd)])
        expected = (100.0 + 100.0 * rnd * peers) / (100.0 * (peers + 1))
        emit({"round": rnd, "merged_at": time.time(), "ok": bool(np.allclose(avg["w"][:8], expected))})
    pub.close(0)
    sub.close(0)
    ctx.term()


def read_line(proc: subprocess.Popen[str], timeout: float, mode: str) -> dict[str, Any]:
    """One JSON line from a worker, or exit with a message after ``timeout`` seconds."""
    assert proc.stdout is not None
    with selectors.DefaultSelector() as sel:
        sel.register(proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            raise SystemExit(f"{mode}: a worker did not answer within {timeout:.0f} s")
    line = proc.stdout.readline()
    if not line:
        raise SystemExit(f"{mode}: a worker exited")
    return dict(json.loads(line))


def run_round(mode: str, n: int, rounds: int) -> list[float]:
    """Start ``n`` worker processes, run ``rounds`` rounds (plus a warm-up), return round seconds."""
    ports = [free_port() for _ in range(n)]
    procs: list[subprocess.Popen[str]] = []
    with tempfile.TemporaryDirectory() as tmp:
        try:
            for i in range(n):
                args = [sys.executable, __file__, "--worker", mode, "--index", str(i), "--n", str(n),
                        "--ports", ",".join(map(str, ports)), "--home", f"{tmp}/n{i}"]  # fmt: skip
                procs.append(
                    subprocess.Popen(
                        args, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
                    )
                )
            for p in procs:
                line = read_line(p, 90.0, mode)
                if line.get("ready", 0) < n - 1:
                    raise SystemExit(f"{mode}: a worker saw only {line.get('ready')} of {n - 1} peers")
            times = []
            for r in range(rounds + 1):
                go = time.time()
                for p in procs:
                    p.stdin.write(f"go {r + 1}\n")  # type: ignore[union-attr]
                    p.stdin.flush()  # type: ignore[union-attr]
                done = [read_line(p, 30.0, mode) for p in procs]
                if not all(d["ok"] and d["round"] == r + 1 for d in done):
                    raise SystemExit(f"{mode}: a node merged the wrong average: {done}")
                if r:  # round 0 warms up connections and buffers
                    times.append(max(d["merged_at"] for d in done) - go)
            return times
        finally:
            for p in procs:
                if p.poll() is None:
                    p.terminate()
            for p in procs:
                try:
                    p.wait(10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait()


def domain_round(quick: bool) -> None:
    n, rounds = 8, 3 if quick else 7
    print(f"\none domain round: {n} processes, each publishes {ELEMENTS:,} float32 and merges all others")
    raw = run_round("raw", n, rounds)
    node = run_round("node", n, rounds)
    r, m = statistics.median(raw), statistics.median(node)
    for label, times in (("raw pyzmq PUB/SUB + fedavg:", raw), ("metamesh nodes:", node)):
        low, high = min(times) * 1e3, max(times) * 1e3
        print(
            f"  {label:<28} median {statistics.median(times) * 1e3:7.1f} ms  (min {low:.1f}, max {high:.1f})"
        )
    verdict = "met" if m < 0.3 else "MISSED"
    print(f"  metamesh / raw: {m / r:.2f}x the time; target < 300 ms per round: {verdict}")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--only", choices=["averaging", "round"])
    parser.add_argument(
        "--eager", action="store_true", help="relay large deltas as bytes, not by ihave (for comparison)"
    )
    parser.add_argument("--worker", choices=["node", "raw"], help=argparse.SUPPRESS)
    parser.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    parser.add_argument("--n", type=int, default=8, help=argparse.SUPPRESS)
    parser.add_argument("--ports", default="", help=argparse.SUPPRESS)
    parser.add_argument("--home", default="", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker == "node":
        ports = [int(p) for p in args.ports.split(",")]
        asyncio.run(node_worker(args.index, args.n, ports[0], args.home))
        return
    if args.worker == "raw":
        asyncio.run(raw_worker(args.index, [int(p) for p in args.ports.split(",")]))
        return
    if args.eager:
        os.environ["METAMESH_BENCH_EAGER"] = "1"  # inherited by the node workers
    print(f"python {sys.version.split()[0]}, numpy {np.__version__}, {os.cpu_count()} cpus")
    if args.only in (None, "averaging"):
        averaging(args.quick)
    if args.only in (None, "round"):
        domain_round(args.quick)


if __name__ == "__main__":
    main()
