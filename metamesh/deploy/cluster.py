"""A local cluster in the background: ``up`` starts it, ``down`` stops exactly what ``up`` started.

The state file (``cluster.json`` in the cluster directory) records each node's
pid, id, home and endpoints; ``down`` signals only processes whose command line
still names that node's home, so a recycled pid is never killed.
"""

from __future__ import annotations

import json
import os
import signal
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from metamesh.deploy.local import LocalNode
from metamesh.errors import ConfigError

__all__ = ["ClusterNode", "cluster_down", "cluster_up", "read_state"]

STATE = "cluster.json"


@dataclass(frozen=True, slots=True)
class ClusterNode:
    id: str
    pid: int
    home: str
    router: str
    pub: str


def read_state(root: Path) -> list[ClusterNode]:
    path = root / STATE
    if not path.exists():
        return []
    try:
        return [ClusterNode(**n) for n in json.loads(path.read_text())["nodes"]]
    except (ValueError, KeyError, TypeError) as exc:
        raise ConfigError(f"{path} is not a cluster state file: {exc}") from exc


def _write_state(root: Path, nodes: list[ClusterNode]) -> None:
    tmp = root / f".{STATE}.tmp"
    tmp.write_text(json.dumps({"nodes": [asdict(n) for n in nodes]}, indent=2))
    os.replace(tmp, root / STATE)


def cluster_up(root: Path, *, nodes: int, extra_args: list[str]) -> list[ClusterNode]:
    """Start ``nodes`` detached node processes (each seeded by the first) and record them."""
    root.mkdir(parents=True, exist_ok=True)
    if any(is_running(n) for n in read_state(root)):
        raise ConfigError(
            f"a cluster is already running in {root}; `metamesh cluster down --dir {root}` first"
        )
    started: list[ClusterNode] = []
    try:
        for i in range(nodes):
            args = ["--name", f"node{i}", *extra_args]
            if started:
                args += ["--seed", started[0].router]
            proc = LocalNode(root / f"node{i}", args, detach=True).start()
            assert proc.proc is not None
            if proc.proc.stdout is not None:
                proc.proc.stdout.close()
            started.append(
                ClusterNode(proc.id, proc.proc.pid, str(proc.home), proc.router, str(proc.info["pub"]))
            )
            _write_state(root, started)  # recorded as soon as it runs: nothing can be orphaned
    except BaseException:
        cluster_down(root)
        raise
    return started


def is_running(node: ClusterNode) -> bool:
    """True if ``node.pid`` is alive and is still that node (its command line names its home)."""
    try:
        cmdline = Path(f"/proc/{node.pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return node.home.encode() in cmdline


def cluster_down(root: Path, *, timeout: float = 10.0) -> int:
    """SIGTERM every recorded node, SIGKILL those still up after ``timeout``; returns how many ran."""
    nodes = [n for n in read_state(root) if is_running(n)]
    for n in nodes:
        os.kill(n.pid, signal.SIGTERM)
    deadline = time.monotonic() + timeout
    while any(is_running(n) for n in nodes) and time.monotonic() < deadline:
        time.sleep(0.05)
    for n in nodes:
        if is_running(n):
            os.kill(n.pid, signal.SIGKILL)
    (root / STATE).unlink(missing_ok=True)
    return len(nodes)
