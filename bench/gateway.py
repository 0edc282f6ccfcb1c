"""The gateway's cost: latency it adds, feedback it takes, memory it needs.

Three processes on loopback: the echo backend (tests/gateway/fakes.py, an instant OpenAI-compatible
server), a gateway node in front of it, and this client. The reference is measured in the same run:
the same client at the same concurrency calling the backend directly; added latency is the
difference of the percentiles. Idle RSS: a node with the prompt learner, with and without a
started gateway, each in its own fresh process.

Also at one client (no queueing: the gateway's own cost per request), and, with ``--profile
FILE``, the gateway process under cProfile (its top functions printed; figures then inflated by
the profiler, so a profiling run is for where the time goes, not for the figures).

    python bench/gateway.py [--requests 2000] [--concurrency 50] [--profile FILE]
"""

from __future__ import annotations

import argparse
import asyncio
import cProfile
import json
import os
import pstats
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
ASK = {"model": "metamesh", "messages": [{"role": "user", "content": "What is 7 times 6?"}],
       "metadata": {"category": "math"}, "max_tokens": 8}  # fmt: skip


def rss_kb() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


async def child(role: str, backend: str, home: str) -> None:
    """Run one part until SIGTERM; print one JSON line when ready."""
    from metamesh.node.config import load_config

    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    if role == "backend":
        from tests.gateway.fakes import echo_app, serve_app

        async with serve_app(echo_app()) as url:
            print(json.dumps({"url": url}), flush=True)
            await stop.wait()
        return
    config = load_config(profile="local", overrides={"home": Path(home), "learner": "prompts"})
    if role == "plain":
        from metamesh.node.registry import build_learner
        from metamesh.node.runtime import Node

        node = Node(config, learner=build_learner(config))
        await node.start()
        await asyncio.sleep(1.0)
        print(json.dumps({"rss_kb": rss_kb()}), flush=True)
        await stop.wait()
        await node.stop()
        return
    from metamesh.gateway import GatewayConfig, OpenAIBackend, build_gateway
    from metamesh.node.runtime import Node

    gw = build_gateway(
        config, GatewayConfig(port=0, rate=0), backends=[OpenAIBackend(backend + "/v1", "echo")]
    )
    node = Node(config, learner=gw.learner)
    await node.start()
    await gw.start(node)
    await asyncio.sleep(1.0)
    profile = os.environ.get("MM_BENCH_PROFILE")
    prof = cProfile.Profile() if profile else None
    print(json.dumps({"url": f"http://127.0.0.1:{gw.port}", "rss_kb": rss_kb()}), flush=True)
    if prof is not None:
        prof.enable()
    await stop.wait()
    if prof is not None and profile:
        prof.disable()
        prof.dump_stats(profile)
    await gw.stop()
    await node.stop()


def spawn(role: str, backend: str = "", profile: str = "") -> tuple[subprocess.Popen[str], dict]:
    home = tempfile.mkdtemp(prefix=f"mm-bench-{role}-")
    env = {**os.environ, "MM_BENCH_PROFILE": profile} if profile else None
    proc = subprocess.Popen([sys.executable, __file__, "--child", role, "--backend", backend, "--home", home],
                            stdout=subprocess.PIPE, text=True, cwd=ROOT, env=env)  # fmt: skip
    assert proc.stdout is not None
    return proc, json.loads(proc.stdout.readline())


def stop(proc: subprocess.Popen[str]) -> None:
    os.kill(proc.pid, signal.SIGTERM)
    try:
        proc.wait(10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


async def load(url: str, path: str, bodies: list[dict], concurrency: int) -> tuple[list[float], float]:
    limits = httpx.Limits(max_connections=concurrency, max_keepalive_connections=concurrency)
    async with httpx.AsyncClient(base_url=url, limits=limits, timeout=30) as http:
        for b in bodies[:50]:  # warm up connections
            (await http.post(path, json=b)).raise_for_status()
        queue = list(bodies[50:])
        lat: list[float] = []

        async def worker() -> None:
            while queue:
                body = queue.pop()
                t = time.perf_counter()
                r = await http.post(path, json=body)
                lat.append(time.perf_counter() - t)
                assert r.status_code == 200, r.text

        t0 = time.perf_counter()
        await asyncio.gather(*(worker() for _ in range(concurrency)))
        return lat, time.perf_counter() - t0


def pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100)[q - 1] * 1000


