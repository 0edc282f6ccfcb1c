"""Node processes forked from a server that has imported the heavy modules once.

An experiment starts 8 to 24 node processes on one machine, and every torch
learner among them pays for ``import torch`` (about 2 s of CPU) before it does
anything. Here the nodes are forked from multiprocessing's fork server,
which imports the given modules once: each node then starts in a few
milliseconds and shares those pages with its siblings until it writes them.

The fork server is a fresh interpreter that has run nothing but the imports
(no thread pool has been used, no ZeroMQ context exists), which is what
makes forking it safe where forking the experiment itself would not be.
:class:`PreloadedProcess` answers like the :class:`subprocess.Popen` that
:class:`~metamesh.deploy.local.LocalNode` otherwise holds.

As with multiprocessing's spawn and forkserver methods everywhere, a node
first imports the launching program's main module when that is a script (not
``-m metamesh`` or the ``metamesh`` command): a script that starts preloaded
nodes must keep its top level under ``if __name__ == "__main__":``.
"""

from __future__ import annotations

import contextlib
import logging
import multiprocessing
import multiprocessing.forkserver
import os
import runpy
import signal
import subprocess
import sys
from collections.abc import Mapping, Sequence
from multiprocessing.connection import Connection
from pathlib import Path
from typing import IO

__all__ = ["TORCH_NODE_MODULES", "PreloadedProcess", "preload_available"]

TORCH_NODE_MODULES = (
    "torch",
    "metamesh.cli.main",
    "metamesh.learners.factory",
    "metamesh.learners.experts.node_learner",
    "metamesh.learners.braid.node_learner",
)
"""What a node with a torch learner (experts, braid) imports before it is ready."""

_started_with: list[tuple[str, ...]] = []  # the modules the fork server was started with, once set


def preload_available() -> bool:
    """Whether this platform has a fork server (POSIX: yes; Windows: no)."""
    return "forkserver" in multiprocessing.get_all_start_methods()


def _context(preload: Sequence[str]) -> multiprocessing.context.ForkServerContext:
    """The fork server context, its server running; the first caller's modules are the ones
    preloaded (the server starts once per process; later callers' nodes import what it lacks
    themselves)."""
    ctx = multiprocessing.get_context("forkserver")
    if not _started_with:
        _started_with.append(tuple(preload))
        ctx.set_forkserver_preload(list(preload))
    _ensure_server()
    return ctx


def _ensure_server() -> None:
    """Start the fork server (or a new one, if it died) with a safe ``sys.path``: it runs
    ``python -c``, which puts the working directory first on ``sys.path`` (and 3.11's fork
    server ignores the ``sys_path`` it is given), so a ``metamesh`` folder there would be what
    it and every node imports. The server reads ``PYTHONSAFEPATH`` from the environment it is
    started with, so that is set just for the start."""
    before = os.environ.get("PYTHONSAFEPATH")
    os.environ["PYTHONSAFEPATH"] = "1"
    try:
        multiprocessing.forkserver.ensure_running()
    finally:
        if before is None:
            del os.environ["PYTHONSAFEPATH"]
        else:
            os.environ["PYTHONSAFEPATH"] = before


class PreloadedProcess:
    """``python -m metamesh ARGV``, forked from the fork server: stdout a pipe, stderr appended to
    ``log``. Exit codes follow Popen's: negative for the signal that ended the process."""

    def __init__(
        self, argv: Sequence[str], *, log: Path, preload: Sequence[str], title: str = "metamesh"
    ) -> None:
        ctx = _context(preload)
        reader, writer = ctx.Pipe(duplex=False)
        self._process = ctx.Process(
            target=_run,
            args=(list(argv), writer, str(log), dict(os.environ), title),
            name=f"metamesh {' '.join(argv[:3])}",
            daemon=True,  # stopped with the experiment if it exits without stopping its nodes
        )
        try:
            self._process.start()
        finally:
            writer.close()  # the child holds its own copy: EOF on stdout when it exits
        self.args = list(argv)
        self.stdout: IO[bytes] | None = open(os.dup(reader.fileno()), "rb")  # noqa: SIM115 (its owner closes it)
        reader.close()
        assert self._process.pid is not None
        self.pid: int = self._process.pid

    @property
    def returncode(self) -> int | None:
        return self._process.exitcode

    def poll(self) -> int | None:
        return self._process.exitcode

    def wait(self, timeout: float | None = None) -> int:
        self._process.join(timeout)
        code = self._process.exitcode
        if code is None:
            raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):  # exited between the poll and the kill
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


def _run(argv: list[str], stdout: Connection, log: str, environ: Mapping[str, str], title: str) -> None:
    """In the forked child: become ``python -m metamesh ARGV`` with the parent's current environment."""
    os.dup2(stdout.fileno(), 1)
    stdout.close()
    fd = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(fd, 2)
    os.close(fd)
    os.environ.clear()
    os.environ.update(environ)
    sys.argv = [sys.argv[0], *argv]
    with contextlib.suppress(OSError):  # the name ps -o comm and top show (Linux; 15 bytes)
        Path("/proc/self/comm").write_text(title[:15])
    try:
        # what `python -m metamesh` runs (metamesh/__main__.py, with sys.argv as set above): the
        # command line is the CLI's, which nothing else in the package imports
        runpy.run_module("metamesh", run_name="__main__", alter_sys=True)
    finally:
        logging.shutdown()  # the child ends with os._exit: no atexit flushes the log handlers
