"""Faults on disk: torn checkpoints, a lease that cannot be written, a disk that fills up."""

from __future__ import annotations

import asyncio
import contextlib
import errno
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from metamesh.learners.factory import build_learner
from metamesh.node.config import load_config
from metamesh.node.runtime import Node
from metamesh.node.state import NodeDir, SequenceLease


def test_a_torn_or_truncated_checkpoint_falls_back_to_the_previous_one(tmp_path: Path) -> None:
    d = NodeDir(tmp_path)
    d.save_checkpoint({"n": 1})
    d.save_checkpoint({"n": 2})
    whole = (tmp_path / "checkpoint").read_bytes()
    for broken in (whole[: len(whole) // 2], b"", b"garbage", whole[:6]):
        (tmp_path / "checkpoint").write_bytes(broken)
        assert d.load_checkpoint() == {"n": 1}
    (tmp_path / "checkpoint.prev").write_bytes(b"MMCK1\n\xc1")
    assert d.load_checkpoint() is None  # nothing whole: start fresh rather than from garbage


def test_a_checkpoint_written_late_never_replaces_a_newer_one(tmp_path: Path) -> None:
    """Writes run in worker threads and may finish in either order: the newest state stays on disk."""
    from metamesh.node.state import encode_checkpoint

    d = NodeDir(tmp_path / "n")
    assert d.write_checkpoint(encode_checkpoint({"v": 2}), generation=2) is not None
    assert d.write_checkpoint(encode_checkpoint({"v": 1}), generation=1) is None  # older: skipped
    assert d.load_checkpoint() == {"v": 2}
    assert d.write_checkpoint(encode_checkpoint({"v": 3}), generation=3) is not None
    assert d.load_checkpoint() == {"v": 3}


def test_the_lease_keeps_numbers_unique_with_a_clock_behind_or_a_disk_that_refuses(tmp_path: Path) -> None:
    path = tmp_path / "seq"
    stopped_clock = 0.0
    lease = SequenceLease(path, block=10, clock=lambda: stopped_clock)
    used = [lease.next() for _ in range(25)]
    # A crash: the next start must not reuse any number, even with the clock at zero.
    again = SequenceLease(path, block=10, clock=lambda: stopped_clock)
    assert again.next() > max(used)
    # A lease that cannot be written: counting goes on in memory, and the clock guards restarts.
    gone = tmp_path / "missing-dir" / "seq"
    lease = SequenceLease(gone, block=10, clock=lambda: 1000.0)
    assert lease.failed
    used = [lease.next() for _ in range(25)]
    assert used == sorted(set(used)) and used[0] == 1000 * 1_000_000
    later = SequenceLease(gone, block=10, clock=lambda: 1000.5)
    assert later.next() > max(used)


@contextlib.contextmanager
def small_disk(path: Path, size: str = "512k") -> Iterator[Path]:
    """A tmpfs of ``size`` at ``path`` (root only), unmounted afterwards."""
    path.mkdir()
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if result.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({result.stderr.decode().strip()}); needs root")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], check=False)


def fill(disk: Path) -> Path:
    """Write until the disk is full; returns the filler file."""
    filler = disk / "filler"
    with open(filler, "wb") as fh:
        try:
            for _ in range(10_000):  # bounded: 10,000 x 64 KiB is far more than the disk
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError as exc:
            assert exc.errno == errno.ENOSPC
    return filler


async def run(*cmd: str, check: bool = True) -> bool:
    result = await asyncio.to_thread(subprocess.run, cmd, capture_output=True)
    assert result.returncode == 0 or not check, f"{cmd}: {result.stderr.decode()}"
    return result.returncode == 0


@pytest.mark.timeout(60)
async def test_a_node_on_a_full_disk_keeps_learning_in_memory_and_recovers(tmp_path: Path) -> None:
    with small_disk(tmp_path / "disk") as disk:
        config = load_config(
            profile="local",
            overrides={"home": disk / "node", "name": "n", "learner": "prompts", "eval_every": 0,
                       "pace": 0.005, "checkpoint_interval": 0.2},
        )  # fmt: skip
        node = Node(config, learner=build_learner(config))
        await node.start()
        try:
            learner = node.learner
            assert learner is not None

            async def learned(episodes: float, timeout: float = 20.0) -> None:
                deadline = time.monotonic() + timeout
                while learner.summary()["episodes"] < episodes:
                    assert time.monotonic() < deadline, "the node stopped learning"
                    await asyncio.sleep(0.02)

            await learned(50)
            # A full disk: checkpoints of a steady size still fit in the space the previous one
            # frees; the event log does not. Whatever fails, learning and publishing go on.
            filler = fill(disk)
            full_at, seq_at = learner.summary()["episodes"], node.sequence.peek
            await learned(full_at + 200)
            assert node.sequence.peek > seq_at
            # A directory gone read-only (an SD card does that): every new write fails. A read-only
            # bind mount over the node directory; files already open stay writable, as they would.
            home = str(disk / "node")
            await run("mount", "--bind", home, home)
            # The node writes a checkpoint every 0.2 s: a remount while one is open for writing
            # is refused as busy, so try again between writes (bounded).
            for _ in range(100):
                if await run("mount", "-o", "remount,bind,ro", home, check=False):
                    break
                await asyncio.sleep(0.01)
            else:
                raise AssertionError("could not make the node directory read-only")
            ro_at, seq_at = learner.summary()["episodes"], node.sequence.peek
            await learned(ro_at + 300)  # well past a lease block's worth of sequence numbers
            assert node.checkpoint_failed, "the node did not notice its directory is unwritable"
            assert node.sequence.peek > seq_at
            await run("umount", home)
            filler.unlink()
            deadline = time.monotonic() + 10
            while node.checkpoint_failed:
                assert time.monotonic() < deadline, "checkpoints did not resume once the disk was back"
                await asyncio.sleep(0.05)
            saved = learner.summary()["episodes"]
        finally:
            await node.stop()
        restored = build_learner(config)
        again = Node(config, learner=restored)
        await again.start()
        try:
            assert restored is not None and restored.summary()["episodes"] >= saved
            assert again.sequence.peek > node.sequence.peek
        finally:
            await again.stop()