async def main(requests: int, concurrency: int, profile: str) -> None:
    print(f"load average {os.getloadavg()[0]:.1f} (1 min) at the start")
    backend, b = spawn("backend")
    gateway, g = spawn("gateway", b["url"], profile)
    plain, p = spawn("plain")
    try:
        direct_body = {**ASK, "model": "echo"}
        one = max(requests // 4, 100)
        direct1, _ = await load(b["url"], "/v1/chat/completions", [direct_body] * (one + 50), 1)
        via1, _ = await load(g["url"], "/v1/chat/completions", [ASK] * (one + 50), 1)
        direct, direct_took = await load(b["url"], "/v1/chat/completions", [direct_body] * (requests + 50),
                                         concurrency)  # fmt: skip
        via, _ = await load(g["url"], "/v1/chat/completions", [ASK] * (requests + 50), concurrency)
        async with httpx.AsyncClient(base_url=g["url"]) as http:
            ids = [(await http.post("/v1/chat/completions", json=ASK)).headers["x-metamesh-decision"]
                   for _ in range(requests + 50)]  # fmt: skip
        feedback, took = await load(g["url"], "/v1/feedback", [{"decision_id": i, "score": 1.0} for i in ids],
                                    concurrency)  # fmt: skip
        async with httpx.AsyncClient(base_url=g["url"]) as http:
            metrics = (await http.get("/metrics")).text
        fsyncs = next(float(x.split()[-1]) for x in metrics.splitlines()
                      if x.startswith("metamesh_gateway_journal_fsyncs_total "))  # fmt: skip
        rows = {
            "1 client: direct p50 ms": pct(direct1, 50), "1 client: gateway p50 ms": pct(via1, 50),
            "1 client: added p50 ms": pct(via1, 50) - pct(direct1, 50),
            "1 client: added p99 ms": pct(via1, 99) - pct(direct1, 99),
            "direct p50 ms": pct(direct, 50), "direct p99 ms": pct(direct, 99),
            "gateway p50 ms": pct(via, 50), "gateway p99 ms": pct(via, 99),
            "added p50 ms": pct(via, 50) - pct(direct, 50), "added p99 ms": pct(via, 99) - pct(direct, 99),
            "ratio p50 gateway/direct": pct(via, 50) / pct(direct, 50),
            "feedback req/s": len(feedback) / took,
            "direct req/s (client ceiling)": len(direct) / direct_took,
            "feedback per journal fsync": (requests + 50) / max(fsyncs, 1.0),
            "idle RSS plain node MB": p["rss_kb"] / 1024, "idle RSS gateway node MB": g["rss_kb"] / 1024,
            "RSS added MB": (g["rss_kb"] - p["rss_kb"]) / 1024,
        }  # fmt: skip
        print(f"requests={requests} concurrency={concurrency} cpus={os.cpu_count()}")
        for k, v in rows.items():
            print(f"  {k:28s} {v:10.2f}")
        print(f"  load average {os.getloadavg()[0]:.1f} (1 min) at the end")
    finally:
        for proc in (gateway, plain, backend):
            stop(proc)
    if profile:
        print(f"gateway process, top functions by own time ({profile}):")
        pstats.Stats(profile).sort_stats("tottime").print_stats(18)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--requests", type=int, default=2000)
    ap.add_argument("--concurrency", type=int, default=50)
    ap.add_argument("--profile", default="", help="profile the gateway process into this file")
    ap.add_argument("--child", help=argparse.SUPPRESS)
    ap.add_argument("--backend", default="", help=argparse.SUPPRESS)
    ap.add_argument("--home", default="", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.child:
        asyncio.run(child(a.child, a.backend, a.home))
    else:
        asyncio.run(main(a.requests, a.concurrency, os.path.abspath(a.profile) if a.profile else ""))
