"""Ports picked ahead of a node's start stay clear of the ones the kernel hands out."""

from __future__ import annotations

import random
import socket

import pytest

from metamesh.deploy.ports import ephemeral_range, free_tcp_port


@pytest.mark.timeout(10)
def test_a_chosen_port_is_free_and_outside_the_ephemeral_range() -> None:
    low, high = ephemeral_range()
    rng = random.Random(0)
    for _ in range(20):
        port = free_tcp_port(rng=rng)
        assert not low <= port <= high
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", port))  # raises if it was not free


@pytest.mark.timeout(10)
def test_a_port_in_use_is_not_chosen() -> None:
    seed = random.Random(7)
    first = free_tcp_port(rng=random.Random(7))
    with socket.socket() as held:
        held.bind(("127.0.0.1", first))
        held.listen()
        assert free_tcp_port(rng=seed) != first
