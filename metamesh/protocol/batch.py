"""Batch frames (protocol version 2): one multipart message carrying many small ones.

A node coalesces the small messages it publishes in one turn of its loop into
one ZeroMQ message, so a receiver pays one receive (and, on a signed network,
one signature check) for up to ``BATCH_MAX`` messages. PROTOCOL.md section
2.2 gives the format; in short::

    frame 0      "<domain>/batch/<hops>"
    frame 1      batch header {v: 2, k: "batch", s, d, m, g}
    frames 2..   m members, each the frames of a v1 message after its topic:
                 its header (no arrays), and its own signature when g
    last frame   the batch signature (64 bytes) when g

Every member is by the batch's author, in its domain, without arrays and not a
``bye``; a member is decoded and checked as a single message would be. A batch
is accepted or refused whole, and relayed whole (only the topic changes), so
the author's batch signature verifies at every hop.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import msgspec

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol._fields import Count, Name
from metamesh.protocol.codec import Verifier, decode, topic_of
from metamesh.protocol.envelope import BATCH_VERSION, PROTOCOL_MAX, PROTOCOL_MIN, Envelope, topic
from metamesh.protocol.limits import LAN, Limits

__all__ = [
    "BATCH_KIND",
    "BATCH_MAX",
    "UNBATCHED_KINDS",
    "batch_frames",
    "decode_batch",
    "is_batch",
    "relay_batch",
]

#: The kind in a batch's topic and header.
BATCH_KIND = "batch"
#: Members a sender puts in one batch; receivers accept up to ``Limits.max_batch``.
BATCH_MAX = 64
#: Kinds never sent in a batch: ``bye`` is never relayed, and the direct ones are never published.
UNBATCHED_KINDS = frozenset(
    {"bye", "snapshot_request", "snapshot", "status_request", "status", "graft", "prune"}
)
_SIGNATURE = 64


class _BatchHeader(msgspec.Struct, frozen=True, gc=False):
    v: int
    k: str
    s: Name
    d: str
    m: Count
    g: bool = False


_HEADER = msgspec.msgpack.Decoder(_BatchHeader)
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

    The members must be this node's, in ``domain`` with ``hops``, without arrays, signed by
    ``signer`` when it is given; the batch is signed by it as well.
    """
    head = _ENCODER.encode(
        _BatchHeader(BATCH_VERSION, BATCH_KIND, sender, domain, len(members), signer is not None)
    )
    frames: list[Any] = [topic(domain, BATCH_KIND, hops), head]
    for member in members:
        frames.extend(member[1:])
    if signer is not None:
        frames.append(signer(frames[1:]))
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
    batch signature (``verify``), then every member as :func:`decode` checks a single message,
    and that it belongs in this batch. Raises :class:`ProtocolError` only; errors after the
    signature carry ``author``. Dedup and age are the caller's, per member.
    """
    n_frames = len(frames)
    if n_frames < 3:
        raise ProtocolError(Reason.BAD_BATCH, f"{n_frames} frames")
    domain, kind, _ = topic_of(frames[0], limits)
    if kind != BATCH_KIND:
        raise ProtocolError(Reason.BAD_BATCH, f"topic kind {kind!r:.40}")
    raw = frames[1] if type(frames[1]) is bytes else memoryview(frames[1])
    if len(raw) > limits.max_header_bytes:
        raise ProtocolError(Reason.FRAME_TOO_LARGE, f"batch header of {len(raw)} bytes")
    try:
        h = _HEADER.decode(raw)
    except (msgspec.DecodeError, RecursionError) as exc:
        raise ProtocolError(Reason.BAD_HEADER, f"batch header: {exc}") from None
    if not PROTOCOL_MIN <= h.v <= PROTOCOL_MAX or h.v < BATCH_VERSION:
        raise ProtocolError(Reason.UNKNOWN_VERSION, f"batch v={h.v!r:.20}")
    if h.k != BATCH_KIND or h.d != domain:
        raise ProtocolError(Reason.TOPIC_MISMATCH, f"topic {domain}/batch, header {h.d:.40}/{h.k:.40}")
    if h.m > limits.max_batch:
        raise ProtocolError(Reason.TOO_MANY_FRAMES, f"batch of {h.m} messages")
    per = 2 if h.g else 1
    if h.m < 1 or n_frames != 2 + h.m * per + h.g:
        raise ProtocolError(Reason.BAD_BATCH, f"{n_frames} frames for {h.m} members, g={h.g}")
    sender = h.s
    signature = None
    if h.g:
        if len(memoryview(frames[-1])) != _SIGNATURE:
            raise ProtocolError(Reason.BAD_SIGNATURE, "batch signature is not 64 bytes")
        signature = bytes(memoryview(frames[-1]))
    if verify is not None:
        verify(sender, frames[1:-1] if h.g else frames[1:], signature)
    members: list[Envelope] = []
    try:
        for i in range(2, 2 + h.m * per, per):
            member = decode([frames[0], *frames[i : i + per]], limits, member=True)
            if member.sender != sender or member.body.ARRAYS or member.kind in UNBATCHED_KINDS:
                raise ProtocolError(
                    Reason.BAD_BATCH,
                    f"member {member.sender:.40}#{member.seq} ({member.kind}) in {sender}'s batch",
                )
            if (member.signature is not None) != h.g:
                raise ProtocolError(Reason.BAD_BATCH, "a member's signed flag differs from its batch's")
            members.append(member)
    except ProtocolError as exc:
        exc.author = sender
        raise
    return sender, members
