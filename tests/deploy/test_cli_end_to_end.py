"""The commands a user types first, run as a user would: real processes, nothing left behind."""

from __future__ import annotations

import importlib.util
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import process_group, processes_mentioning, reap_group, run_own_group, wait_until

HAVE_TORCH = importlib.util.find_spec("torch") is not None

pytestmark = pytest.mark.slow


def _metamesh(*args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "metamesh", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


@pytest.mark.timeout(240)
def test_demo_shows_federated_above_local_above_random_and_leaves_nothing_running(tmp_path: Path) -> None:
    """The main job as a user runs it (fewer episodes): with torch installed, the experts run too."""
    out = tmp_path / "demo"
    result = run_own_group(
        ["demo", "--episodes", "150", "--eval-every", "50", "--out", str(out), "--seed", "1"], timeout=200
    )
    assert result.returncode == 0, result.stderr[-2000:]
    assert "federated" in result.stdout and "episodes to 80%" in result.stdout
    if HAVE_TORCH:
        experts = json.loads((out / "experts" / "results.json").read_text())
        assert "Experts: sharing model weights" in result.stdout
        assert "held-out loss after one round" in result.stdout  # the experts late joiner
        assert experts["domain"]["mean"] < experts["local"]["mean"], experts
    doc = json.loads((out / "results.json").read_text())
    assert doc["federated"]["mean"] > doc["local"]["mean"] > doc["random"]["mean"]
    late = doc["federated+c"]["late_joiner"]
    assert doc["federated+c"]["mean"] > doc["local"]["mean"] and late["with_coordinator"] > late["alone"]
    report = _metamesh("report", str(out), "--no-plot")
    assert report.returncode == 0 and "federated+c" in report.stdout, report.stderr
    assert (out / "accuracy.png").stat().st_size > 10_000
    assert processes_mentioning(str(out)) == []


@pytest.mark.timeout(120)
@pytest.mark.skipif(not HAVE_TORCH, reason="the experts experiment needs torch")
def test_ctrl_c_stops_every_process_an_experiment_started(tmp_path: Path) -> None:
    """SIGINT to the foreground group, as a terminal sends it: the experiment, its fork server
    and the nodes forked from it all get it; the experiment stops the nodes and says so."""
    cmd = [sys.executable, "-m", "metamesh", "experiment", "experts", "--rounds", "30"]
    cmd += ["--out", str(tmp_path)]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)  # fmt: skip
    try:

        def nodes() -> list[int]:
            return [p for p in process_group(proc.pid) if _comm(p).startswith("mm-")]

        wait_until(lambda: len(nodes()) == 12, 60, "the first arm's 12 nodes")
        os.killpg(proc.pid, signal.SIGINT)
        _, stderr = proc.communicate(timeout=60)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.communicate()
        reap_group(proc.pid, "the interrupted experiment")  # the fork server included
    assert proc.returncode == 130 and "every node process was stopped" in stderr, stderr[-2000:]


def _comm(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/comm").read_text().strip()
    except OSError:
        return ""


@pytest.mark.timeout(120)
def test_cluster_up_status_down(tmp_path: Path) -> None:
    root = tmp_path / "cluster"
    up = _metamesh("cluster", "up", "--dir", str(root), "--nodes", "3")
    assert up.returncode == 0, up.stderr
    try:
        assert len(processes_mentioning(str(root))) == 3

        def all_see_two() -> bool:
            status = _metamesh("cluster", "status", "--dir", str(root), timeout=30)
            rows = [line.split() for line in status.stdout.splitlines()[1:]]
            return len(rows) == 3 and all(r[2] == "running" and r[3] == "2" for r in rows)

        wait_until(all_see_two, 30, "every node of the cluster to see the other two")
        again = _metamesh("cluster", "up", "--dir", str(root), "--nodes", "3")
        assert again.returncode != 0 and "already running" in again.stderr
    finally:
        down = _metamesh("cluster", "down", "--dir", str(root))
    assert down.returncode == 0 and "stopped 3" in down.stdout
    assert processes_mentioning(str(root)) == []
    assert not (root / "cluster.json").exists()


@pytest.mark.timeout(60)
def test_a_missing_ollama_is_one_clear_line(tmp_path: Path) -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # nothing listens there once closed
    env = {**os.environ, "OLLAMA_HOST": f"http://127.0.0.1:{port}"}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "metamesh",
            "experiment",
            "prompts",
            "--llm",
            "ollama:tiny",
            "--out",
            str(tmp_path),
        ],
        capture_output=True,
        text=True,
        timeout=50,
        env=env,
        check=False,
    )
    assert result.returncode == 4
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "ollama serve" in lines[0] and "Traceback" not in result.stderr
