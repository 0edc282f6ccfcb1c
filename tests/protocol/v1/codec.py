"""Encode envelopes to ZeroMQ frames and decode untrusted frames back.

``decode`` validates everything before a body object exists: frame count and
sizes, topic, header fields, protocol version, kind, array descriptors against
their frames, and (by default) that floating arrays are finite. It raises only
:class:`~metamesh.errors.ProtocolError`. Array data is never copied: encoding
hands numpy's buffer to ZeroMQ, decoding wraps the received frame.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import msgpack
import numpy as np

from metamesh.errors import ProtocolError, Reason
from tests.protocol.v1 import _fields as f
from tests.protocol.v1.arrays import check_finite, describe, from_frame
from tests.protocol.v1.envelope import PROTOCOL_MAX, PROTOCOL_MIN, Envelope, is_domain, topic
from tests.protocol.v1.kinds import KINDS, ArrayTable
from tests.protocol.v1.limits import LAN, Limits

__all__ = ["Signer", "Verifier", "decode", "encode", "relay_frames", "signed_parts"]

#: Signs the bytes of ``signed_parts`` and returns the signature.
Signer = Callable[[Sequence[Any]], bytes]
#: ``verify(sender, signed_parts, signature_or_None)`` raises ProtocolError unless the author signed them.
Verifier = Callable[[str, Sequence[Any], "bytes | None"], None]


def encode(env: Envelope, *, signer: Signer | None = None) -> list[Any]:
    """The frames of ``env``, ready for ``send_multipart(frames, copy=False)``.

    Arrays are passed as numpy arrays (buffer protocol), not copied.
    """
    arrays: list[np.ndarray] = []
    payload = env.body.pack(arrays)
    header: dict[str, Any] = {
        "v": env.version,
        "k": env.body.KIND,
        "s": env.sender,
        "n": env.seq,
        "t": env.created,
        "d": env.domain,
        "p": payload,
    }
    if arrays:
        header["a"] = [describe(a) for a in arrays]
    if env.reply_to is not None:
        header["r"] = env.reply_to
    if signer is not None:
        header["g"] = True
    head = msgpack.packb(header, use_bin_type=True)
    frames: list[Any] = [topic(env.domain, env.body.KIND, env.hops), head, *arrays]
    if signer is not None:
        frames.append(signer(frames[1:]))
    return frames


def signed_parts(env: Envelope) -> list[Any]:
    """The frames an origin signature covers: the header and every array frame."""
    return list(env.raw[:-1] if env.signature is not None else env.raw)


def relay_frames(env: Envelope) -> list[Any]:
    """Frames to forward a received message one hop further, untouched but the topic."""
    return [topic(env.domain, env.body.KIND, env.hops - 1), *env.raw]


def _view(frame: Any) -> Any:
    return frame if type(frame) is bytes else memoryview(frame)


def _nbytes(frame: Any) -> int:
    return len(frame) if type(frame) is bytes else memoryview(frame).nbytes


_TOPICS: dict[bytes, tuple[str, str, int]] = {}
_TOPICS_MAX = 4096


def _parse_topic(raw: Any, limits: Limits) -> tuple[str, str, int]:
    """Domain, kind and hops of a topic frame; memoised, as a node sees few topics."""
    data = bytes(_view(raw))
    known = _TOPICS.get(data)
    if known is not None and known[2] <= limits.max_hops:
        return known
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
        _TOPICS[data] = (domain, kind, hops)
    return domain, kind, hops


def decode(
    frames: Sequence[Any],
    limits: Limits = LAN,
    *,
    skip: Callable[[str, int], bool] | None = None,
    verify: Verifier | None = None,
) -> Envelope:
    """Validate and decode one received multipart message.

    ``frames`` may be ``bytes`` or ZeroMQ frames received with ``copy=False``;
    the decoded arrays are read-only views of them. Raises ProtocolError only.
    ``skip(sender, seq)`` is asked once the header is valid, before the body
    and arrays are read: True raises ``DUPLICATE``, so a relayed copy of a
    large delta costs a header parse, not a pass over its arrays.
    ``verify`` checks the origin signature next, before the body and arrays
    are read; errors after that point carry ``author``. Written flat on
    purpose: it runs once per received message.
    """
    n_frames = len(frames)
    if n_frames < 2:
        raise ProtocolError(Reason.BAD_FRAMES, f"{n_frames} frames")
    if n_frames > limits.max_arrays + 3:
        raise ProtocolError(Reason.TOO_MANY_FRAMES, f"{n_frames} frames")
    head = _view(frames[1])
    head_size = len(head) if type(head) is bytes else head.nbytes
    if head_size > limits.max_header_bytes:
        raise ProtocolError(Reason.FRAME_TOO_LARGE, f"header of {head_size} bytes")
    domain, kind, hops = _parse_topic(frames[0], limits)
    try:
        header = msgpack.unpackb(
            head,
            raw=False,
            strict_map_key=True,
            max_str_len=limits.max_str_len,
            max_bin_len=limits.max_str_len,
            max_array_len=limits.max_list_len,
            max_map_len=limits.max_map_len,
            max_ext_len=0,
        )
    except (ValueError, TypeError) as exc:
        raise ProtocolError(Reason.BAD_HEADER, f"{type(exc).__name__}: {exc}") from exc
    if type(header) is not dict:
        raise ProtocolError(Reason.BAD_HEADER, f"header is {type(header).__name__}, not a map")
    get = header.get
    version = get("v")
    if type(version) is not int or not PROTOCOL_MIN <= version <= PROTOCOL_MAX:
        raise ProtocolError(Reason.UNKNOWN_VERSION, f"{version!r:.20}")
    cls = KINDS.get(kind)
    if cls is None:
        raise ProtocolError(Reason.UNKNOWN_KIND, f"{kind!r:.40}")
    if get("k") != kind or get("d") != domain:
        raise ProtocolError(
            Reason.TOPIC_MISMATCH, f"topic {domain}/{kind}, header {get('d')!r:.40}/{get('k')!r:.40}"
        )
    sender, seq, created, payload = get("s"), get("n"), get("t"), get("p")
    if not f.is_name(sender):
        raise _field_error(header, "s", sender)
    if type(seq) is not int or not 0 <= seq < 2**63:
        raise _field_error(header, "n", seq)
    if type(created) is not float or not 0.0 <= created < math.inf:
        raise _field_error(header, "t", created)
    if type(payload) is not dict:
        raise _field_error(header, "p", payload)
    if skip is not None and skip(sender, seq):
        raise ProtocolError(Reason.DUPLICATE, f"{sender}#{seq}")
    signed = get("g", False)
    if signed is not False and signed is not True:
        raise f.bad("g", signed)
    signature = None
    if signed:
        if n_frames < 3 or _nbytes(frames[-1]) != 64:
            raise ProtocolError(Reason.BAD_SIGNATURE, f"{_nbytes(frames[-1])}-byte signature")
        signature = bytes(_view(frames[-1]))
    if verify is not None:
        verify(sender, frames[1:-1] if signed else frames[1:], signature)
    try:
        reply_to = get("r")
        if reply_to is not None and (type(reply_to) is not int or reply_to < 0):
            raise f.bad("r", reply_to)
        descriptors = get("a", [])
        arrays = _arrays(frames, descriptors, signed, limits) if descriptors or n_frames > 2 + signed else []
        table = ArrayTable(arrays)
        body = cls.unpack(payload, table, limits)
        if arrays:
            table.check_all_taken()
    except ProtocolError as exc:
        exc.author = sender
        raise
    return Envelope(sender, seq, domain, body, created, hops, reply_to, version, signature, tuple(frames[1:]))


def _field_error(header: dict[str, Any], key: str, value: Any) -> ProtocolError:
    if key not in header:
        return ProtocolError(Reason.MISSING_FIELD, key)
    return f.bad(key, value)


def _arrays(frames: Sequence[Any], descriptors: Any, signed: bool, limits: Limits) -> list[np.ndarray]:
    if type(descriptors) is not list:
        raise f.bad("a", descriptors)
    n_arrays = len(frames) - 2 - signed
    if len(descriptors) != n_arrays:
        raise ProtocolError(
            Reason.BAD_FRAMES, f"{len(descriptors)} arrays declared, {max(n_arrays, 0)} frames"
        )
    arrays = []
    total = 0
    for i, descriptor in enumerate(descriptors):
        frame = frames[2 + i]
        if _nbytes(frame) > limits.max_frame_bytes:
            raise ProtocolError(Reason.FRAME_TOO_LARGE, f"{_nbytes(frame)} bytes")
        arr = from_frame(descriptor, frame, limits)
        total += arr.size
        if total > limits.max_total_elements:
            raise ProtocolError(Reason.TOO_MANY_ELEMENTS, f"{total} elements in all")
        if limits.check_values:
            check_finite(arr)
        arrays.append(arr)
    return arrays
