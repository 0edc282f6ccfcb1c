"""Batch headers, member digests and member proofs (PROTOCOL.md sections 2.2 and 8.1).

A signed batch is signed once, over its header alone, and that header lists the SHA-256
digest of every member's header. A member is kept, served and relayed on its own as its
*proved* form, ``[topic, member header, batch header, batch signature]``: whoever holds it
checks the batch signature and finds the member's digest in the list, so origin
authentication holds for a member however it travels, with one signature for up to
``max_batch`` messages. The digest is the one a message alone is signed over (section
8.1), so this module is also where that digest lives.
"""

from __future__ import annotations

import hashlib
import struct
from collections.abc import Callable, Sequence
from typing import Annotated, Any

import msgspec

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol._fields import Count, Name
from metamesh.protocol.envelope import BATCH_VERSION, PROTOCOL_MAX, PROTOCOL_MIN
from metamesh.protocol.limits import Limits

__all__ = ["BATCH_KIND", "SIGNATURE_BYTES", "BatchHeader", "check_proof", "digest", "read_batch_header"]

#: The kind in a batch's topic and header.
BATCH_KIND = "batch"
SIGNATURE_BYTES = 64
_DOMAIN = b"metamesh-sig-v1\0"  # domain separation: these digests mean nothing elsewhere
_LEN = struct.Struct("<Q")
_ONE_FRAME = _DOMAIN + _LEN.pack(1)
_pack = _LEN.pack
_sha256 = hashlib.sha256

_Digest = Annotated[bytes, msgspec.Meta(min_length=32, max_length=32)]
#: ``verify(sender, signed_parts, signature_or_None)`` raises ProtocolError unless the author signed them.
Verifier = Callable[[str, Sequence[Any], "bytes | None"], None]


def digest(parts: Sequence[Any]) -> bytes:
    """SHA-256 of the frames, each prefixed by its length (no frame boundary is ambiguous)."""
    h = hashlib.sha256(_DOMAIN)
    h.update(_LEN.pack(len(parts)))
    for part in parts:
        if type(part) is bytes:
            h.update(_LEN.pack(len(part)))
            h.update(part)
        else:
            view = memoryview(part)
            h.update(_LEN.pack(view.nbytes))
            h.update(view)
    return h.digest()


def member_digest(header: Any) -> bytes:
    """:func:`digest` of one frame (a member's header), without building a list."""
    raw = header if type(header) is bytes else memoryview(header)
    return _sha256(_ONE_FRAME + _pack(len(raw)) + raw).digest()


class BatchHeader(msgspec.Struct, frozen=True, gc=False):
    """Frame 1 of a batch: author, domain, member count, signed flag and, when signed, digests."""

    v: int
    k: str
    s: Name
    d: str
    m: Count
    g: bool = False
    h: tuple[_Digest, ...] = ()


_HEADER = msgspec.msgpack.Decoder(BatchHeader)


def read_batch_header(raw: Any, domain: str, limits: Limits) -> BatchHeader:
    """A batch header checked alone: size, types, version, kind and domain, member count, digests."""
    if type(raw) is not bytes:
        raw = memoryview(raw)
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
    if h.m < 1 or len(h.h) != (h.m if h.g else 0):
        raise ProtocolError(Reason.BAD_BATCH, f"{h.m} members, {len(h.h)} digests, g={h.g}")
    return h


def signature_of(frame: Any) -> bytes:
    """The 64 bytes of a signature frame; ``bad_signature`` if it is not 64 bytes."""
    raw = frame if type(frame) is bytes else memoryview(frame)
    if len(raw) != SIGNATURE_BYTES:
        raise ProtocolError(Reason.BAD_SIGNATURE, f"{len(raw)}-byte signature")
    return bytes(raw)


def check_proof(
    header: Any,
    batch: Any,
    signature: Any,
    sender: str,
    *,
    domain: str,
    limits: Limits,
    verify: Verifier | None,
) -> bytes:
    """Check a proved member: its batch header, by its author in its domain and signed, lists
    its digest; then (``verify``) the batch signature. Returns the signature; raises
    ProtocolError (a proof that does not authenticate its member is ``bad_signature``)."""
    sig = signature_of(signature)
    h = read_batch_header(batch, domain, limits)
    if not h.g or h.s != sender:
        raise ProtocolError(Reason.BAD_SIGNATURE, f"{sender}: proof by {h.s:.40}, g={h.g}")
    if member_digest(header) not in h.h:
        raise ProtocolError(Reason.BAD_SIGNATURE, f"{sender}: member digest not in its proof")
    if verify is not None:
        verify(sender, (batch,), sig)
    return sig
