"""Nodes forked from the preloaded fork server behave like the ``python -m metamesh`` they replace."""

from __future__ import annotations

import signal
import subprocess
from pathlib import Path

import pytest

from metamesh.deploy.local import LocalNode
from metamesh.deploy.preload import PreloadedProcess, preload_available
from metamesh.errors import MetameshError

pytestmark = [
    pytest.mark.timeout(60),
    pytest.mark.skipif(not preload_available(), reason="no fork server on this platform"),
]

PRELOAD = ("metamesh.cli.main",)  # enough to show the mechanics without paying for torch here


def node(home: Path, *args: str) -> LocalNode:
    return LocalNode(home, ["--profile", "local", *args], preload=PRELOAD)


def test_a_forked_node_gets_ready_says_who_it_is_and_stops_cleanly(tmp_path: Path) -> None:
    first = node(tmp_path / "alpha").start()
    assert isinstance(first.proc, PreloadedProcess)
    assert first.router.startswith("tcp://127.0.0.1:") and first.id
    assert Path(f"/proc/{first.proc.pid}/comm").read_text().strip() == "mm-alpha"
    second = node(tmp_path / "beta", "--seed", first.router).start()
    assert second.proc is not None and second.proc.pid != first.proc.pid
    with pytest.raises(subprocess.TimeoutExpired):
        first.proc.wait(0.05)
    assert first.stop() == 0  # SIGTERM: a graceful stop, as from a shell
    assert second.stop() == 0
    assert (tmp_path / "alpha" / "events.jsonl").exists()  # it ran in its own home


def test_a_killed_node_reports_the_signal_like_popen(tmp_path: Path) -> None:
    victim = node(tmp_path / "victim").start()
    victim.kill()
    assert victim.proc is not None and victim.proc.returncode == -signal.SIGKILL
    victim.kill()  # already gone: nothing to do, no error


def test_a_node_that_cannot_start_says_why_from_its_log(tmp_path: Path) -> None:
    bad = node(tmp_path / "bad", "--no-such-option")
    with pytest.raises(MetameshError, match="no-such-option"):
        bad.start(timeout=20)
    assert bad.proc is not None and bad.proc.wait(10) == 2  # argparse's usage error
    assert "no-such-option" in bad.log_path.read_text()


def test_the_environment_at_launch_reaches_the_node(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The fork server was started earlier, with an older environment; each node gets the current one."""
    warm = node(tmp_path / "warm").start()  # the server is running before the variable is set
    warm.stop()
    monkeypatch.setenv("METAMESH_NAME", "named-by-env")
    named = node(tmp_path / "named").start()
    named.stop()
    assert named.id == "named-by-env"
