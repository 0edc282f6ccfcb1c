"""Wire compatibility with protocol v1 as it was first implemented.

``golden/v1.msgpack`` holds frames of every kind written by the v1 encoder
before the codec moved to msgspec (``golden/make_v1.py``), and ``tests/protocol/v1``
is a frozen copy of that codec. Both directions are checked: today's decoder
reads the golden frames to the same values as the v1 decoder does, today's
encoder writes the golden bytes exactly, and the v1 decoder reads everything
today's encoder writes.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import fields
from pathlib import Path
from typing import Any

import msgpack
import numpy as np
import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from metamesh.gossip.signing import OriginVerifier
from metamesh.protocol import Envelope, decode, encode
from tests.protocol.golden.make_v1 import SEED, frames_of, messages
from tests.protocol.v1 import codec as v1_codec

GOLDEN: list[tuple[str, list[bytes]]] = [
    (name, frames)
    for name, frames in msgpack.unpackb((Path(__file__).parent / "golden" / "v1.msgpack").read_bytes())
]
PUBLIC = Ed25519PrivateKey.from_private_bytes(SEED).public_key().public_bytes_raw()


def same(old: Any, new: Any) -> bool:
    """Equal values across the two implementations' types (dataclasses, structs, tuples, lists)."""
    if isinstance(old, np.ndarray):
        return (
            isinstance(new, np.ndarray)
            and old.dtype == new.dtype
            and old.shape == new.shape
            and old.tobytes() == new.tobytes()
        )
    if hasattr(old, "__dataclass_fields__"):
        return all(same(getattr(old, f.name), getattr(new, f.name)) for f in fields(old) if f.name != "raw")
    if isinstance(old, Mapping):
        return isinstance(new, Mapping) and list(old) == list(new) and all(same(old[k], new[k]) for k in old)
    if isinstance(old, Sequence) and not isinstance(old, str | bytes):
        return len(old) == len(new) and all(same(a, b) for a, b in zip(old, new, strict=True))
    return bool(old == new)


@pytest.mark.parametrize(("name", "frames"), GOLDEN, ids=[n for n, _ in GOLDEN])
def test_decoder_reads_golden_v1_frames(name: str, frames: list[bytes]) -> None:
    verify = OriginVerifier({"n1": PUBLIC, "n2": PUBLIC, "node-7f3a": PUBLIC, "coord": PUBLIC, "cli": PUBLIC})
    signed = name.endswith("+signed")
    old = v1_codec.decode(frames, verify=verify if signed else None)
    new = decode(frames, verify=verify if signed else None)
    assert type(new.body).__name__ == type(old.body).__name__
    assert same(old.body, new.body), (old.body, new.body)
    assert (new.sender, new.seq, new.domain, new.created, new.hops, new.reply_to, new.signature) == (
        old.sender, old.seq, old.domain, old.created, old.hops, old.reply_to, old.signature,
    )  # fmt: skip


def test_encoder_writes_the_golden_bytes() -> None:
    """Byte for byte, but one key: an empty ``senders`` is now sent (``[]``) where v1 left it out."""
    golden = dict(GOLDEN)
    for name, env in messages():
        for suffix in ("", "+signed"):
            frames, expected = frames_of(env, signed=bool(suffix)), golden[name + suffix]
            if name == "snapshot_request_all":
                header = msgpack.unpackb(expected[1])
                header["p"]["senders"] = []
                assert msgpack.unpackb(frames[1]) == header
                frames, expected = frames[:1] + frames[2:-1], expected[:1] + expected[2:-1]
            assert frames == expected, name + suffix


@pytest.mark.parametrize(("name", "env"), messages(), ids=[n for n, _ in messages()])
def test_v1_decoder_reads_what_the_encoder_writes(name: str, env: Envelope) -> None:
    frames = [bytes(memoryview(f)) for f in encode(env)]
    old = v1_codec.decode(frames)
    assert type(old.body).__name__ == type(env.body).__name__
    assert same(old.body, decode(frames).body)
