"""Encode envelopes to ZeroMQ frames and decode untrusted frames back, with msgspec.

``decode`` validates everything before it returns, in this order, so that a
duplicate costs only a header parse and nothing unauthenticated is read past
the header: frame count and sizes, topic, header (types and ranges checked in
C by msgspec), protocol version, kind, then ``skip`` and ``verify``, then the
array descriptors against their frames, (by default) finite floating values,
the body (in C again) and the kind's own rules. It raises only
:class:`~metamesh.errors.ProtocolError`. Array data is never copied:
encoding hands numpy's buffer to ZeroMQ, decoding wraps the received frame.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Annotated, Any, Union

import msgspec
import numpy as np

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol._fields import _KNOWN_NAMES, Count, DType, Name, NonNegative, is_name
from metamesh.protocol.arrays import _OUT, BAD_REF, check_finite, from_frame, put, resolve, take
from metamesh.protocol.envelope import PROTOCOL_MAX, PROTOCOL_MIN, Envelope, is_domain, topic
from metamesh.protocol.kinds import KINDS, Body
from metamesh.protocol.limits import LAN, Limits
from metamesh.protocol.proof import Verifier, check_proof

__all__ = [
    "Signer",
    "Verifier",
    "decode",
    "encode",
    "relay_frames",
    "signed_parts",
    "topic_of",
]

#: Signs the bytes of ``signed_parts`` and returns the signature.
Signer = Callable[[Sequence[Any]], bytes]

_Shape = Annotated[tuple[Annotated[int, msgspec.Meta(ge=0)], ...], msgspec.Meta(max_length=8)]
_Descriptors = tuple[tuple[DType, _Shape], ...]


class _Envelope(msgspec.Struct, frozen=True, gc=False):
    """The header's envelope fields (PROTOCOL.md section 3), common to every kind."""

    v: int
    s: Name
    n: Count
    t: NonNegative
    d: str


def _header(cls: type[Body]) -> type[msgspec.Struct]:
    """The header of one kind: the envelope plus its typed body, tagged ``k`` = the kind."""
    fields: list[tuple[str, Any, Any] | tuple[str, Any]] = [
        ("p", cls),
        ("a", _Descriptors, ()),
        ("r", Count | None, None),
        ("g", bool, False),
    ]
    return msgspec.defstruct(
        f"{cls.__name__}Header",
        fields,
        bases=(_Envelope,),
        tag_field="k",
        tag=cls.KIND,
        frozen=True,
        gc=False,
    )


class _Loose(_Envelope, frozen=True):
    """The header with the body unread: how a refused header's reason (and author) is found."""

    k: str
    p: msgspec.Raw
    a: msgspec.Raw = msgspec.Raw(b"\x90")
    r: Count | None = None
    g: bool = False


class _Version(msgspec.Struct):
    v: Any = None


class _Out(msgspec.Struct, omit_defaults=True):
    """The header as sent, in v1's key order; ``a`` fills while ``p`` is encoded."""

    v: int
    k: str
    s: str
    n: int
    t: float
    d: str
    p: Body
    a: list[Any] = msgspec.field(default_factory=list)
    r: int | None = None
    g: bool = False


_HEADERS = {kind: _header(cls) for kind, cls in KINDS.items()}
_KIND_OF = {header: kind for kind, header in _HEADERS.items()}
#: The one decoder of every header: a tagged union by kind, bodies and all, checked in C.
_DECODER: msgspec.msgpack.Decoder[Any] = msgspec.msgpack.Decoder(
    Union[tuple(_HEADERS.values())],  # noqa: UP007  (a union built at run time)
    dec_hook=take,
)
_LOOSE = msgspec.msgpack.Decoder(_Loose)
_VERSION = msgspec.msgpack.Decoder(_Version)
_ENCODER = msgspec.msgpack.Encoder(enc_hook=put)
_DECODE_ERRORS = (msgspec.DecodeError, RecursionError)
_TOPIC_BYTES: dict[tuple[str, str, int], bytes] = {}


