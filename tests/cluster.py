"""Real node processes for multi-process tests: start, wait for ready, query, kill, reap."""

from __future__ import annotations

import asyncio
import json
import os
import selectors
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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


class NodeProcess:
    """One ``metamesh node`` child process, ready when its endpoints are known."""

    def __init__(
        self,
        home: Path,
        *args: str,
        name: str = "",
        env: dict[str, str] | None = None,
        prefix: tuple[str, ...] = (),
        python: str = sys.executable,
        profile: str = "local",
    ) -> None:
        self.prefix = prefix
        self.python = python
        self.profile = profile
        self.home = home
        self.args = args
        self.name = name
        self.env = env
        self.proc: subprocess.Popen[bytes] | None = None
        self.info: dict[str, Any] = {}
        #: On an encrypted network: a keys directory this node allowlists, for status requests.
        self.status_keys: Path | None = None

    def start(self, timeout: float = 20.0) -> NodeProcess:
        cmd = [
            *self.prefix,
            self.python,
            "-m",
            "metamesh",
            "--log-level",
            "warning",
            "node",
            "--profile",
            self.profile,
            "--home",
            str(self.home),
            "--ready-json",
            *self.args,
        ]
        if self.name:
            cmd += ["--name", self.name]
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        log = open(self.home.parent / f"{self.home.name}.stderr", "ab")  # noqa: SIM115
        self.proc = subprocess.Popen(
            cmd, stdout=subprocess.PIPE, stderr=log, env={**os.environ, **(self.env or {})}
        )
        log.close()
        assert self.proc.stdout is not None
        sel = selectors.DefaultSelector()
        sel.register(self.proc.stdout, selectors.EVENT_READ)
        if not sel.select(timeout):
            self.kill()
            raise AssertionError(f"node in {self.home} not ready within {timeout} s")
        line = self.proc.stdout.readline()
        sel.close()
        if not line:
            err = (self.home.parent / f"{self.home.name}.stderr").read_text()[-2000:]
            raise AssertionError(f"node in {self.home} exited before ready: {err}")
        self.info = json.loads(line)
        return self

    @property
    def id(self) -> str:
        return str(self.info["node"])

    @property
    def router(self) -> str:
        return str(self.info["router"])

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

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no bye, no final checkpoint."""
        if self.alive():
            assert self.proc is not None
            self.proc.kill()
            self.proc.wait(10)

    def stop(self, timeout: float = 10.0) -> int:
        """SIGTERM and wait; kill if it does not stop in time."""
        assert self.proc is not None
        if self.alive():
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stdout is not None:
            self.proc.stdout.close()
        return self.proc.returncode

    def events(self) -> list[dict[str, Any]]:
        path = self.home / "events.jsonl"
        if not path.exists():
            return []
        return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


class Cluster:
    """Every process a test starts, so a fixture can reap them all."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.nodes: list[NodeProcess] = []

    def start(self, name: str, *args: str, **kw: Any) -> NodeProcess:
        node = NodeProcess(self.root / name, *args, name=name, **kw)
        self.nodes.append(node)
        return node.start()

    def close(self) -> None:
        for node in self.nodes:
            if node.proc is not None:
                node.stop(timeout=5)
