"""A node process that publishes a fixed Q-table and insight, for snapshot tests.

Run: python -m tests.publisher HOME SEED DOMAIN. Prints "published" once its
messages are out and at least one peer has them, then waits for SIGTERM.
"""

from __future__ import annotations

import asyncio
import signal
import sys
from pathlib import Path

import numpy as np

from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from metamesh.protocol import Insight, QTable


async def main(home: str, seed: str, domain: str) -> None:
    config = load_config(
        profile="local", overrides={"home": home, "seeds": [seed], "domains": [domain], "name": "pub"}
    )
    async with Node(config) as node:
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, node.request_stop)
        async with asyncio.timeout(20):
            while not node.membership.alive():  # noqa: ASYNC110 - polls a pure state machine under a deadline
                await asyncio.sleep(0.05)
        values = np.arange(6, dtype=np.float64).reshape(2, 3)
        node.publish(domain, QTable(("s0", "s1"), ("a", "b", "c"), values, np.ones((2, 3)), 7))
        node.publish(domain, Insight(["e0"], [0.25], [10], 0.25, 10, 1))
        sys.stdout.write("published\n")
        sys.stdout.flush()
        await node.wait_stopped()


if __name__ == "__main__":
    asyncio.run(main(*sys.argv[1:4]))
    Path(sys.argv[1], "done").touch()
