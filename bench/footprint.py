"""Node footprint without torch: start-to-ready, idle RSS, and RSS and CPU per message under load.

Reference (same machine class, from the node issue): a Flower SuperNode idles at
about 135 MB RSS plus a 126 MB SuperExec child. Targets: < 60 MB, < 1 s.
Under load, an edge-profile node receives insights from a publisher at a fixed
rate; its CPU time per message is set against a raw pyzmq SUB process that
receives the same messages from the same publisher (and does nothing with them).

Run: ``python bench/footprint.py`` (``--rate``, ``--seconds`` for the load)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

RAW_SUB = """
import sys, time, zmq
ctx = zmq.Context(); sub = ctx.socket(zmq.SUB); sub.setsockopt(zmq.RCVHWM, 100000)
sub.setsockopt(zmq.SUBSCRIBE, b"bench/"); sub.connect(sys.argv[1])
count, deadline = 0, time.monotonic() + float(sys.argv[2])
print("ready", flush=True)
while time.monotonic() < deadline:
    if sub.poll(100):
        while True:
            try:
                sub.recv_multipart(zmq.NOBLOCK, copy=False); count += 1
            except zmq.Again:
                break
print(count, flush=True)
"""


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def memory_mb(pid: int, key: str = "VmRSS") -> float:
    with open(f"/proc/{pid}/status") as fh:
        return next(int(line.split()[1]) for line in fh if line.startswith(key)) / 1024


async def load(router: str, node_pid: int, rate: int, seconds: float) -> dict[str, float]:
    """Publish insights at ``rate`` for ``seconds`` to the node and to a raw SUB; measure both."""
    sys.path.insert(0, str(Path(__file__).parent))
    from bus import _insight

    from metamesh.node.client import ask
    from metamesh.node.config import load_config
    from metamesh.node.runtime import Node
    from metamesh.protocol import Status, StatusRequest

    async def received() -> int:
        reply = await ask(router, StatusRequest(), timeout=3.0)
        assert isinstance(reply.body, Status)
        return int(reply.body.report["counters"]["received"].get("insight", 0))

    with tempfile.TemporaryDirectory() as home:
        config = load_config(
            profile="local", overrides={"home": home, "seed": [router], "domain": ["bench"]}
        )
        async with Node(config) as pub:
            raw = subprocess.Popen(  # noqa: ASYNC220 - before the load starts; nothing else to run yet
                [sys.executable, "-c", RAW_SUB, pub.pub_endpoint, str(seconds + 15)],
                stdout=subprocess.PIPE, text=True,
            )  # fmt: skip
            assert raw.stdout is not None and raw.stdout.readline().strip() == "ready"
            body = _insight()
            async with asyncio.timeout(30):  # the node's SUB link to us is up once our messages arrive
                while await received() == 0:
                    pub.publish("bench", body)
                    await asyncio.sleep(0.05)
            before_node, before_raw, base = cpu_seconds(node_pid), cpu_seconds(raw.pid), await received()
            sent, start = 0, time.monotonic()
            while (elapsed := time.monotonic() - start) < seconds:
                due = int(elapsed * rate) - sent
                for _ in range(min(due, rate)):
                    pub.publish("bench", body)
                sent += max(due, 0)
                await asyncio.sleep(0.005)
            async with asyncio.timeout(20):
                while await received() - base < 0.99 * sent:
                    await asyncio.sleep(0.1)
            got = await received() - base
            node_cpu = cpu_seconds(node_pid) - before_node
            rss, peak = memory_mb(node_pid), memory_mb(node_pid, "VmHWM")
            raw_cpu = cpu_seconds(raw.pid) - before_raw
            raw.terminate()
            raw.wait(10)
            raw.stdout.close()
    return {"sent": sent, "got": got, "node_cpu": node_cpu, "raw_cpu": raw_cpu, "rss": rss, "peak": peak}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rate", type=int, default=2000, help="insights per second (default 2000)")
    parser.add_argument("--seconds", type=float, default=10.0, help="seconds of load (default 10)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as home:
        start = time.perf_counter()
        cmd = [
            sys.executable,
            "-m",
            "metamesh",
            "--log-level",
            "warning",
            "node",
            "--profile",
            "edge",
            "--home",
            home,
            "--domain",
            "bench",
            "--ready-json",
        ]
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE)
        assert proc.stdout is not None
        info = json.loads(proc.stdout.readline())
        ready = time.perf_counter() - start
        settle = time.monotonic() + 3.0
        while time.monotonic() < settle and proc.poll() is None:
            time.sleep(0.1)
        with open(f"/proc/{proc.pid}/status") as fh:
            rss = next(int(line.split()[1]) for line in fh if line.startswith("VmRSS")) / 1024
        torch = subprocess.run(
            [sys.executable, "-c", "import sys, metamesh.node.runtime; print('torch' in sys.modules)"],
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        figures = asyncio.run(load(info["router"], proc.pid, args.rate, args.seconds))
        proc.terminate()
        proc.wait(10)
        proc.stdout.close()
    print(f"start-to-ready {ready:.2f} s (target < 1 s)")
    print(f"idle RSS       {rss:.1f} MB (target < 60 MB; Flower SuperNode ~135 MB + 126 MB SuperExec)")
    print(f"torch imported by the node runtime: {torch}")
    f = figures
    per_node, per_raw = f["node_cpu"] / f["got"] * 1e6, f["raw_cpu"] / f["got"] * 1e6
    print(
        f"under load     {f['got']:.0f} of {f['sent']:.0f} insights in {args.seconds:.0f} s at {args.rate}/s"
    )
    print(f"RSS under load {f['rss']:.1f} MB, peak {f['peak']:.1f} MB (idle {rss:.1f} MB)")
    print(f"CPU/message    {per_node:.0f} us (raw pyzmq SUB, same messages: {per_raw:.1f} us; "
          f"{per_node / per_raw:.0f}x)")  # fmt: skip


if __name__ == "__main__":
    main()
