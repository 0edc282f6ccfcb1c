"""A busy port stops a node or coordinator with one line naming it and a non-zero exit code."""

from __future__ import annotations

import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest


@pytest.fixture
def busy_port() -> Iterator[int]:
    """A TCP port on 127.0.0.1 held by a listening socket for the test's duration."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        yield int(sock.getsockname()[1])


@pytest.mark.parametrize(
    ("command", "flag"),
    [
        ("node", "--metrics-port"),
        ("coordinator", "--metrics-port"),
        ("node", "--pub-port"),
        ("node", "--router-port"),
    ],
)
def test_a_busy_port_gives_one_line_and_a_failing_exit(
    tmp_path: Path, busy_port: int, command: str, flag: str
) -> None:
    argv = [sys.executable, "-m", "metamesh", command, "--profile", "local", "--home", str(tmp_path / "n")]
    done = subprocess.run(
        [*argv, flag, str(busy_port)], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode != 0
    assert "Traceback" not in done.stderr, done.stderr
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and str(busy_port) in lines[0], done.stderr
    assert lines[0].startswith(f"metamesh {command}: "), lines[0]
