"""The edge install: a fresh virtualenv with no extras (no torch) runs a node that joins and learns."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.timeout(300)
def test_fresh_venv_without_torch_runs_a_node_that_joins_and_learns(cluster: Cluster, tmp_path: Path) -> None:
    venv = tmp_path / "edge"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True, timeout=120)
    python = venv / "bin" / "python"
    install = subprocess.run(
        [str(python), "-m", "pip", "install", "--quiet", str(ROOT)],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    if install.returncode != 0 and "No matching distribution" in install.stderr:
        pytest.skip(f"the package index cannot be reached: {install.stderr.strip()[-300:]}")
    assert install.returncode == 0, install.stderr[-2000:]
    no_torch = subprocess.run(
        [str(python), "-c", "import torch"], capture_output=True, timeout=60, check=False
    )
    assert no_torch.returncode != 0, "torch must not be installed by the core package"

    hub = cluster.start("hub", "--learner", "prompts", "--pace", "0.02")
    edge = NodeProcess(
        tmp_path / "edge-node",
        "--learner",
        "prompts",
        "--pace",
        "0.02",
        "--seed",
        hub.router,
        name="edge",
        python=str(python),
    )
    cluster.nodes.append(edge)
    edge.start()
    wait_until(lambda: hub.peer_states().get("edge") == "alive", 30, "the hub to see the edge node alive")

    def learning() -> bool:
        report = edge.status()
        return bool(
            report and report["learner"].get("episodes", 0) >= 50 and report["learner"]["peer_rows"] > 0
        )

    wait_until(learning, 60, "the edge node to learn and merge the hub's Q-tables")
