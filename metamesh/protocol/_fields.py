"""The field types every kind is made of, with their bounds, checked in C by msgspec.

Each is an ``Annotated`` type whose ``msgspec.Meta`` states the range or form
PROTOCOL.md section 4 gives it; the decoder rejects anything else before a
message object exists. What a field type cannot say (equal lengths, unique
names, finite sums, an IP literal) is checked by the kind's ``check``.
"""

from __future__ import annotations

import functools
import math
import re
from collections.abc import Iterable
from typing import Annotated, Any, Literal

from msgspec import Meta

from metamesh.protocol.endpoints import parse_tcp

__all__ = [
    "DTYPE_CODES",
    "MAX_ITEMS",
    "NUMBER_MAX",
    "Count",
    "DType",
    "Endpoint",
    "Label",
    "Labels",
    "Name",
    "Names",
    "NonNegative",
    "Number",
    "Text",
    "is_endpoint",
    "is_name",
    "names_ok",
    "plain",
    "unique",
]

#: The largest magnitude of a number: 65,536 of them still sum to a finite float64, so
#: no list or map of numbers needs its sum checked.
NUMBER_MAX = 1e300
_NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
_KNOWN_NAMES: set[str] = set()
_KNOWN_NAMES_MAX = 16_384

#: Node ids, expert, tensor and metric names: 1 to 128 of ``[A-Za-z0-9_.:-]``. The length is
#: checked in C; the characters by ``names_ok`` in the kind's check, through a bounded memo,
#: since a regular expression per name (``Meta(pattern=...)``) costs 0.3 us from C, 3 us an
#: insight: the codec's whole budget. The same few names arrive in every message.
Name = Annotated[str, Meta(min_length=1, max_length=128)]
#: The longest list or map in a header (``Limits.max_list_len`` of LAN; lower profiles check again).
MAX_ITEMS = 65_536
Names = Annotated[tuple[Name, ...], Meta(max_length=MAX_ITEMS)]
#: Free-text labels: Q-table states and actions.
Label = Annotated[str, Meta(min_length=1, max_length=256)]
#: States or actions of a Q-table, unique (the kind's check).
Labels = Annotated[tuple[Label, ...], Meta(max_length=MAX_ITEMS)]
#: Any string of the protocol's string limit.
Text = Annotated[str, Meta(max_length=16 * 1024)]
#: A non-negative integer below 2**63.
Count = Annotated[int, Meta(ge=0, le=2**63 - 1)]
#: A float of magnitude at most ``NUMBER_MAX``; an int is accepted. NaN and infinities fail it.
Number = Annotated[float, Meta(ge=-NUMBER_MAX, le=NUMBER_MAX)]
NonNegative = Annotated[float, Meta(ge=0.0, le=NUMBER_MAX)]
#: ``tcp://IP:PORT``; the kind's check parses the address (host names are refused).
Endpoint = Annotated[str, Meta(min_length=6, max_length=256, pattern=r"^tcp://")]

#: Array element types allowed on the wire, by numpy's little-endian notation.
DType = Literal["|b1", "|i1", "|u1", "<i2", "<u2", "<i4", "<u4", "<i8", "<u8", "<f2", "<f4", "<f8"]
DTYPE_CODES: frozenset[str] = frozenset(DType.__args__)  # type: ignore[attr-defined]


def is_name(value: Any) -> bool:
    """An identifier as ``Name`` allows it: node ids, expert and tensor names. Memoised."""
    if type(value) is not str:
        return False
    if value in _KNOWN_NAMES:
        return True
    if _NAME_RE.match(value) is None:
        return False
    if len(_KNOWN_NAMES) < _KNOWN_NAMES_MAX:
        _KNOWN_NAMES.add(value)
    return True


def names_ok(value: str | Iterable[str]) -> bool:
    """A name, or every name of a list or every key of a map: one set comparison when all are known."""
    if type(value) is str:
        return is_name(value)
    return _KNOWN_NAMES.issuperset(value) or all(is_name(k) for k in value)


@functools.lru_cache(maxsize=4096)
def is_endpoint(value: str) -> bool:
    """Cached: a heartbeat carries up to 32 peers' endpoints, the same ones second after second."""
    try:
        parse_tcp(value)
    except ValueError:
        return False
    return True


def unique(items: Iterable[Any]) -> bool:
    seq = items if isinstance(items, list | tuple) else list(items)
    return len(set(seq)) == len(seq)


def plain(value: Any, depth: int) -> bool:
    """Plain data (string-keyed maps, lists, nil, bool, int, finite float, str) at most ``depth`` deep."""
    if depth < 0:
        return False
    if value is None or type(value) in (bool, int, str):
        return True
    if type(value) is float:
        return math.isfinite(value)
    if type(value) is list:
        return all(plain(v, depth - 1) for v in value)
    if type(value) is dict:
        return all(type(k) is str and plain(v, depth - 1) for k, v in value.items())
    return False
