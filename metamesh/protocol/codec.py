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
from metamesh.protocol import _fields as f
from metamesh.protocol.arrays import check_finite, describe, from_frame
from metamesh.protocol.envelope import PROTOCOL_MAX, PROTOCOL_MIN, Envelope, is_domain, topic
from metamesh.protocol.kinds import KINDS, ArrayTable
from metamesh.protocol.limits import LAN, Limits

__all__ = ["Signer", "decode", "encode", "relay_frames", "signed_parts"]

#: Signs the bytes of ``signed_parts`` and returns the signature.
Signer = Callable[[Sequence[Any]], bytes]


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


def _parse_topic(raw: Any, limits: Limits) -> tuple[str, str, int]:
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
    return domain, kind, hops


def decode(frames: Sequence[Any], limits: Limits = LAN) -> Envelope:
    """Validate and decode one received multipart message.

    ``frames`` may be ``bytes`` or ZeroMQ frames received with ``copy=False``;
    the decoded arrays are read-only views of them. Raises ProtocolError only.
    """
    if len(frames) < 2:
        raise ProtocolError(Reason.BAD_FRAMES, f"{len(frames)} frames")
    if len(frames) > limits.max_arrays + 3:
        raise ProtocolError(Reason.TOO_MANY_FRAMES, f"{len(frames)} frames")
    for frame in frames:
        if _nbytes(frame) > limits.max_frame_bytes:
            raise ProtocolError(Reason.FRAME_TOO_LARGE, f"{_nbytes(frame)} bytes")
    domain, kind, hops = _parse_topic(frames[0], limits)
    if _nbytes(frames[1]) > limits.max_header_bytes:
        raise ProtocolError(Reason.FRAME_TOO_LARGE, f"header of {_nbytes(frames[1])} bytes")
    try:
        header = msgpack.unpackb(
            _view(frames[1]),
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
    version = header.get("v")
    if type(version) is not int or not PROTOCOL_MIN <= version <= PROTOCOL_MAX:
        raise ProtocolError(Reason.UNKNOWN_VERSION, f"{version!r:.20}")
    cls = KINDS.get(kind)
    if cls is None:
        raise ProtocolError(Reason.UNKNOWN_KIND, f"{kind!r:.40}")
    if header.get("k") != kind or header.get("d") != domain:
        raise ProtocolError(
            Reason.TOPIC_MISMATCH,
            f"topic {domain}/{kind}, header {header.get('d')!r:.40}/{header.get('k')!r:.40}",
        )
    sender = f.name(header, "s")
    seq = f.integer(header, "n")
    created = header.get("t")
    if type(created) is not float or not math.isfinite(created) or created < 0:
        raise f.bad("t", created)
    signed = header.get("g", False)
    if type(signed) is not bool:
        raise f.bad("g", signed)
    descriptors = header.get("a", [])
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
        arr = from_frame(descriptor, frames[2 + i], limits)
        total += arr.size
        if total > limits.max_total_elements:
            raise ProtocolError(Reason.TOO_MANY_ELEMENTS, f"{total} elements in all")
        if limits.check_values:
            check_finite(arr)
        arrays.append(arr)
    payload = f.get(header, "p")
    if type(payload) is not dict:
        raise f.bad("p", payload)
    table = ArrayTable(arrays)
    body = cls.unpack(payload, table, limits)
    table.check_all_taken()
    signature = None
    if signed:
        signature = bytes(_view(frames[-1]))
        if len(signature) != 64:
            raise ProtocolError(Reason.BAD_SIGNATURE, f"{len(signature)}-byte signature")
    return Envelope(
        sender=sender,
        seq=seq,
        domain=domain,
        body=body,
        created=created,
        hops=hops,
        reply_to=f.opt_integer(header, "r"),
        version=version,
        signature=signature,
        raw=tuple(frames[1:]),
    )
