"""Batch frames (protocol version 2, PROTOCOL.md section 2.2): round trip, signatures, hostile input.

Every refusal is a ``ProtocolError`` with a reason of section 6, never another exception.
"""

from __future__ import annotations

import contextlib
import time
from typing import Any

import msgpack
import numpy as np
import pytest
from nacl.signing import SigningKey

from metamesh.errors import ProtocolError, Reason
from metamesh.gossip.signing import OriginSigner, OriginVerifier
from metamesh.protocol import EDGE, LAN, Delta, Envelope, Insight, decode, encode
from metamesh.protocol.batch import batch_frames, decode_batch, is_batch, relay_batch
from metamesh.protocol.envelope import BATCH_VERSION, MESSAGE_VERSION, PROTOCOL_MAX

pytestmark = pytest.mark.timeout(30)

SEED = bytes(range(32))
OTHER = bytes(range(1, 33))
SIGNER = OriginSigner(SEED)
VERIFIER = OriginVerifier({"node-a": bytes(SigningKey(SEED).verify_key)})


def member(seq: int, sender: str = "node-a", domain: str = "math", *, signed: bool = False) -> list[Any]:
    body = Insight(["e1"], [0.5], [10], 0.5, 10, seq)
    env = Envelope(sender, seq, domain, body, time.time(), hops=3)
    return encode(env, by_batch=signed)  # a signed batch's member: ``g`` set, signed by the batch


def batch(n: int = 3, *, signed: bool = False, **kw: Any) -> list[Any]:
    return batch_frames("node-a", "math", 3, [member(i + 1, signed=signed, **kw) for i in range(n)],
                        signer=SIGNER if signed else None)  # fmt: skip


def refuse(frames: list[Any], reason: Reason, **kw: Any) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode_batch(frames, **kw)
    assert info.value.reason is reason, info.value
    return info.value


def test_a_batch_decodes_to_its_members_each_a_v1_message_alone() -> None:
    frames = batch(3)
    assert is_batch(frames[0]) and not is_batch(member(1)[0])
    assert frames[0] == b"math/batch/3" and len(frames) == 2 + 3
    assert msgpack.unpackb(frames[1]) == {"v": BATCH_VERSION, "k": "batch", "s": "node-a", "d": "math",
                                          "m": 3, "g": False}  # fmt: skip
    sender, members = decode_batch(frames)
    assert sender == "node-a" and [m.seq for m in members] == [1, 2, 3]
    assert all(m.hops == 3 and m.version == MESSAGE_VERSION for m in members)
    # What a node keeps of a member is a single message, decoded alone as any other.
    alone = decode([b"math/insight/0", *members[1].raw])
    assert alone.body == members[1].body and alone.seq == 2


def test_a_signed_batch_verifies_once_and_its_members_stay_verifiable_alone() -> None:
    frames = batch(4, signed=True)
    assert len(frames) == 2 + 4 + 1
    assert len(msgpack.unpackb(frames[1])["h"]) == 4
    sender, members = decode_batch(frames, verify=VERIFIER)
    assert sender == "node-a" and len(members) == 4
    assert all(m.raw == (frames[2 + i], frames[1], frames[-1]) for i, m in enumerate(members))
    alone = decode([b"math/insight/0", *members[0].raw], verify=VERIFIER)  # a member with its proof
    assert alone.seq == 1 and alone.signature == frames[-1] and alone.body == members[0].body


def test_a_relayed_batch_keeps_its_frames_and_signature() -> None:
    frames = batch(2, signed=True)
    relayed = relay_batch(frames, 3)
    assert relayed[0] == b"math/batch/2" and relayed[1:] == frames[1:]
    _, members = decode_batch(relayed, verify=VERIFIER)
    assert [m.hops for m in members] == [2, 2]


@pytest.mark.parametrize("cut", [1, 2, 3])
def test_a_truncated_batch_is_bad_batch(cut: int) -> None:
    refuse(batch(3)[:-cut], Reason.BAD_BATCH)


def test_a_truncated_signed_batch_is_refused() -> None:
    frames = batch(3, signed=True)
    with pytest.raises(ProtocolError) as info:
        decode_batch(frames[:-1], verify=VERIFIER)
    assert info.value.reason in (Reason.BAD_BATCH, Reason.BAD_SIGNATURE)


