"""Writes ``v1.msgpack``: frames of every kind as the v1 encoder (before msgspec) produced them.

Run once, from the repository root, with the encoder the goldens are to pin:
``python -m tests.protocol.golden.make_v1``. The file is a msgpack array of
``[name, [frame, ...]]``; signed messages use the fixed key ``SEED``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import msgpack
import numpy as np

from metamesh.gossip.signing import OriginSigner
from metamesh.protocol import (
    GLOBAL_DOMAIN,
    Bye,
    Delta,
    Envelope,
    Graft,
    Heartbeat,
    Hello,
    IHave,
    Insight,
    Meta,
    PeerAddr,
    Prompt,
    Prune,
    QTable,
    Snapshot,
    SnapshotRequest,
    Status,
    StatusRequest,
    encode,
)

SEED = bytes(range(32))
PEER = PeerAddr("n2", "tcp://10.0.0.2:5555", "tcp://[fe80::1]:5556")


def messages() -> list[tuple[str, Envelope]]:
    t = 1_767_225_600.25
    g = GLOBAL_DOMAIN
    rng = np.random.default_rng(7)
    return [
        (
            "hello",
            Envelope(
                "n1",
                1,
                g,
                Hello("tcp://10.0.0.1:5555", "tcp://10.0.0.1:5556", ("math",), (PEER,), "lab"),
                t,
                0,
            ),
        ),
        ("hello_bare", Envelope("n1", 2, g, Hello("tcp://10.0.0.1:5555", "tcp://10.0.0.1:5556"), t, 0)),
        (
            "heartbeat",
            Envelope(
                "n1",
                3,
                g,
                Heartbeat("tcp://10.0.0.1:5555", "tcp://10.0.0.1:5556", ("math", "geo"), (PEER,), 12.5),
                t,
            ),
        ),
        ("bye", Envelope("n1", 4, g, Bye("shutdown"), t)),
        (
            "insight",
            Envelope(
                "node-7f3a",
                2**40,
                "math",
                Insight.of(
                    {"e0": 0.25, "e1": 1.0},
                    {"e0": 10, "e1": 3},
                    avg_loss=0.4,
                    total_samples=13,
                    round=7,
                    metrics={"drift": 0.1, "acc": 1},
                ),
                t,
            ),
        ),
        ("insight_empty", Envelope("n1", 6, g, Insight([], [], [], 0.0, 0), t)),
        (
            "qtable",
            Envelope(
                "n1",
                7,
                "math",
                QTable(
                    ("arith", "algebra"),
                    ("direct", "reasoning", "brevity"),
                    rng.random((2, 3)),
                    np.array([[3, 0, 1], [2, 2, 9]], "<i8"),
                    40,
                ),
                t,
            ),
        ),
        (
            "qtable_f4",
            Envelope(
                "n1",
                8,
                "math",
                QTable(("s",), ("a", "b"), np.array([[0.5, -1.0]], "<f4"), np.array([[1.0, 2.0]], "<f4"), 1),
                t,
            ),
        ),
        (
            "delta",
            Envelope(
                "n1",
                9,
                "math",
                Delta(
                    "experts",
                    {"fc.weight": rng.standard_normal((4, 3)).astype("<f4"), "fc.bias": np.zeros(4, "<f4")},
                    3,
                    128,
                    5,
                    1.0,
                    0.7,
                ),
                t,
            ),
        ),
        (
            "delta_plain",
            Envelope(
                "n1",
                10,
                "math",
                Delta("braid-0a1b2c3d", {"w": np.arange(6, dtype="<f8").reshape(2, 3)}, 0, 1),
                t,
            ),
        ),
        (
            "meta",
            Envelope(
                "coord",
                11,
                g,
                Meta(
                    4,
                    "",
                    {"math:lr.expert0": 0.01, "eps.algebra": 0.2},
                    {"actions": ("direct", "reasoning")},
                    {"prior.algebra": np.ones((2, 2)), "math:init.fc.bias": np.zeros(4, "<f4")},
                ),
                t,
            ),
        ),
        ("meta_bare", Envelope("coord", 12, g, Meta(1), t)),
        ("snapshot_request", Envelope("n1", 13, g, SnapshotRequest(("math",), ("n2",)), t, 0)),
        ("snapshot_request_all", Envelope("n1", 14, g, SnapshotRequest(), t, 0)),
        ("snapshot", Envelope("n2", 15, g, Snapshot(3, {"n1": 9, "n3": 2**62}), t, 0, reply_to=13)),
        ("ihave", Envelope("n2", 16, "math", IHave("n1", 9, "delta", 5), t, 0)),
        (
            "prompt",
            Envelope(
                "n1",
                17,
                "math",
                Prompt("algebra", "Think step by step. {question}", 0.82, 40, "chain_of_thought", 3),
                t,
            ),
        ),
        ("status_request", Envelope("cli", 18, g, StatusRequest(), t, 0)),
        (
            "status",
            Envelope(
                "n1",
                19,
                g,
                Status({"id": "n1", "peers": [{"id": "n2", "alive": True}], "up": 3.5, "none": None}),
                t,
                0,
                reply_to=18,
            ),
        ),
        ("graft", Envelope("n1", 20, "math", Graft(), t, 0)),
        ("graft_reply", Envelope("n2", 21, "math", Graft(), t, 0, reply_to=20)),
        ("prune", Envelope("n2", 22, "math", Prune(30.0, (PEER,)), t, 0, reply_to=20)),
    ]


def frames_of(env: Envelope, *, signed: bool) -> list[bytes]:
    return [bytes(memoryview(f)) for f in encode(env, signer=OriginSigner(SEED) if signed else None)]


def main() -> None:
    out: list[Any] = []
    for name, env in messages():
        out.append([name, frames_of(env, signed=False)])
        out.append([name + "+signed", frames_of(env, signed=True)])
    Path(__file__).with_name("v1.msgpack").write_bytes(msgpack.packb(out, use_bin_type=True))


if __name__ == "__main__":
    main()
