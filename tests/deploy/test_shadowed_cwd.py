"""Nodes started by experiments import the installed metamesh, whatever folder they start from.

``python -m`` (and the fork server's ``python -c``) put the working directory first on
``sys.path``: started from a folder holding a ``metamesh`` directory (a clone's parent, a run
folder), every node imported that instead and died with an ImportError.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from metamesh.deploy.preload import preload_available

pytestmark = pytest.mark.timeout(120)


@pytest.fixture
def shadowed(tmp_path: Path) -> Path:
    """A working directory whose ``metamesh`` package raises when imported."""
    folder = tmp_path / "work"
    (folder / "metamesh").mkdir(parents=True)
    (folder / "metamesh" / "__init__.py").write_text('raise ImportError("the metamesh of the cwd")\n')
    return folder


def run_here(folder: Path, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    # -P for the launching interpreter only: as the installed ``metamesh`` command starts, whose
    # sys.path[0] is its own bin directory. What it starts must manage without being told.
    return subprocess.run(
        [sys.executable, "-P", *args], cwd=folder, capture_output=True, text=True, timeout=timeout
    )  # fmt: skip


def test_an_experiment_started_next_to_a_metamesh_folder_runs(shadowed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_here(
        shadowed, "-m", "metamesh", "experiment", "prompts",
        "--nodes", "2", "--episodes", "20", "--arms", "federated", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "federated" in json.loads((out / "results.json").read_text())
    logs = "".join(p.read_text(errors="replace") for p in out.rglob("*.log"))
    assert "ImportError" not in logs


@pytest.mark.skipif(not preload_available(), reason="no fork server on this platform")
def test_a_node_forked_from_the_fork_server_next_to_a_metamesh_folder_starts(
    shadowed: Path, tmp_path: Path
) -> None:
    home = tmp_path / "node"
    script = (
        "from pathlib import Path\n"
        "from metamesh.deploy.local import LocalNode\n"
        f"node = LocalNode(Path({str(home)!r}), ['--profile', 'local'], preload=('metamesh.cli.main',))\n"
        "node.start()\n"
        "print(type(node.proc).__name__, node.stop())\n"
    )
    done = run_here(shadowed, "-c", script, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:] + (home.parent / "node.log").read_text(errors="replace")
    assert done.stdout.split() == ["PreloadedProcess", "0"]
