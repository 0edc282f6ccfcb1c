"""Node processes on this machine: start one, wait until it is ready, stop it for sure."""

from __future__ import annotations

import json
import os
import selectors
import signal
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from metamesh.deploy.preload import PreloadedProcess, preload_available
from metamesh.errors import MetameshError
from metamesh.node.eventfiles import read_events

__all__ = ["LocalNode", "node_environ", "stop_all"]


def node_environ() -> dict[str, str]:
    """This process's environment for a node's interpreter, which must import the installed
    metamesh wherever it is started from: ``python -m`` puts the working directory first on
    ``sys.path``, so a ``metamesh`` folder there (a clone, a run folder) would be imported
    instead. ``PYTHONSAFEPATH`` (Python 3.11's ``-P``) leaves it out; older interpreters
    ignore it."""
    return {**os.environ, "PYTHONSAFEPATH": "1"}


class LocalNode:
    """A ``metamesh node`` or ``coordinator`` process; ``start`` returns once its endpoints are known."""

    def __init__(
        self,
        home: Path,
        args: list[str],
        *,
        prefix: tuple[str, ...] = (),
        detach: bool = False,
        python: str = sys.executable,
        command: str = "node",
        preload: Sequence[str] = (),
    ) -> None:
        self.command = command
        self.detach = detach
        self.python = python
        self.home = home
        self.args = args
        self.prefix = prefix
        self.preload = tuple(preload)
        self.proc: subprocess.Popen[bytes] | PreloadedProcess | None = None
        self.info: dict[str, Any] = {}

    @property
    def log_path(self) -> Path:
        return self.home.parent / f"{self.home.name}.log"

    def start(self, timeout: float = 30.0) -> LocalNode:
        return self.launch().wait_ready(timeout)

    def launch(self) -> LocalNode:
        """Start the process without waiting: launch several, then :meth:`wait_ready` each."""
        self.home.parent.mkdir(parents=True, exist_ok=True)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()
        argv = ["--log-level", "warning", self.command, "--home", str(self.home), "--ready-json", *self.args]
        if self._forks():
            title = f"mm-{self.home.name}"
            self.proc = PreloadedProcess(argv, log=self.log_path, preload=self.preload, title=title)
            return self
        cmd = [*self.prefix, self.python, "-m", "metamesh", *argv]
        with open(self.log_path, "ab") as log:
            self.proc = subprocess.Popen(
                cmd, stdout=subprocess.PIPE, stderr=log, env=node_environ(), start_new_session=self.detach
            )
        return self

    def _forks(self) -> bool:
        """Fork from the preloaded server: asked for, and the process would be this interpreter's
        own ``-m metamesh`` (no prefix such as ``ip netns exec``, no other venv, not detached)."""
        return bool(self.preload) and not self.prefix and not self.detach and self.python == sys.executable \
            and preload_available()  # fmt: skip

    def wait_ready(self, timeout: float = 30.0) -> LocalNode:
        """Read the node's ready line; kill it and raise MetameshError if none comes in time."""
        assert self.proc is not None and self.proc.stdout is not None, "launch() first"
        with selectors.DefaultSelector() as sel:
            sel.register(self.proc.stdout, selectors.EVENT_READ)
            ready = sel.select(timeout)
        line = self.proc.stdout.readline() if ready else b""
        if not line:
            self.kill()
            tail = self.log_path.read_text(errors="replace")[-1500:] if self.log_path.exists() else ""
            raise MetameshError(f"node in {self.home} did not start: {tail.strip() or 'no output'}")
        self.info = json.loads(line)
        return self

    @property
    def id(self) -> str:
        return str(self.info["node"])

    @property
    def router(self) -> str:
        return str(self.info["router"])

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL: no bye, no final checkpoint."""
        if self.proc is not None and self.alive():
            self.proc.kill()
            self.proc.wait(10)
        if self.proc is not None and self.proc.stdout is not None:
            self.proc.stdout.close()

    def terminate(self) -> None:
        """SIGTERM without waiting: stop several at once, then :meth:`stop` each to reap it."""
        if self.proc is not None and self.alive():
            self.proc.send_signal(signal.SIGTERM)

    def stop(self, timeout: float = 10.0) -> int | None:
        """SIGTERM, then SIGKILL if it has not stopped within ``timeout``; always reaped."""
        if self.proc is None:
            return None
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
        """The node's event log so far, rotated files included, oldest first."""
        return read_events(self.home / "events.jsonl")


def stop_all(nodes: Sequence[LocalNode], timeout: float = 10.0) -> None:
    """Stop nodes in parallel: SIGTERM to all first, then reap each (SIGKILL after ``timeout``)."""
    for node in nodes:
        node.terminate()
    for node in nodes:
        node.stop(timeout)
