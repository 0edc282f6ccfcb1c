"""systemd unit files for nodes on LAN hosts: restart on failure, stop with SIGTERM
(the node says bye and checkpoints), state in the node's home directory."""

from __future__ import annotations

import shlex
import sys
from collections.abc import Sequence
from pathlib import Path

__all__ = ["render_unit"]


def render_unit(
    *,
    name: str,
    home: Path,
    args: Sequence[str],
    user: str = "metamesh",
    python: str = sys.executable,
    description: str = "metamesh node",
    command: str = "node",
) -> str:
    """The text of ``metamesh-NAME.service``; ``args`` are the flags of ``metamesh COMMAND``."""
    argv = [python, "-m", "metamesh", command, "--home", str(home), *args]
    line = " ".join(shlex.quote(a) for a in argv)
    return f"""[Unit]
Description={description} {name}
Documentation=https://github.com/metamesh/metamesh#readme
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={user}
WorkingDirectory={home}
ExecStart={line}
# SIGTERM lets the node say bye to its peers and write a checkpoint.
KillSignal=SIGTERM
TimeoutStopSec=20
Restart=on-failure
RestartSec=2
# The node writes only to its home directory.
ReadWritePaths={home}
ProtectSystem=strict
ProtectHome=true
PrivateTmp=true
NoNewPrivileges=true

[Install]
WantedBy=multi-user.target
"""
