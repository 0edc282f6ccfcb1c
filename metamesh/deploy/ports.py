"""Ports chosen before a node starts, so its peers can be told where to find it."""

from __future__ import annotations

import random
import socket
from pathlib import Path

EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
LOWEST = 10_000
ATTEMPTS = 200


def ephemeral_range() -> tuple[int, int]:
    """The ports the kernel hands out for ``bind(0)`` and outgoing connections (Linux's default
    where the file cannot be read)."""
    try:
        low, high = (int(v) for v in EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return low, high


def free_tcp_port(host: str = "127.0.0.1", rng: random.Random | None = None) -> int:
    """A port free on ``host`` right now, from outside the kernel's ephemeral range.

    A port the kernel picked for us is one it will pick again: for another socket's ``bind(0)``,
    or as the local end of an outgoing connection, and a connection to a port no one listens on
    yet can even land on itself. Between this call and the node's bind, any of these takes the port
    ("Address already in use"). A port below the range is one the kernel never hands out itself.
    """
    low, high = ephemeral_range()
    pool = range(LOWEST, low) if low - LOWEST >= 1000 else range(high + 1, 65536)
    pick = rng or random.Random()
    for _ in range(ATTEMPTS):
        port = pick.choice(pool)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return port
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])
