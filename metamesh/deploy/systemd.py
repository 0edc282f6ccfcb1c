"""systemd unit files for nodes on LAN hosts: restart on failure, stop with SIGTERM
(the node says bye and checkpoints), state in the node's home directory.

``render_unit`` is pure text; ``protect_home`` decides how much of ``/home`` the unit may
see, and ``user_steps`` says what to run before the unit can start as another user.
"""

from __future__ import annotations

import shlex
from collections.abc import Sequence
from pathlib import PurePosixPath

__all__ = ["protect_home", "render_unit", "user_steps"]

#: What ``ProtectHome=true`` hides from a service.
HOME_TREES = (PurePosixPath("/home"), PurePosixPath("/root"), PurePosixPath("/run/user"))


def protect_home(*paths: PurePosixPath) -> str:
    """``true`` unless a path the unit needs lies under a home tree; then ``read-only``
    (``ReadWritePaths=`` still lets the node write its own directory)."""
    inside = any(p == tree or tree in p.parents for p in paths for tree in HOME_TREES)
    return "read-only" if inside else "true"


def user_steps(user: str, home: PurePosixPath, *, exists: bool) -> list[str]:
    """Shell commands that give ``user`` (created if it does not exist) the node's home."""
    steps = []
    if not exists:
        steps.append(f"useradd --system --user-group --no-create-home --shell /usr/sbin/nologin {user}")
    steps.append(f"mkdir -p {shlex.quote(str(home))}")
    steps.append(f"chown -R {user}:{user} {shlex.quote(str(home))}")
    return steps


def render_unit(
    *,
    name: str,
    home: PurePosixPath,
    args: Sequence[str],
    user: str,
    group: str,
    python: PurePosixPath,
    description: str = "metamesh node",
    command: str = "node",
) -> str:
    """The text of ``metamesh-NAME.service``; ``args`` are the flags of ``metamesh COMMAND``.

    ``home`` and ``python`` must be absolute (systemd refuses relative paths).
    """
    if not home.is_absolute() or not python.is_absolute():
        raise ValueError(f"home and python must be absolute paths, got {home} and {python}")
    argv = [str(python), "-m", "metamesh", command, "--home", str(home), *args]
    line = " ".join(shlex.quote(a) for a in argv)
    values = (a.partition("=")[2] if a.startswith("--") else a for a in args)
    paths = [PurePosixPath(v) for v in values if v.startswith("/")]  # config, keys, ...: read
    return f"""[Unit]
Description={description} {name}
After=network-online.target
Wants=network-online.target

[Service]
Type=simple
User={user}
Group={group}
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
ProtectHome={protect_home(home, python, *paths)}
PrivateTmp=true
NoNewPrivileges=true

[Install]
WantedBy=multi-user.target
"""
