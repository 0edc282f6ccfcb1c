"""A bounded fuzz run: random and mutated frames yield protocol errors and nothing else."""

from __future__ import annotations

import random
import time
from typing import Any

import msgpack
import numpy as np

from metamesh.errors import ProtocolError
from metamesh.protocol import (
    GLOBAL_DOMAIN,
    Delta,
    Envelope,
    Heartbeat,
    Insight,
    Meta,
    PeerAddr,
    QTable,
    Status,
    decode,
    encode,
)

SEEDS: list[list[bytes]] = [
    [bytes(memoryview(f)) for f in encode(env)]
    for env in (
        Envelope("n1", 1, "math", Insight(["e0", "e1"], [0.1, 2.0], [5, 7], 1.0, 12, 3), 5.0),
        Envelope("n2", 9, "geo", QTable(("a", "b"), ("x", "y"), np.ones((2, 2)), np.ones((2, 2)), 3), 5.0),
        Envelope("n3", 2, "d", Delta("m", {"w": np.ones((4, 4), np.float32), "b": np.zeros(4)}, 2, 10), 5.0),
        Envelope(
            "n4",
            4,
            GLOBAL_DOMAIN,
            Heartbeat(
                "tcp://1.2.3.4:5",
                "tcp://1.2.3.4:6",
                ("a",),
                (PeerAddr("p", "tcp://10.0.0.7:1", "tcp://10.0.0.7:2"),),
                3.0,
            ),
            5.0,
        ),
        Envelope("n5", 5, GLOBAL_DOMAIN, Meta(3, "", {"lr": 0.1}, {"s": ("a",)}, {"i": np.ones(3)}), 5.0),
        Envelope("n6", 6, GLOBAL_DOMAIN, Status({"x": [1, {"y": None}]}), 5.0),
    )
]


def _mutate_bytes(data: bytes, rng: random.Random) -> bytes:
    b = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        op = rng.random()
        if op < 0.4 and b:
            b[rng.randrange(len(b))] = rng.randrange(256)
        elif op < 0.6 and b:
            del b[rng.randrange(len(b)) :]
        elif op < 0.8:
            b.insert(rng.randrange(len(b) + 1), rng.randrange(256))
        else:
            b += bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(b)


def _mutate_header(data: bytes, rng: random.Random) -> bytes:
    """Structure-aware: swap a value somewhere in the decoded map for a hostile one."""
    header = msgpack.unpackb(data)
    hostile: list[Any] = [
        None,
        -1,
        2**64 - 1,
        1.5,
        float("nan"),
        "",
        "x" * 300,
        [],
        {},
        [[]],
        {"a": 1},
        b"\x00",
        True,
        [1, [2, [3]]],
        ["<f4", [10**9]],
    ]
    target = header["p"] if rng.random() < 0.6 and header.get("p") else header
    if isinstance(target, dict) and target:
        key = rng.choice(list(target))
        if rng.random() < 0.2:
            target.pop(key)
        else:
            target[key] = rng.choice(hostile)
    return msgpack.packb(header)  # type: ignore[no-any-return]


def _random_frames(rng: random.Random) -> list[bytes]:
    n = rng.randint(0, 6)
    return [bytes(rng.randrange(256) for _ in range(rng.randint(0, 40))) for _ in range(n)]


def test_20000_random_and_mutated_frames_raise_only_protocol_errors() -> None:
    rng = random.Random(1234)
    accepted = rejected = 0
    deadline = time.monotonic() + 90
    for i in range(20_000):
        assert time.monotonic() < deadline
        seed = rng.choice(SEEDS)
        choice = i % 4
        if choice == 0:
            frames = _random_frames(rng)
        elif choice == 1:
            frames = list(seed)
            j = rng.randrange(len(frames))
            frames[j] = _mutate_bytes(frames[j], rng)
        elif choice == 2:
            frames = [seed[0], _mutate_header(seed[1], rng), *seed[2:]]
        else:
            frames = list(seed)
            if rng.random() < 0.5 and len(frames) > 2:
                frames.pop(rng.randrange(len(frames)))
            else:
                frames.insert(rng.randrange(len(frames) + 1), _mutate_bytes(rng.choice(seed), rng))
        try:
            decode(frames)
            accepted += 1
        except ProtocolError:
            rejected += 1
    assert accepted + rejected == 20_000
    assert rejected > 15_000, "the mutations should mostly produce invalid messages"
