"""A node process that publishes a fixed Q-table and insight, for snapshot tests.

Run: python -m tests.publisher HOME SEED DOMAIN [sparse] [big]. With ``big`` it also
publishes a 400 KB delta, which peers relay by ``ihave``. Prints "published" once it has
a peer, then republishes every 0.2 s (at most 300 times) until SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import numpy as np

from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from metamesh.protocol import Delta, Insight, QTable


async def main(home: str, seed: str, domain: str) -> None:
    overrides: dict[str, object] = {"home": home, "seed": [seed], "domain": [domain], "name": "pub"}
    if "sparse" in sys.argv[4:]:
        overrides.update(mesh_d=1, mesh_d_lo=1, mesh_d_hi=2)
    config = load_config(profile="local", overrides=overrides)
    async with Node(config) as node:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, node.request_stop)
        async with asyncio.timeout(20):
            while not node.membership.alive():  # noqa: ASYNC110 - polls a pure state machine under a deadline
                await asyncio.sleep(0.05)
        values = np.arange(6, dtype=np.float64).reshape(2, 3)
        sys.stdout.write("published\n")
        sys.stdout.flush()
        # Republish on a keepalive, as learners do: PUB/SUB drops what is sent before a
        # subscriber's link is up. Bounded in count; stops on SIGTERM.
        for _ in range(300):
            node.publish(domain, QTable(("s0", "s1"), ("a", "b", "c"), values, np.ones((2, 3)), 7))
            node.publish(domain, Insight(["e0"], [0.25], [10], 0.25, 10, 1))
            if "big" in sys.argv[4:]:
                node.publish(domain, Delta("bench", {"w": np.ones(100_000, np.float32)}, 0, 10))
            try:
                await asyncio.wait_for(node.wait_stopped(), 0.2)
                break
            except TimeoutError:
                continue


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
    Path(sys.argv[1], "done").touch()
