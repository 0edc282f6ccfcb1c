"""A node that cannot reach its network says why at WARNING, and a seed names the key it refused."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import socket
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest

from metamesh.gossip.keys import generate_keys, load_keys
from metamesh.gossip.sockets import REFUSAL_LOG_INTERVAL, _Allowlist
from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from tests.cluster import Cluster, wait_until

pytestmark = pytest.mark.timeout(60)

#: The local profile's dead_after, the bound within which the first warning comes.
DEAD_AFTER = 3.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.slow
def test_a_node_whose_seed_has_nothing_listening_warns_within_the_bound(cluster: Cluster) -> None:
    seed = f"tcp://127.0.0.1:{free_port()}"
    node = cluster.start("lonely", "--seed", seed)  # logs at --log-level warning, as LocalNode runs it
    started = time.monotonic()
    wanted = f"seed {seed}: nothing is listening at {seed} (connection refused)"
    line = wait_until(
        lambda: next((ln for ln in node.log_path.read_text().splitlines() if wanted in ln), None),
        DEAD_AFTER + 10,
        "the unreachable-seed warning",
    )
    assert "WARNING" in line and "no peer has answered for" in line
    assert time.monotonic() - started < DEAD_AFTER + 10
    assert any(e["event"] == "seed_unreachable" and e["seed"] == seed for e in node.events())
    # Bounded: the next one comes after twice as long, not every heartbeat (0.2 s).
    assert node.log_path.read_text().count(wanted) <= 2


def make_keys(root: Path, *names: str) -> dict[str, Path]:
    dirs = {n: root / f"keys-{n}" for n in names}
    for d in dirs.values():
        generate_keys(d)
    return dirs


def authorize(keys: dict[str, Path], who: str, *trusted: str) -> None:
    for name in trusted:
        (keys[who] / "authorized" / f"{name}.key").write_text((keys[name] / "node.key").read_text())


@contextlib.asynccontextmanager
async def node(
    tmp_path: Path, name: str, keys: Path, *seeds: str, home: str = "", port: int = 0
) -> AsyncIterator[Node]:
    config = load_config(
        profile="local",
        overrides={
            "home": tmp_path / (home or name),
            "name": name,
            "keys": keys,
            "seed": list(seeds),
            "router_port": port,
        },
    )
    n = Node(config)
    await n.start()
    try:
        yield n
    finally:
        await n.stop()


async def warned(caplog: pytest.LogCaptureFixture, text: str, timeout: float) -> str:
    deadline = time.monotonic() + timeout
    while True:
        for record in caplog.records:
            if record.levelno == logging.WARNING and text in record.getMessage():
                return record.getMessage()
        assert time.monotonic() < deadline, f"no warning containing {text!r} within {timeout} s"
        await asyncio.sleep(0.05)


@pytest.mark.slow
async def test_a_node_whose_key_the_seed_refuses_is_told_and_the_seed_names_the_key(
    tmp_path: Path, cluster: Cluster, caplog: pytest.LogCaptureFixture
) -> None:
    """The seed is a real process (its log names the key); the refused node runs here."""
    caplog.set_level(logging.WARNING)
    keys = make_keys(tmp_path, "a", "b")
    authorize(keys, "b", "a")  # b trusts a; a has never heard of b
    b_key = load_keys(keys["b"]).public.decode()
    port = free_port()
    seed_args = ("--keys", str(keys["a"]), "--router-port", str(port))
    a = await asyncio.to_thread(cluster.start, "a", *seed_args)
    async with node(tmp_path, "b", keys["b"], f"a@tcp://127.0.0.1:{port}") as b:
        told = await warned(caplog, f"seed a@tcp://127.0.0.1:{port}: ", DEAD_AFTER + 5)
        assert f"the seed refused this node's key {b_key}" in told
        assert "authorized/b.key" in told
        assert not b.membership.alive()
        refused = f"refused a connection from public key {b_key}"
        line = next(ln for ln in a.log_path.read_text().splitlines() if refused in ln)
        assert "WARNING" in line and "authorized/ID.key" in line
        # The seed restarts admitting b: b, still running, gets in. libzmq never retries a
        # connection whose key was refused, so b must have made a new one.
        await asyncio.to_thread(a.stop)
        authorize(keys, "a", "b")
        await asyncio.to_thread(cluster.start, "a", *seed_args)
        await wait_for(lambda: "a" in b.membership.alive(), 15, "b to get in once admitted")


async def wait_for(cond: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, f"timed out after {timeout} s waiting for {what}"
        await asyncio.sleep(0.05)


@pytest.mark.slow
@pytest.mark.parametrize(
    ("seed_id", "expected"),
    [
        ("", "a seed must name its node id, as ID@tcp://HOST:PORT"),
        ("zz", "there is no {keys}/authorized/zz.key: is 'zz' the seed's node id? (keys there: a, c)"),
        ("c", "the encrypted handshake failed: the seed's key is not the one in {keys}/authorized/c.key"),
    ],
    ids=["no-id", "unknown-id", "wrong-id"],
)
async def test_a_seed_named_without_its_id_or_by_a_wrong_one_is_explained(
    tmp_path: Path, caplog: pytest.LogCaptureFixture, seed_id: str, expected: str
) -> None:
    caplog.set_level(logging.WARNING)
    keys = make_keys(tmp_path, "a", "b", "c")
    authorize(keys, "a", "b")
    authorize(keys, "b", "a", "c")
    async with node(tmp_path, "a", keys["a"]) as a:
        seed = f"{seed_id}@{a.router_endpoint}" if seed_id else a.router_endpoint
        async with node(tmp_path, "b", keys["b"], seed):
            told = await warned(caplog, f"seed {seed}: ", DEAD_AFTER + 5)
            assert expected.format(keys=keys["b"]) in told


def test_a_refused_key_is_logged_once_a_minute_not_at_every_reconnect(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    generate_keys(tmp_path)
    now = [0.0]
    allowlist = _Allowlist(load_keys(tmp_path), clock=lambda: now[0])
    stranger = b"x" * 40
    for _ in range(5):
        assert not allowlist.callback("*", stranger)
    assert allowlist.callback("*", load_keys(tmp_path).public)
    now[0] = REFUSAL_LOG_INTERVAL
    assert not allowlist.callback("*", stranger)
    lines = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert lines == [lines[0]] * 2 and "x" * 40 in lines[0]
