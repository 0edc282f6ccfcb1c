"""One process per node home: a second node on a home in use stops at once and names the holder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.cli import exitcodes
from metamesh.errors import HomeInUse, StateError
from metamesh.node.homelock import LOCK_NAME, HomeLock
from metamesh.node.state import NodeDir
from tests.cluster import Cluster

pytestmark = pytest.mark.timeout(90)


def test_a_home_is_held_by_one_nodedir_at_a_time_and_free_after_close(tmp_path: Path) -> None:
    first = NodeDir(tmp_path / "n")
    assert (tmp_path / "n" / LOCK_NAME).read_text().strip() == str(os.getpid())
    with pytest.raises(HomeInUse) as caught:
        NodeDir(tmp_path / "n")  # another open file: flock refuses it even in this process
    assert caught.value.pid == os.getpid()
    assert isinstance(caught.value, StateError)
    assert str(caught.value) == (
        f"home {tmp_path / 'n'} is in use by PID {os.getpid()}; give each node its own --home"
    )
    first.close()
    first.close()  # idempotent
    NodeDir(tmp_path / "n").close()


def test_a_lock_dropped_without_release_is_given_back(tmp_path: Path) -> None:
    lock = HomeLock.acquire(tmp_path)
    assert lock.held
    del lock  # garbage: the descriptor closes, the lock goes with it
    HomeLock.acquire(tmp_path).release()


def run_second(command: str, home: Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metamesh", command, "--home", str(home), "--profile", "local"],
        capture_output=True,
        text=True,
        timeout=timeout,
    )


@pytest.mark.slow
@pytest.mark.parametrize("command", ["node", "coordinator"])
def test_a_second_process_on_a_home_in_use_fails_at_once_naming_the_holder(
    cluster: Cluster, command: str
) -> None:
    first = cluster.start("a", command=command)
    assert first.proc is not None
    second = run_second(command, first.home)
    assert second.returncode == exitcodes.HOME_IN_USE, second.stderr
    lines = second.stderr.strip().splitlines()
    assert lines == [
        f"metamesh {command}: home {first.home} is in use by PID {first.proc.pid}; "
        "give each node its own --home"
    ]
    assert second.stdout == ""  # no ready line: it never started
    assert first.alive() and first.status() is not None, "the first node must keep running"
    # Released on exit, however it ends: a clean stop and a kill -9 both free the home.
    first.stop()
    again = cluster.start("a", command=command)
    assert again.id == first.id
    again.kill()
    cluster.start("a", command=command)