def encode(env: Envelope, *, signer: Signer | None = None, by_batch: bool = False) -> list[Any]:
    """The frames of ``env``, ready for ``send_multipart(frames, copy=False)``.

    Arrays are passed as numpy arrays (buffer protocol), not copied. ``by_batch``: a member
    of a signed batch (``metamesh.protocol.batch``), ``g`` set but no signature frame: the
    batch signs it (or, sent alone after all, ``signer(frames[1:])`` appended).
    """
    body = env.body
    arrays: list[np.ndarray] = []
    descriptors: list[Any] = []
    header = _Out(
        env.version, body.KIND, env.sender, env.seq, env.created, env.domain, body,
        descriptors, env.reply_to, signer is not None or by_batch,
    )  # fmt: skip
    if body.ARRAYS:  # ``put`` fills ``arrays`` and ``descriptors`` while ``p`` is encoded, before ``a``
        token = _OUT.set((arrays, descriptors))
        try:
            head = _ENCODER.encode(header)
        finally:
            _OUT.reset(token)
    else:
        head = _ENCODER.encode(header)
    key = (env.domain, body.KIND, env.hops)
    name = _TOPIC_BYTES.get(key)
    if name is None:
        name = topic(*key)
        if len(_TOPIC_BYTES) < _TOPICS_MAX:
            _TOPIC_BYTES[key] = name
    frames: list[Any] = [name, head, *arrays]
    if signer is not None and not by_batch:
        frames.append(signer(frames[1:]))
    return frames


def signed_parts(env: Envelope) -> list[Any]:
    """The frames an origin signature covers: the header and every array frame (for a
    proved batch member, the batch header)."""
    if env.signature is not None and len(env.raw) == 3 and not env.body.ARRAYS:
        return [env.raw[1]]
    return list(env.raw[:-1] if env.signature is not None else env.raw)


def relay_frames(env: Envelope) -> list[Any]:
    """Frames to forward a received message one hop further, untouched but the topic."""
    return [topic(env.domain, env.body.KIND, env.hops - 1), *env.raw]


def _view(frame: Any) -> Any:
    return frame if type(frame) is bytes else memoryview(frame)


def _nbytes(frame: Any) -> int:
    return len(frame) if type(frame) is bytes else memoryview(frame).nbytes


#: Topic frame -> domain, kind, hops and that kind's header struct (None for an unknown kind).
_TOPICS: dict[bytes, tuple[str, str, int, Any]] = {}
_TOPICS_MAX = 4096


def _parse_topic(raw: Any, limits: Limits) -> tuple[str, str, int]:
    """Domain, kind and hops of a topic frame not seen before; memoised, as a node sees few topics."""
    data = bytes(_view(raw))
    parts = data.split(b"/")
    if len(parts) != 3 or len(data) > 128:
        raise ProtocolError(Reason.BAD_TOPIC, f"{data!r:.80}")
    try:
        domain, kind, hops_text = (p.decode("ascii") for p in parts)
        hops = int(hops_text)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ProtocolError(Reason.BAD_TOPIC, f"{data!r:.80}") from exc
    if not is_domain(domain) or not hops_text.isdigit() or hops > limits.max_hops:
        raise ProtocolError(Reason.BAD_TOPIC, f"{data!r:.80}")
    if len(_TOPICS) < _TOPICS_MAX:
        _TOPICS[data] = (domain, kind, hops, _HEADERS.get(kind))
    return domain, kind, hops


