"""Batch frames (protocol version 2): one multipart message carrying many small ones.

A node coalesces the small messages it publishes in one turn of its loop into
one ZeroMQ message, so a receiver pays one receive (and, on a signed network,
one signature check) for up to ``BATCH_MAX`` messages. PROTOCOL.md section
2.2 gives the format; in short::

    frame 0      "<domain>/batch/<hops>"
    frame 1      batch header {v: 2, k: "batch", s, d, m, g, h}
    frames 2..   m member headers (no arrays, no signature frames)
    last frame   the batch signature (64 bytes) when g, over the batch header alone

When signed, ``h`` lists the digest of every member header, so one signature
authenticates every member, and a member kept with the batch header and signature
(its *proof*, ``metamesh.protocol.proof``) stays verifiable wherever it is served.
Every member is by the batch's author, in its domain, without arrays and not a
``bye``; a member is decoded and checked as a single message would be. A batch
is accepted or refused whole, and relayed whole (only the topic changes).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol.codec import Verifier, decode, topic_of
from metamesh.protocol.envelope import BATCH_VERSION, Envelope, topic
from metamesh.protocol.limits import LAN, Limits
from metamesh.protocol.proof import BATCH_KIND, BatchHeader, member_digest, read_batch_header, signature_of

__all__ = [
    "BATCH_KIND",
    "BATCH_MAX",
    "UNBATCHED_KINDS",
    "batch_frames",
    "decode_batch",
    "is_batch",
    "relay_batch",
]

#: Members a sender puts in one batch; receivers accept up to ``Limits.max_batch``.
BATCH_MAX = 64
#: Kinds never sent in a batch: ``bye`` is never relayed, and the direct ones are never published.
UNBATCHED_KINDS = frozenset(
    {"bye", "snapshot_request", "snapshot", "status_request", "status", "graft", "prune"}
)


class _Unsigned(msgspec.Struct, frozen=True, gc=False):
    """An unsigned batch's header as sent: no digests, as the first version-2 senders wrote it."""

    v: int
    k: str
    s: str
    d: str
    m: int
    g: bool = False


_ENCODER = msgspec.msgpack.Encoder()
_BATCH_TOPIC = b"/" + BATCH_KIND.encode() + b"/"


def is_batch(topic_frame: Any) -> bool:
    """Whether a received message's topic frame names a batch (a cheap test, not a validation)."""
    return _BATCH_TOPIC in (topic_frame if type(topic_frame) is bytes else bytes(memoryview(topic_frame)))


def batch_frames(
    sender: str,
    domain: str,
    hops: int,
    members: Sequence[Sequence[Any]],
    *,
    signer: Callable[[Sequence[Any]], bytes] | None = None,
) -> list[Any]:
    """One batch of ``members``, each the frames ``encode`` made for one message (topic first).

    The members must be this node's, in ``domain`` with ``hops``, without arrays; when
    ``signer`` is given, encoded with ``by_batch=True`` (``g`` set, no signature frame of their
    own): the batch header then lists their digests and is signed alone. A member's proof is
    the batch's frame 1 and last frame.
    """
    if signer is None:
        head = _ENCODER.encode(_Unsigned(BATCH_VERSION, BATCH_KIND, sender, domain, len(members)))
    else:
        digests = tuple(member_digest(m[1]) for m in members)
        head = _ENCODER.encode(
            BatchHeader(BATCH_VERSION, BATCH_KIND, sender, domain, len(members), True, digests)
        )
    frames: list[Any] = [topic(domain, BATCH_KIND, hops), head]
    frames.extend(m[1] for m in members)
    if signer is not None:
        frames.append(signer((head,)))
    return frames


def relay_batch(frames: Sequence[Any], hops: int) -> list[Any]:
    """A received batch forwarded one hop further: the same frames under a new topic."""
    domain = bytes(memoryview(frames[0])).split(b"/", 1)[0].decode("ascii")
    return [topic(domain, BATCH_KIND, hops - 1), *frames[1:]]


def decode_batch(
    frames: Sequence[Any], limits: Limits = LAN, *, verify: Verifier | None = None
) -> tuple[str, list[Envelope]]:
    """The author and the members of a received batch, each a checked :class:`Envelope`.

    In order: the topic, the batch header, the frame count against ``m`` and ``g``, the
    batch signature (``verify``), then every member: its digest against the header's ``h``,
    then as :func:`decode` checks a single message, and that it belongs in this batch. A
    signed member's ``raw`` is its proved form (header, batch header, batch signature), what
    a node keeps and serves. Raises :class:`ProtocolError` only; errors after the signature
    that are the author's carry ``author``. Dedup and age are the caller's, per member.
    """
    n_frames = len(frames)
    if n_frames < 3:
        raise ProtocolError(Reason.BAD_BATCH, f"{n_frames} frames")
    domain, kind, _ = topic_of(frames[0], limits)
    if kind != BATCH_KIND:
        raise ProtocolError(Reason.BAD_BATCH, f"topic kind {kind!r:.40}")
    h = read_batch_header(frames[1], domain, limits)
    if n_frames != 2 + h.m + h.g:
        raise ProtocolError(Reason.BAD_BATCH, f"{n_frames} frames for {h.m} members, g={h.g}")
    sender = h.s
    proof: tuple[Any, Any, bytes] | None = None
    if h.g:
        signature = signature_of(frames[-1])
        if verify is not None:
            verify(sender, (frames[1],), signature)
        proof = (frames[1], frames[-1], signature)
    elif verify is not None:
        verify(sender, frames[1:], None)  # raises: unsigned on a signed network
    members: list[Envelope] = []
    digests = h.h
    for i in range(h.m):
        head = frames[2 + i]
        if proof is not None and member_digest(head) != digests[i]:  # altered on the way: not the author's
            raise ProtocolError(Reason.BAD_SIGNATURE, f"{sender}: member {i} does not match its digest")
        try:
            member = decode((frames[0], head), limits, member=True, proof=proof)
            if member.sender != sender or member.body.ARRAYS or member.kind in UNBATCHED_KINDS:
                raise ProtocolError(
                    Reason.BAD_BATCH,
                    f"member {member.sender:.40}#{member.seq} ({member.kind}) in {sender}'s batch",
                )
        except ProtocolError as exc:
            exc.author = sender
            raise
        members.append(member)
    return sender, members
