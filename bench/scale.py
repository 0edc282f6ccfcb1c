"""Scale bench: 16, 32 and 64 real node processes on 127.0.0.1, per-node cost against N.

Run: python bench/scale.py [--sizes 16,32,64] [--out FILE.json] [--plot docs/img/scale-traffic.png]

Per N, two clusters of preloaded ``metamesh node`` processes (forked from the fork server, as
experiments start theirs), each node in 1-2 of 4 domains, local profile:

1. idle, no learner: time from the last node ready until every node holds every other alive;
   messages and bytes per node per second over an idle window; then one insight published in
   one domain by a probe node in this process, and when it reached 50/99/100% of that domain's
   nodes (each node's status polled as fast as the probe can), with the hops of those nodes
   from the probe over the domain's links (breadth-first over what each node reports linked);
2. learning: the prompt learner with the simulated LLM (``--pace 0.2``: 5 questions a second
   per node, so 64 nodes fit on 2 cores), messages and bytes per node per second, RSS and CPU.

Every per-node figure is printed beside its ratio to the N = 16 value of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import tempfile
import time
from collections import deque
from pathlib import Path
from typing import Any

from metamesh.deploy.local import LocalNode
from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from metamesh.protocol import Insight, Status, StatusRequest

DOMAINS = ("geography", "math", "science", "history")
PRELOAD = ("metamesh.cli.main", "metamesh.learners.prompts", "metamesh.node.runtime")
IDLE_WINDOW = 10.0
LEARN_WINDOW = 15.0
TICKS = os.sysconf("SC_CLK_TCK")
PAGE = os.sysconf("SC_PAGE_SIZE")


def domains_of(i: int) -> list[str]:
    first = DOMAINS[i % 4]
    return (
        [first, DOMAINS[(i // 4 + i + 1) % 4]]
        if i % 2 and DOMAINS[(i // 4 + i + 1) % 4] != first
        else [first]
    )


def node_args(i: int, learner: bool) -> list[str]:
    args = ["--profile", "local", "--name", f"n{i}"]
    doms = domains_of(i)
    for d in doms:
        args += ["--domain", d]
    if learner:
        weights = ",".join(f"{d}={1 / len(doms):.3f}" for d in doms)
        args += ["--learner", "prompts", "--arm", "federated", "--llm", "sim", "--weights", weights,
                 "--episodes", "100000", "--eval-every", "1000", "--pace", "0.2",
                 "--random-seed", str(i), "--domain-enter", "0.02", "--domain-exit", "0.01"]  # fmt: skip
    return args


def start(root: Path, n: int, learner: bool) -> tuple[list[LocalNode], float]:
    first = LocalNode(root / "n0", node_args(0, learner), preload=PRELOAD).start()
    rest = [
        LocalNode(root / f"n{i}", [*node_args(i, learner), "--seed", first.router], preload=PRELOAD)
        for i in range(1, n)
    ]
    for node in rest:
        node.launch()
    for node in rest:
        node.wait_ready(60)
    return [first, *rest], time.monotonic()


def proc_figures(pid: int) -> tuple[float, float]:
    """CPU seconds (user + system) and RSS bytes of a process."""
    stat = Path(f"/proc/{pid}/stat").read_text()
    fields = stat[stat.rindex(")") + 2 :].split()
    return (int(fields[11]) + int(fields[12])) / TICKS, int(fields[21]) * PAGE


def pid_of(node: LocalNode) -> int:
    assert node.proc is not None
    return int(node.proc.pid)


async def statuses(probe: Node, nodes: list[LocalNode]) -> list[dict[str, Any] | None]:
    async def one(node: LocalNode) -> dict[str, Any] | None:
        try:
            [reply] = await probe.request(node.router, StatusRequest(), timeout=5.0)
        except (TimeoutError, ValueError, OSError):
            return None
        return dict(reply.body.report) if isinstance(reply.body, Status) else None

    return list(await asyncio.gather(*(one(x) for x in nodes)))


def traffic(report: dict[str, Any]) -> tuple[int, int]:
    c = report["counters"]
    skip = {"status", "status_request"}
    msgs = sum(v for k, v in c["received"].items() if k not in skip) + sum(
        v for k, v in c["sent"].items() if k not in skip
    )
    return msgs, int(c["bytes_sent"]) + int(c["bytes_received"])


async def window(probe: Node, nodes: list[LocalNode], seconds: float) -> dict[str, float]:
    """Messages and bytes per node per second, CPU (cores) and RSS (MB) per node, over ``seconds``."""
    pids = [pid_of(x) for x in nodes]
    before, t0 = await statuses(probe, nodes), time.monotonic()
    cpu0 = [proc_figures(p)[0] for p in pids]
    await asyncio.sleep(seconds)  # the measurement window itself, not a synchronization
    after, t1 = await statuses(probe, nodes), time.monotonic()
    figures = [proc_figures(p) for p in pids]
    pairs = [(traffic(a), traffic(b)) for a, b in zip(before, after, strict=True) if a and b]
    n, dt = len(pairs), t1 - t0
    return {
        "msgs": sum(b[0] - a[0] for a, b in pairs) / n / dt,
        "bytes": sum(b[1] - a[1] for a, b in pairs) / n / dt,
        "cpu": sum(f[0] - c for f, c in zip(figures, cpu0, strict=True)) / len(pids) / dt,
        "rss_mb": sum(f[1] for f in figures) / len(pids) / 2**20,
        "answered": n,
    }


def hops_from(probe_id: str, reports: list[dict[str, Any]], domain: str) -> dict[str, int]:
    """Hops from the probe to each node of ``domain`` over links between nodes of the domain."""
    graph: dict[str, set[str]] = {probe_id: set()}
    for r in reports:
        if domain not in r["domains"]:
            continue
        for peer, info in r["peers"].items():
            if info["connected"] and (domain in info["domains"] or peer == probe_id):
                graph.setdefault(r["node"], set()).add(peer)
                graph.setdefault(peer, set()).add(r["node"])
    dist, queue = {probe_id: 0}, deque([probe_id])
    while queue:
        at = queue.popleft()
        for nxt in graph.get(at, ()):
            if nxt not in dist:
                dist[nxt] = dist[at] + 1
                queue.append(nxt)
    return dist


def quantile_at(times: list[float], frac: float, total: int) -> float | None:
    k = max(1, int(-(-frac * total // 1)))  # ceil
    return sorted(times)[k - 1] if len(times) >= k else None


async def idle_phase(root: Path, n: int) -> dict[str, Any]:
    nodes, ready = start(root / "idle", n, learner=False)
    ids = {x.id for x in nodes}
    domain = DOMAINS[1]
    config = load_config(profile="local", overrides={"home": root / "probe", "seed": [nodes[0].router],
                                                     "domain": [domain], "name": "probe"})  # fmt: skip
    try:
        async with Node(config) as probe:
            while True:
                reports = await statuses(probe, nodes)
                if all(r and sum(s["state"] == "alive" for p, s in r["peers"].items() if p in ids) == n - 1
                       for r in reports):  # fmt: skip
                    break
                if time.monotonic() - ready > 120:
                    raise RuntimeError(f"{n} nodes: membership did not converge in 120 s")
                await asyncio.sleep(0.2)
            converged = time.monotonic() - ready
            idle = await window(probe, nodes, IDLE_WINDOW)
            members = [x for x in nodes if domain in domains_of(int(x.home.name[1:]))]
            while not any(domain in r.domains and r.connected for r in probe.peers.values()):
                await asyncio.sleep(0.05)
            await asyncio.sleep(1.0)  # let the probe's grafts be answered and linked back
            key = f"probe/insight/{domain}"
            t0 = time.monotonic()
            probe.publish(domain, Insight(["e0"], [0.25], [10], 0.25, 10, 1))
            arrived: dict[str, float] = {}
            while len(arrived) < len(members) and time.monotonic() - t0 < 10:
                for node, r in zip(members, await statuses(probe, members), strict=True):
                    if r and key in r["state"] and node.id not in arrived:
                        arrived[node.id] = time.monotonic() - t0
            final = [r for r in await statuses(probe, members) if r is not None]
            hops = hops_from(probe.id, final, domain)
    finally:
        for x in nodes:
            x.terminate()
        for x in nodes:
            x.stop(10)
    times = list(arrived.values())
    order = sorted(arrived, key=arrived.__getitem__)

    def spread(frac: float) -> dict[str, float | int | None]:
        t = quantile_at(times, frac, len(members))
        k = max(1, int(-(-frac * len(members) // 1)))
        hop = max((hops.get(p, -1) for p in order[:k]), default=None) if t is not None else None
        return {"s": None if t is None else round(t, 3), "hops": hop}

    return {
        "membership_s": round(converged, 2),
        "idle": idle,
        "domain": domain,
        "domain_nodes": len(members),
        "reached": len(arrived),
        **{f"p{round(q * 100)}": spread(q) for q in (0.5, 0.99, 1.0)},
    }


async def learn_phase(root: Path, n: int) -> dict[str, float]:
    nodes, _ = start(root / "learn", n, learner=True)
    config = load_config(profile="local", overrides={"home": root / "probe2", "seed": [nodes[0].router],
                                                     "domain": [], "name": "probe2"})  # fmt: skip
    try:
        async with Node(config) as probe:
            await asyncio.sleep(5.0)  # warm-up: learners start and meshes settle before the window
            return await window(probe, nodes, LEARN_WINDOW)
    finally:
        for x in nodes:
            x.terminate()
        for x in nodes:
            x.stop(10)


def load() -> str:
    return " ".join(Path("/proc/loadavg").read_text().split()[:3])


def table(results: dict[int, dict[str, Any]]) -> str:
    base = results[min(results)]
    rows = ["| N | membership s | insight 50/99/100% s (hops) | idle msg/s/node | idle B/s/node | "
            "learning msg/s/node | learning B/s/node | RSS MB/node | CPU/node (learning) | load before |",
            "| ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: | ---: | --- |"]  # fmt: skip

    def r(v: float, b: float, fmt: str) -> str:
        return f"{v:{fmt}} ({v / b:.2f}x)" if b else f"{v:{fmt}}"

    for n, res in sorted(results.items()):
        i, li, bi, bl = res["idle"], res["learn"], base["idle"], base["learn"]
        spread = " / ".join(f"{res[q]['s']} ({res[q]['hops']})" for q in ("p50", "p99", "p100"))
        rows.append(
            f"| {n} | {res['membership_s']} | {spread} | {r(i['msgs'], bi['msgs'], '.1f')} | "
            f"{r(i['bytes'], bi['bytes'], '.0f')} | {r(li['msgs'], bl['msgs'], '.1f')} | "
            f"{r(li['bytes'], bl['bytes'], '.0f')} | {r(li['rss_mb'], bl['rss_mb'], '.0f')} | "
            f"{r(li['cpu'], bl['cpu'], '.3f')} (idle {i['cpu']:.3f}) | {res['load']} |"
        )
    return "\n".join(rows)


def plot(results: dict[int, dict[str, Any]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = sorted(results)
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(9, 3.5))
    for phase, style in (("idle", "o-"), ("learn", "s--")):
        ax1.plot(ns, [results[n][phase]["msgs"] for n in ns], style, label=phase)
        ax2.plot(ns, [results[n][phase]["bytes"] / 1024 for n in ns], style, label=phase)
    ax1.set(xlabel="nodes", ylabel="messages / s / node", xscale="log", ylim=(0, None))
    ax2.set(xlabel="nodes", ylabel="KiB / s / node", xscale="log", ylim=(0, None))
    for ax in (ax1, ax2):
        ax.set_xticks(ns, [str(n) for n in ns])
        ax.minorticks_off()
        ax.legend()
    fig.suptitle("metamesh per-node traffic against network size (127.0.0.1, 2 cores)")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)


async def run(sizes: list[int]) -> dict[int, dict[str, Any]]:
    results: dict[int, dict[str, Any]] = {}
    for n in sizes:
        root = Path(tempfile.mkdtemp(prefix=f"mm-scale-{n}-"))
        try:
            res: dict[str, Any] = {"load": load()}
            res.update(await idle_phase(root, n))
            res["learn"] = await learn_phase(root, n)
            results[n] = res
            print(f"N={n}: {json.dumps(res)}", flush=True)
        finally:
            shutil.rmtree(root, ignore_errors=True)
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="16,32,64")
    parser.add_argument("--out", type=Path, default=None, help="also write the figures here (JSON)")
    parser.add_argument("--plot", type=Path, default=Path("docs/img/scale-traffic.png"))
    args = parser.parse_args()
    results = asyncio.run(run([int(s) for s in args.sizes.split(",")]))
    print(table(results))
    if args.out is not None:
        args.out.write_text(json.dumps(results, indent=2))
    plot(results, args.plot)


if __name__ == "__main__":
    main()