def decode(
    frames: Sequence[Any],
    limits: Limits = LAN,
    *,
    skip: Callable[[str, int], bool] | None = None,
    verify: Verifier | None = None,
    member: bool = False,
    proof: tuple[Any, Any, bytes] | None = None,
) -> Envelope:
    """Validate and decode one received multipart message.

    ``frames`` may be ``bytes`` or ZeroMQ frames received with ``copy=False``;
    the decoded arrays are read-only views of them. Raises ProtocolError only.
    ``skip(sender, seq)`` is asked once the header is valid, before the body
    and arrays are read: True raises ``DUPLICATE``, so a relayed copy of a
    large delta costs a header parse, not a pass over its arrays.
    ``verify`` checks the origin signature next, before the body and arrays
    are read; errors after that point carry ``author``. ``member``: a batch
    member under its batch's topic (``metamesh.protocol.batch``), of the kind its header names;
    ``proof``: its batch's header and signature frames and the signature, already checked,
    when the batch is signed. Four frames, a header with ``g`` and no ``a``, are a proved member alone
    (``metamesh.protocol.proof``), authenticated by its proof.
    """
    n_frames = len(frames)
    if n_frames < 2:
        raise ProtocolError(Reason.BAD_FRAMES, f"{n_frames} frames")
    if n_frames > limits.max_arrays + 3:
        raise ProtocolError(Reason.TOO_MANY_FRAMES, f"{n_frames} frames")
    head = frames[1]
    if type(head) is not bytes:
        head = memoryview(head)
    if len(head) > limits.max_header_bytes:  # a ZeroMQ frame's memoryview is of bytes
        raise ProtocolError(Reason.FRAME_TOO_LARGE, f"header of {len(head)} bytes")
    raw = frames[0]
    known = _TOPICS.get(raw if type(raw) is bytes else bytes(memoryview(raw)))
    if known is not None and known[2] <= limits.max_hops:
        domain, kind, hops, expected = known
    else:
        domain, kind, hops = _parse_topic(raw, limits)
        expected = _HEADERS.get(kind)
    try:
        h = _DECODER.decode(head)
    except msgspec.ValidationError as exc:
        raise _refused(
            frames, head, domain, None if member else kind, exc, skip=skip, verify=verify,
            limits=limits, member=member,
        ) from None  # fmt: skip
    except _DECODE_ERRORS as exc:
        raise ProtocolError(Reason.BAD_HEADER, f"{type(exc).__name__}: {exc}") from None
    sender, seq, signed = h.s, h.n, h.g
    if not (PROTOCOL_MIN <= h.v <= PROTOCOL_MAX and (member or type(h) is expected) and h.d == domain) or (
        sender not in _KNOWN_NAMES and not is_name(sender)
    ):
        _check_envelope(h, _KIND_OF[type(h)], domain, _KIND_OF[type(h)] if member else kind)
    if skip is not None and skip(sender, seq):
        raise ProtocolError(Reason.DUPLICATE, f"{sender}#{seq}")
    body: Body = h.p
    kept = (frames[1],) if n_frames == 2 else tuple(frames[1:])
    if member:
        signature = _member(signed, proof)
        if proof is not None:
            kept = (frames[1], proof[0], proof[1])
    elif signed and n_frames == 4 and not h.a:
        signature = check_proof(
            frames[1], frames[2], frames[3], sender, domain=domain, limits=limits, verify=verify
        )
        if body.ARRAYS:
            raise ProtocolError(Reason.BAD_FRAMES, f"a proved {body.KIND} without its arrays")
        n_frames = 3  # the proof stands in for the signature frame
    else:
        signature = _verify(frames, sender, signed, verify) if signed or verify is not None else None
    try:
        if body.ARRAYS or n_frames > 2 + signed:
            resolve(body, _arrays(frames, h.a, signed, limits))
        body.check(limits)
    except ProtocolError as exc:
        exc.author = sender
        raise
    return Envelope(sender, seq, domain, body, h.t, hops, h.r, h.v, signature, kept)


def topic_of(raw: Any, limits: Limits = LAN) -> tuple[str, str, int]:
    """Domain, kind and hops of a received topic frame; raises ``bad_topic``."""
    known = _TOPICS.get(raw if type(raw) is bytes else bytes(memoryview(raw)))
    if known is not None and known[2] <= limits.max_hops:
        return known[0], known[1], known[2]
    return _parse_topic(raw, limits)


def _check_envelope(h: Any, k: Any, domain: str, kind: str) -> None:
    if not PROTOCOL_MIN <= h.v <= PROTOCOL_MAX:
        raise ProtocolError(Reason.UNKNOWN_VERSION, f"{h.v!r:.20}")
    if kind not in KINDS:
        raise ProtocolError(Reason.UNKNOWN_KIND, f"{kind!r:.40}")
    if k != kind or h.d != domain:
        raise ProtocolError(Reason.TOPIC_MISMATCH, f"topic {domain}/{kind}, header {h.d:.40}/{k!r:.40}")
    if not is_name(h.s):
        raise ProtocolError(Reason.BAD_FIELD, f"s={h.s!r:.60}")


def _member(signed: bool, proof: tuple[Any, Any, bytes] | None) -> bytes | None:
    """A batch member's signature: its batch's (checked by ``decode_batch``), or none if unsigned."""
    if signed != (proof is not None):
        raise ProtocolError(Reason.BAD_BATCH, "a member's signed flag differs from its batch's")
    return None if proof is None else proof[2]


