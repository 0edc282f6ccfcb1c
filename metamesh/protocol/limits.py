"""Explicit size limits for everything a peer may send us.

Every bound a decoder enforces lives here, so an operator can read (and tune)
the whole attack surface in one place. ``LAN`` suits hosts on a trusted
network with models of a few hundred MB; ``EDGE`` suits Raspberry-Pi class
devices that relay Q-tables, insights and small deltas.
"""

from __future__ import annotations

from dataclasses import dataclass, replace

from metamesh.protocol._fields import DTYPE_CODES

__all__ = ["ALLOWED_DTYPES", "EDGE", "LAN", "Limits"]

#: Array element types allowed on the wire, by their little-endian numpy string
#: (``_fields.DType``). Nothing that needs an object, a pointer or pickle can be expressed.
ALLOWED_DTYPES: frozenset[str] = DTYPE_CODES


@dataclass(frozen=True, slots=True, kw_only=True)
class Limits:
    """Bounds on one received message; anything past them is rejected and counted."""

    max_frame_bytes: int = 256 * 1024 * 1024
    """Largest single frame; also set as ZeroMQ's ``MAXMSGSIZE`` on every socket."""
    max_header_bytes: int = 256 * 1024
    max_arrays: int = 1024
    max_array_elements: int = 64 * 1024 * 1024
    max_total_elements: int = 64 * 1024 * 1024
    max_ndim: int = 8
    max_str_len: int = 16 * 1024
    max_list_len: int = 65_536
    max_map_len: int = 65_536
    max_hops: int = 16
    max_batch: int = 256
    """Messages in one batch frame (PROTOCOL.md section 2.2); senders put at most 64."""
    max_plain_depth: int = 6
    allowed_dtypes: frozenset[str] = ALLOWED_DTYPES
    check_values: bool = True
    """Scan floating arrays for NaN/inf on decode (a read of the data, no copy)."""

    def with_(self, **changes: object) -> Limits:
        """A copy with some limits changed (profiles are small deltas of the default)."""
        return replace(self, **changes)  # type: ignore[arg-type]


LAN = Limits()
EDGE = Limits(
    max_frame_bytes=16 * 1024 * 1024,
    max_header_bytes=64 * 1024,
    max_arrays=128,
    max_array_elements=4 * 1024 * 1024,
    max_total_elements=4 * 1024 * 1024,
    max_list_len=4096,
    max_map_len=4096,
    max_batch=64,
)
