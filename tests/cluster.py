"""Real node processes for multi-process tests: start, wait for ready, query, kill, reap."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from metamesh.deploy.local import LocalNode
from metamesh.node.client import ask
from metamesh.protocol import Status, StatusRequest


def wait_until(cond: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll ``cond`` until it returns something truthy; fail with ``what`` after ``timeout``."""
    deadline = time.monotonic() + timeout
    while True:
        value = cond()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout:.0f} s waiting for {what}")
        time.sleep(interval)


def processes_mentioning(text: str) -> list[int]:
    """Pids of live processes (other than this one) whose command line contains ``text``."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) == os.getpid():
            continue
        try:
            if text.encode() in (entry / "cmdline").read_bytes():
                found.append(int(entry.name))
        except OSError:
            continue
    return found


def run_experiment(args: Sequence[str], out: Path, timeout: float = 280) -> tuple[str, dict[str, Any]]:
    """Run ``metamesh experiment ARGS --out OUT`` (see :func:`run_own_group`); returns its stdout
    and results.json."""
    done = run_own_group(["experiment", *args, "--out", str(out)], timeout)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout, dict(json.loads((out / "results.json").read_text()))


def run_own_group(args: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
    """Run ``python -m metamesh ARGS`` in its own process group, so a hung run is killed with every
    process it started, and assert that none of them outlives it.

    Nodes forked from the fork server do not carry the command's arguments in their command
    lines, but every process it started is in its process group. The fork server itself
    leaves once it sees the command gone: the group gets a moment.
    """
    cmd = [sys.executable, "-m", "metamesh", *args]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    try:
        stdout, stderr = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    reap_group(proc.pid, f"metamesh {' '.join(args[:2])}")
    return subprocess.CompletedProcess(cmd, proc.returncode, stdout, stderr)


def reap_group(pgid: int, what: str, timeout: float = 10.0) -> None:
    """Wait for process group ``pgid`` to empty (a fork server leaves a moment after the process
    that started it); SIGKILL whatever is still there after ``timeout`` and fail."""
    try:
        wait_until(lambda: not process_group(pgid), timeout, f"every process {what} started to leave")
    except AssertionError:
        leftover = process_group(pgid)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, signal.SIGKILL)
        raise AssertionError(f"{what} left processes running: {leftover}") from None


def process_group(pgid: int) -> list[int]:
    """Pids of live processes in process group ``pgid`` (zombies included: not yet reaped)."""
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) ": state, ppid, pgrp, …
        if int(fields[2]) == pgid:
            found.append(int(entry.name))
    return found


class NodeProcess(LocalNode):
    """A node process for tests: ``LocalNode`` plus status queries (local profile by default)."""

    def __init__(
        self,
        home: Path,
        *args: str,
        name: str = "",
        prefix: tuple[str, ...] = (),
        python: str = sys.executable,
        profile: str = "local",
        command: str = "node",
    ) -> None:
        node_args = ["--profile", profile, *(["--name", name] if name else []), *args]
        super().__init__(home, node_args, prefix=prefix, python=python, command=command)
        #: On an encrypted network: a keys directory this node allowlists, for status requests.
        self.status_keys: Path | None = None

    def start(self, timeout: float = 20.0) -> NodeProcess:
        super().start(timeout)
        return self

    def status(self, timeout: float = 3.0) -> dict[str, Any] | None:
        try:
            reply = asyncio.run(
                ask(self.router, StatusRequest(), timeout=timeout, keys_dir=self.status_keys, peer_id=self.id)
            )
        except TimeoutError:
            return None
        assert isinstance(reply.body, Status)
        return dict(reply.body.report)

    def peer_states(self) -> dict[str, str]:
        report = self.status()
        return {} if report is None else {p: v["state"] for p, v in report["peers"].items()}


class Cluster:
    """Every process a test starts, so a fixture can reap them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[NodeProcess] = []

    def start(self, name: str, *args: str, **kw: Any) -> NodeProcess:
        node = NodeProcess(self.root / name, *args, name=name, **kw)
        self.nodes.append(node)
        return node.start()

    def start_many(
        self, specs: Sequence[tuple[str, Sequence[str]]], timeout: float = 40.0
    ) -> list[NodeProcess]:
        """Start ``(name, args)`` nodes in parallel: every process is launched before any is awaited."""
        nodes = [NodeProcess(self.root / name, *args, name=name) for name, args in specs]
        self.nodes.extend(nodes)
        for node in nodes:
            node.launch()
        for node in nodes:
            node.wait_ready(timeout)
        return nodes

    def close(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                node.stop(timeout=5)