def _verify(frames: Sequence[Any], sender: str, signed: bool, verify: Verifier | None) -> bytes | None:
    signature = None
    if signed:
        if len(frames) < 3 or _nbytes(frames[-1]) != 64:
            raise ProtocolError(Reason.BAD_SIGNATURE, f"{_nbytes(frames[-1])}-byte signature")
        signature = bytes(_view(frames[-1]))
    if verify is not None:
        verify(sender, frames[1:-1] if signed else frames[1:], signature)
    return signature


def _refused(
    frames: Sequence[Any],
    head: Any,
    domain: str,
    kind: str | None,
    exc: msgspec.ValidationError,
    *,
    skip: Callable[[str, int], bool] | None,
    verify: Verifier | None,
    limits: Limits,
    member: bool,
) -> ProtocolError:
    """Why msgspec refused a header, found in the order of a valid message's checks.

    The envelope is read again with the body left raw: a version this code does
    not speak, a bad envelope, a duplicate or a bad signature is reported as
    such, and charged to nobody; only a refused body or array list is the
    (verified) author's fault.
    """
    text = str(exc)
    try:
        h = _LOOSE.decode(head)
    except msgspec.ValidationError as loose:
        try:
            version = _VERSION.decode(head).v
        except (msgspec.ValidationError, *_DECODE_ERRORS):
            return ProtocolError(Reason.BAD_HEADER, str(loose))
        if type(version) is not int or not PROTOCOL_MIN <= version <= PROTOCOL_MAX:
            return ProtocolError(Reason.UNKNOWN_VERSION, f"{version!r:.20}")
        if str(loose).startswith("Expected `object`") or "in `$`" in str(loose):
            return ProtocolError(Reason.BAD_HEADER, str(loose))  # not a map with string keys
        return _field_error(str(loose))
    except _DECODE_ERRORS as broken:
        return ProtocolError(Reason.BAD_HEADER, f"{type(broken).__name__}: {broken}")
    _check_envelope(h, h.k, domain, h.k if kind is None else kind)
    if skip is not None and skip(h.s, h.n):
        return ProtocolError(Reason.DUPLICATE, f"{h.s}#{h.n}")
    if not member:  # a member's batch was authenticated whole
        if h.g and len(frames) == 4 and bytes(h.a) == b"\x90":
            check_proof(frames[1], frames[2], frames[3], h.s, domain=domain, limits=limits, verify=verify)
        else:
            _verify(frames, h.s, h.g, verify)
    if "`$.a" in text:
        reason = Reason.BAD_DTYPE if "][0]`" in text else Reason.BAD_ARRAY
    elif BAD_REF in text:
        reason = Reason.BAD_ARRAY
    else:
        reason = _field_error(text).reason
    return ProtocolError(reason, text, author=h.s)


def _field_error(text: str) -> ProtocolError:
    if text.startswith("Object missing required field"):
        return ProtocolError(Reason.MISSING_FIELD, text)
    return ProtocolError(Reason.BAD_FIELD, text)


def _arrays(frames: Sequence[Any], descriptors: Any, signed: bool, limits: Limits) -> list[np.ndarray]:
    n_arrays = len(frames) - 2 - signed
    if max(n_arrays, len(descriptors)) > limits.max_arrays:
        raise ProtocolError(Reason.TOO_MANY_FRAMES, f"{len(descriptors)} arrays, {n_arrays} frames")
    if len(descriptors) != n_arrays:
        raise ProtocolError(
            Reason.BAD_FRAMES, f"{len(descriptors)} arrays declared, {max(n_arrays, 0)} frames"
        )
    arrays = []
    total = 0
    for (code, shape), frame in zip(descriptors, frames[2 : 2 + n_arrays], strict=True):
        if _nbytes(frame) > limits.max_frame_bytes:
            raise ProtocolError(Reason.FRAME_TOO_LARGE, f"{_nbytes(frame)} bytes")
        arr = from_frame(code, shape, frame, limits)
        total += arr.size
        if total > limits.max_total_elements:
            raise ProtocolError(Reason.TOO_MANY_ELEMENTS, f"{total} elements in all")
        if limits.check_values:
            check_finite(arr)
        arrays.append(arr)
    return arrays
