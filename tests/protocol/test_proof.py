"""Signed batches and member proofs (PROTOCOL.md sections 2.2 and 8.1), against hostile input.

A signed batch is signed once over its header, which lists its members' digests; a member is
kept and served with that header and signature as its proof. Every forgery below is refused
with a named reason, and a relay's tampering is charged to nobody.
"""

from __future__ import annotations

import time
from typing import Any

import msgpack
import pytest
from nacl.signing import SigningKey

from metamesh.errors import ProtocolError, Reason
from metamesh.gossip.signing import OriginSigner, OriginVerifier
from metamesh.protocol import Envelope, Insight, decode, encode, signed_parts
from metamesh.protocol.batch import batch_frames, decode_batch
from metamesh.protocol.proof import digest, member_digest

pytestmark = pytest.mark.timeout(30)

SEED = bytes(range(32))
OTHER = bytes(range(1, 33))
SIGNER = OriginSigner(SEED)
VERIFIER = OriginVerifier(
    {"node-a": bytes(SigningKey(SEED).verify_key), "node-b": bytes(SigningKey(OTHER).verify_key)}
)


def member(seq: int, loss: float = 0.5, sender: str = "node-a") -> list[Any]:
    env = Envelope(sender, seq, "math", Insight(["e1"], [loss], [10], 0.5, 10, seq), time.time(), hops=3)
    return encode(env, by_batch=True)


def signed_batch(n: int = 3, signer: OriginSigner = SIGNER, sender: str = "node-a") -> list[Any]:
    return batch_frames(sender, "math", 3, [member(i + 1, sender=sender) for i in range(n)], signer=signer)


def proved(frames: list[Any], i: int) -> list[Any]:
    """Member ``i`` of a signed batch in its proved form, as a node serves it to a late joiner."""
    return [b"math/insight/0", frames[2 + i], frames[1], frames[-1]]


def refused(call: Any, reason: Reason) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        call()
    assert info.value.reason is reason, info.value
    return info.value


def test_the_member_digest_is_the_digest_a_message_alone_is_signed_over() -> None:
    head = member(1)[1]
    assert member_digest(head) == digest([head]) == digest([bytearray(head)])
    env = decode(proved(signed_batch(), 0), verify=VERIFIER)
    assert signed_parts(env) == [env.raw[1]]  # what the proof's signature covers: the batch header


def test_every_proved_member_verifies_alone_and_sent_alone_a_member_is_signed_as_v1() -> None:
    frames = signed_batch(4)
    for i in range(4):
        assert decode(proved(frames, i), verify=VERIFIER).seq == i + 1
    alone = member(9)
    alone.append(SIGNER(alone[1:]))  # what a node does when a batch turns out to have one member
    assert decode(alone, verify=VERIFIER).signature == alone[-1]


def test_a_forged_digest_list_breaks_the_batch_signature() -> None:
    frames = signed_batch(3)
    head = msgpack.unpackb(frames[1])
    forgery = member(2, loss=9.0)
    head["h"][1] = member_digest(forgery[1])
    frames[1], frames[3] = msgpack.packb(head), forgery[1]
    assert refused(lambda: decode_batch(frames, verify=VERIFIER), Reason.BAD_SIGNATURE).author is None
    assert refused(lambda: decode(proved(frames, 1), verify=VERIFIER), Reason.BAD_SIGNATURE).author is None


def test_a_member_not_matching_its_digest_is_refused_and_nobody_is_charged() -> None:
    frames = signed_batch(3)
    frames[3] = member(2, loss=9.0)[1]  # altered by a relay: valid, same author and seq
    error = refused(lambda: decode_batch(frames, verify=VERIFIER), Reason.BAD_SIGNATURE)
    assert error.author is None
    # The same alteration of a kept member, served with its proof, even to a node without keys.
    good = signed_batch(3)
    served = proved(good, 1)
    served[1] = frames[3]
    refused(lambda: decode(served, verify=VERIFIER), Reason.BAD_SIGNATURE)
    refused(lambda: decode(served), Reason.BAD_SIGNATURE)


def test_a_proof_with_a_wrong_signature_is_refused() -> None:
    frames = signed_batch(2)
    wrong = OriginSigner(OTHER)((frames[1],))  # the same batch header, signed by a key not node-a's
    refused(lambda: decode([*proved(frames, 0)[:3], wrong], verify=VERIFIER), Reason.BAD_SIGNATURE)
    refused(lambda: decode([*proved(frames, 0)[:3], b"\0" * 63], verify=VERIFIER), Reason.BAD_SIGNATURE)
    refused(lambda: decode_batch([*frames[:-1], wrong], verify=VERIFIER), Reason.BAD_SIGNATURE)


def test_a_proof_by_another_author_or_unsigned_does_not_prove_a_member() -> None:
    mine = signed_batch(2)
    theirs = signed_batch(2, signer=OriginSigner(OTHER), sender="node-b")  # node-b's own, valid batch
    refused(
        lambda: decode([b"math/insight/0", mine[2], theirs[1], theirs[-1]], verify=VERIFIER),
        Reason.BAD_SIGNATURE,
    )
    unsigned = encode(Envelope("node-a", 1, "math", Insight([], [], [], 0.0, 0), time.time(), hops=3))
    plain = batch_frames("node-a", "math", 3, [unsigned])  # g false, no digests
    refused(
        lambda: decode([b"math/insight/0", mine[2], plain[1], mine[-1]], verify=VERIFIER),
        Reason.BAD_SIGNATURE,
    )


def test_a_signed_member_stripped_of_its_proof_is_bad_signature() -> None:
    frames = signed_batch(2)
    refused(lambda: decode([b"math/insight/0", frames[2]], verify=VERIFIER), Reason.BAD_SIGNATURE)
    refused(lambda: decode([b"math/insight/0", frames[2]]), Reason.BAD_SIGNATURE)


def test_digests_and_members_out_of_step_are_refused_by_name() -> None:
    frames = signed_batch(3)
    head = msgpack.unpackb(frames[1])
    head["h"] = head["h"][:2]
    short = [frames[0], msgpack.packb(head), *frames[2:]]
    refused(lambda: decode_batch(short), Reason.BAD_BATCH)
    head["h"] = [*head["h"], b"\0" * 31]
    refused(lambda: decode_batch([frames[0], msgpack.packb(head), *frames[2:]]), Reason.BAD_HEADER)
    swapped = [*frames[:2], frames[3], frames[2], *frames[4:]]  # reordered by a relay
    assert refused(lambda: decode_batch(swapped, verify=VERIFIER), Reason.BAD_SIGNATURE).author is None


def test_a_replayed_proof_decodes_to_the_same_message_for_the_replay_window_to_drop() -> None:
    frames = signed_batch(2)
    first, again = decode(proved(frames, 0), verify=VERIFIER), decode(proved(frames, 0), verify=VERIFIER)
    assert first.id == again.id == ("node-a", 1)
    seen = {first.id}
    refused(lambda: decode(proved(frames, 0), skip=lambda s, n: (s, n) in seen), Reason.DUPLICATE)