def test_a_member_by_another_author_is_a_forgery() -> None:
    frames = batch(2)
    frames.insert(3, member(9, sender="node-b")[1])
    frames[1] = msgpack.packb({**msgpack.unpackb(frames[1]), "m": 3})
    assert refuse(frames, Reason.BAD_BATCH).author == "node-a"


def test_a_member_swapped_in_a_signed_batch_breaks_its_signature() -> None:
    frames = batch(3, signed=True)
    forged = batch_frames("node-a", "math", 3, [member(7, signed=True)] * 3, signer=OriginSigner(OTHER))
    frames[:2] = forged[:2]  # a digest list signed with a key that is not node-a's
    refuse(frames, Reason.BAD_SIGNATURE, verify=VERIFIER)


def test_an_unsigned_batch_on_a_signed_network_is_bad_signature() -> None:
    refuse(batch(2), Reason.BAD_SIGNATURE, verify=VERIFIER)


def test_a_member_of_another_domain_or_with_arrays_is_refused() -> None:
    refuse(batch(2, domain="art"), Reason.TOPIC_MISMATCH)
    delta = encode(
        Envelope("node-a", 5, "math", Delta("m", {"w": np.ones(2, np.float32)}, 1, 1), time.time())
    )
    frames = batch_frames("node-a", "math", 3, [member(1), delta[:2]])
    refuse(frames, Reason.BAD_FRAMES)  # its array frames are not there: refused as a single would be


def test_an_oversized_batch_is_too_many_frames() -> None:
    members = [member(i + 1) for i in range(EDGE.max_batch + 1)]
    refuse(batch_frames("node-a", "math", 3, members), Reason.TOO_MANY_FRAMES, limits=EDGE)
    decode_batch(batch_frames("node-a", "math", 3, members[: EDGE.max_batch]), EDGE)


def test_a_batch_header_claiming_more_members_than_the_limit_is_refused_before_counting() -> None:
    frames = batch(2)
    frames[1] = msgpack.packb({**msgpack.unpackb(frames[1]), "m": 10**9})
    refuse(frames, Reason.TOO_MANY_FRAMES)


@pytest.mark.parametrize(
    ("change", "reason"),
    [
        ({"v": MESSAGE_VERSION}, Reason.UNKNOWN_VERSION),
        ({"v": PROTOCOL_MAX + 1}, Reason.UNKNOWN_VERSION),
        ({"k": "insight"}, Reason.TOPIC_MISMATCH),
        ({"d": "art"}, Reason.TOPIC_MISMATCH),
        ({"m": 0}, Reason.BAD_BATCH),
        ({"m": "3"}, Reason.BAD_HEADER),
        ({"s": ""}, Reason.BAD_HEADER),
    ],
)
def test_a_bad_batch_header_is_refused_by_name(change: dict[str, Any], reason: Reason) -> None:
    frames = batch(3)
    frames[1] = msgpack.packb({**msgpack.unpackb(frames[1]), **change})
    refuse(frames, reason)


def test_a_bad_member_refuses_the_batch_under_the_members_reason() -> None:
    frames = batch(2)
    head = msgpack.unpackb(frames[2])
    head["p"]["loss"] = [-1.0]
    frames[2] = msgpack.packb(head)
    assert refuse(frames, Reason.BAD_FIELD).author == "node-a"


def test_random_garbage_in_a_batch_raises_only_protocol_errors() -> None:
    rng = np.random.default_rng(0)
    good = batch(3, signed=True)
    for _ in range(2000):
        frames = list(good)
        i = int(rng.integers(1, len(frames)))
        data = bytearray(frames[i])
        for _ in range(int(rng.integers(1, 4))):
            if data:
                data[int(rng.integers(0, len(data)))] = int(rng.integers(0, 256))
        frames[i] = bytes(data)
        if rng.random() < 0.2:
            frames = frames[: int(rng.integers(0, len(frames) + 1))]
        with contextlib.suppress(ProtocolError):
            decode_batch(frames, LAN, verify=VERIFIER if rng.random() < 0.5 else None)
