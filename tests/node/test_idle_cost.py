"""Idle cost per node does not grow with the network: 8 and then 32 real node processes, idle.

Before heartbeats went to mesh neighbours only, each was flooded network-wide with a list of
peers, so a node's idle work grew with N (16 idle nodes saturated 2 cores). Now a node hears
one heartbeat per neighbour per interval and knows the others by member gossip.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(420)]

DOMAINS = ("math", "code", "geo", "art")
WINDOW = 8.0  # seconds of idle measured
TICKS = os.sysconf("SC_CLK_TCK")


def cpu_seconds(pid: int) -> float:
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime


def messages(node: NodeProcess) -> int:
    report = node.status(timeout=10)
    assert report is not None, f"{node.home.name} did not answer a status request"
    counters = report["counters"]
    received = sum(v for k, v in counters["received"].items() if k != "status_request")
    return int(received + sum(counters["sent"].values()))


def idle(root: Path, n: int) -> tuple[float, float]:
    """Start ``n`` nodes in 1-2 of 4 domains, wait until each knows all alive; CPU (cores) and
    messages per node per second over an idle window."""
    cluster = Cluster(root / f"n{n}")
    try:

        def args(i: int) -> list[str]:
            extra = ["--domain", DOMAINS[(i + 1) % 4]] if i % 2 else []
            return ["--domain", DOMAINS[i % 4], *extra]

        first = cluster.start("a0", *args(0))
        nodes = [
            first,
            *cluster.start_many([(f"a{i}", ["--seed", first.router, *args(i)]) for i in range(1, n)]),
        ]

        def converged() -> bool:
            return all(sum(s == "alive" for s in node.peer_states().values()) == n - 1 for node in nodes)

        wait_until(converged, 120, f"all {n} nodes knowing every other alive", interval=0.5)
        pids = [node.proc.pid for node in nodes if node.proc is not None]
        cpu0, msg0, t0 = sum(cpu_seconds(p) for p in pids), sum(messages(x) for x in nodes), time.monotonic()
        wait_until(
            lambda: time.monotonic() - t0 >= WINDOW or not all(x.alive() for x in nodes), WINDOW + 5, "idle"
        )
        assert all(x.alive() for x in nodes), "a node died while idle"
        cpu1, msg1, t1 = sum(cpu_seconds(p) for p in pids), sum(messages(x) for x in nodes), time.monotonic()
        return (cpu1 - cpu0) / (t1 - t0) / n, (msg1 - msg0) / (t1 - t0) / n
    finally:
        cluster.close()


def test_idle_cpu_and_messages_per_node_at_32_nodes_are_within_1_5x_of_8(tmp_path: Path) -> None:
    cpu8, msg8 = idle(tmp_path, 8)
    cpu32, msg32 = idle(tmp_path, 32)
    print(f"idle per node: 8 nodes {cpu8:.4f} cores {msg8:.1f} msg/s;", end=" ")
    print(f"32 nodes {cpu32:.4f} cores {msg32:.1f} msg/s")
    assert msg32 <= 1.5 * msg8, f"messages per node per second: {msg32:.1f} at 32 nodes, {msg8:.1f} at 8"
    # CPU time is counted per process, so others' load on the machine moves it little; 0.005 cores
    # of slack covers the status requests and the timer jitter of a busy machine.
    assert cpu32 <= 1.5 * cpu8 + 0.005, f"CPU per node: {cpu32:.4f} cores at 32 nodes, {cpu8:.4f} at 8"
