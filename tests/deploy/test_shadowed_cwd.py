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


@pytest.fixture
def stale(tmp_path: Path) -> Path:
    """A working directory with a ``metamesh`` package that imports but holds nothing (a stale
    checkout, say): a fork server that imported it hands it to every node it forks."""
    folder = tmp_path / "work"
    (folder / "metamesh").mkdir(parents=True)
    (folder / "metamesh" / "__init__.py").write_text('"""Not the installed metamesh."""\n')
    return folder


def run_here(folder: Path, script: str, *args: str, timeout: float = 90) -> subprocess.CompletedProcess[str]:
    """Run ``script`` from a file outside ``folder`` with ``folder`` as the working directory: as
    the installed ``metamesh`` command runs, whose ``sys.path[0]`` is its own bin directory. What
    it starts must manage without -P: that flag would be passed on to the fork server."""
    launcher = folder.parent / "bin" / "launch.py"
    launcher.parent.mkdir(exist_ok=True)
    launcher.write_text(script)
    return subprocess.run(
        [sys.executable, str(launcher), *args], cwd=folder, capture_output=True, text=True, timeout=timeout
    )  # fmt: skip


COMMAND = """import sys
from metamesh.cli.main import main
if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
"""


def test_an_experiment_started_next_to_a_metamesh_folder_runs(shadowed: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    done = run_here(
        shadowed, COMMAND, "experiment", "prompts",
        "--nodes", "2", "--episodes", "20", "--arms", "federated", "--out", str(out),
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert "federated" in json.loads((out / "results.json").read_text())
    logs = "".join(p.read_text(errors="replace") for p in out.rglob("*.log"))
    assert "ImportError" not in logs


@pytest.mark.skipif(not preload_available(), reason="no fork server on this platform")
def test_a_forked_node_beside_a_stale_metamesh_starts(stale: Path, tmp_path: Path) -> None:
    home = tmp_path / "node"
    script = (
        "from pathlib import Path\n"
        "from metamesh.deploy.local import LocalNode\n"
        "if __name__ == '__main__':\n"
        f"    node = LocalNode(Path({str(home)!r}), ['--profile', 'local'], preload=('metamesh.cli.main',))\n"
        "    node.start()\n"
        "    print(type(node.proc).__name__, node.stop())\n"
    )
    done = run_here(stale, script, timeout=60)
    log = home.parent / "node.log"
    tail = log.read_text(errors="replace")[-1500:] if log.exists() else ""
    assert done.returncode == 0, done.stderr[-1500:] + tail
    assert done.stdout.split() == ["PreloadedProcess", "0"]
