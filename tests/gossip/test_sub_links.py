"""A SUB is unlinked only between whole messages (metamesh.gossip.receive).

libzmq reads a waiting message's first frame whenever the SUB is polled; unlinking that sender
before the rest is read aborted nodes (``Assertion failed: !_more (src/fq.cpp:80)``) once meshes
pruned often. The live cases run in a child process, so an abort fails the test instead of
killing pytest.
"""

from __future__ import annotations

import asyncio
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import zmq
import zmq.asyncio

from metamesh.gossip.receive import SubLinks, drain
from metamesh.gossip.sockets import SocketFactory
from metamesh.protocol import LAN

pytestmark = pytest.mark.timeout(60)

CHILD = Path(__file__).with_name("_churn_child.py")


def run_child(tmp_path: Path, *args: str) -> str:
    done = subprocess.run(
        [sys.executable, str(CHILD), args[0], str(tmp_path / "home"), *args[1:]],
        capture_output=True, text=True, timeout=45,
    )  # fmt: skip
    if done.returncode == -signal.SIGABRT:
        pytest.fail(f"the node aborted: {done.stderr[-500:]}")
    assert done.returncode == 0, done.stderr[-2000:]
    return done.stdout


def test_a_message_half_read_by_a_poll_is_read_whole_after_its_sender_is_unlinked(tmp_path: Path) -> None:
    out = run_child(tmp_path, "poll")
    assert out.split()[0] == "survived" and out.split()[2] == "1"  # and the unlink was done


def test_a_node_survives_links_churned_while_peers_flood_it(tmp_path: Path) -> None:
    """Before the fix this aborted within a second, every run."""
    _, received, unlinks = run_child(tmp_path, "churn", "4").split()
    assert int(received) > 0 and int(unlinks) > 100


async def test_unlink_waits_for_the_receiving_task_and_wakes_it() -> None:
    ctx = zmq.asyncio.Context()
    pub = ctx.socket(zmq.PUB)
    sub = ctx.socket(zmq.SUB)
    try:
        endpoint = f"tcp://127.0.0.1:{pub.bind_to_random_port('tcp://127.0.0.1')}"
        links = SubLinks(SocketFactory(ctx, limits=LAN), sub)
        links.link(endpoint, None)
        links.link(endpoint, None)  # already linked: nothing more
        assert links.linked() == {endpoint} and not links.pending
        links.unlink(endpoint)
        links.link(endpoint, None)  # linked again before the unlink was done: the link stays
        assert not links.pending and links.unlinked == 0
        receiving = asyncio.create_task(drain(sub, lambda frames: None, links=links))
        try:
            await asyncio.sleep(0)  # a turn for the task, which goes idle: no traffic at all
            links.unlink(endpoint)
            assert links.linked() == {endpoint}  # not from this task: the receiving one does it
            await asyncio.wait_for(_until(lambda: not links.linked()), 5)
            assert links.unlinked == 1
        finally:
            receiving.cancel()
            with pytest.raises(asyncio.CancelledError):
                await receiving
    finally:
        pub.close(linger=0)
        sub.close(linger=0)
        ctx.term()


async def _until(cond: object) -> None:
    while not cond():  # type: ignore[operator]  # noqa: ASYNC110 - socket state, under wait_for's deadline
        await asyncio.sleep(0.01)
