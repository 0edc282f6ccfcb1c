"""Readers for header and body fields that turn bad peer data into ``ProtocolError``.

Each takes the decoded map and a key; none asserts, all report which key was
missing or mistyped so a node can count and log it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol.limits import Limits

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
_MISSING = object()


def get(p: Mapping[str, Any], key: str) -> Any:
    value = p.get(key, _MISSING)
    if value is _MISSING:
        raise ProtocolError(Reason.MISSING_FIELD, key)
    return value


def bad(key: str, value: Any) -> ProtocolError:
    return ProtocolError(Reason.BAD_FIELD, f"{key}={value!r:.60}")


def integer(p: Mapping[str, Any], key: str, *, lo: int = 0, hi: int = 2**63 - 1) -> int:
    value = get(p, key)
    if type(value) is not int or not lo <= value <= hi:
        raise bad(key, value)
    return value


def opt_integer(p: Mapping[str, Any], key: str, *, lo: int = 0) -> int | None:
    value = p.get(key)
    if value is None:
        return None
    if type(value) is not int or value < lo:
        raise bad(key, value)
    return value


def number(p: Mapping[str, Any], key: str, *, lo: float = -math.inf) -> float:
    value = get(p, key)
    if type(value) is int:
        value = float(value)
    if type(value) is not float or not math.isfinite(value) or value < lo:
        raise bad(key, value)
    return value


def opt_number(p: Mapping[str, Any], key: str, *, lo: float = -math.inf) -> float | None:
    if p.get(key) is None:
        return None
    return number(p, key, lo=lo)


def text(p: Mapping[str, Any], key: str, limits: Limits, *, default: str | None = None) -> str:
    value = p.get(key, _MISSING)
    if value is _MISSING:
        if default is None:
            raise ProtocolError(Reason.MISSING_FIELD, key)
        return default
    if type(value) is not str or len(value) > limits.max_str_len:
        raise bad(key, value)
    return value


def name(p: Mapping[str, Any], key: str) -> str:
    """An identifier: node ids, expert and tensor names, labels."""
    value = get(p, key)
    if type(value) is not str or not NAME_RE.match(value):
        raise bad(key, value)
    return value


def names(p: Mapping[str, Any], key: str, limits: Limits, *, default: bool = False) -> tuple[str, ...]:
    value = p.get(key, [] if default else _MISSING)
    if value is _MISSING:
        raise ProtocolError(Reason.MISSING_FIELD, key)
    if type(value) is not list or len(value) > limits.max_list_len:
        raise bad(key, value)
    for item in value:
        if type(item) is not str or not NAME_RE.match(item):
            raise bad(key, item)
    return tuple(value)


def labels(p: Mapping[str, Any], key: str, limits: Limits) -> tuple[str, ...]:
    """Free-text labels (states, actions): any short strings, no duplicates."""
    value = get(p, key)
    if type(value) is not list or len(value) > limits.max_list_len:
        raise bad(key, value)
    for item in value:
        if type(item) is not str or not 0 < len(item) <= 256:
            raise bad(key, item)
    if len(set(value)) != len(value):
        raise bad(key, "duplicate labels")
    return tuple(value)


def number_map(
    p: Mapping[str, Any], key: str, *, integers: bool = False, lo: float = -math.inf,
    default: bool = False,
) -> dict[str, Any]:
    value = p.get(key, {} if default else _MISSING)
    if value is _MISSING:
        raise ProtocolError(Reason.MISSING_FIELD, key)
    if type(value) is not dict:
        raise bad(key, value)
    out: dict[str, Any] = {}
    for k, v in value.items():
        if type(k) is not str or not NAME_RE.match(k):
            raise bad(key, k)
        if integers:
            if type(v) is not int or v < lo:
                raise bad(f"{key}.{k}", v)
            out[k] = v
            continue
        num = float(v) if type(v) is int else v
        if type(num) is not float or not math.isfinite(num) or num < lo:
            raise bad(f"{key}.{k}", v)
        out[k] = num
    return out


def plain(value: Any, key: str, limits: Limits, depth: int = 0) -> Any:
    """Plain data (maps with string keys, lists, scalars) of bounded depth."""
    if depth > limits.max_plain_depth:
        raise bad(key, "nested too deep")
    if value is None or type(value) in (bool, int, str):
        return value
    if type(value) is float:
        if not math.isfinite(value):
            raise bad(key, value)
        return value
    if type(value) is list:
        return [plain(v, key, limits, depth + 1) for v in value]
    if type(value) is dict:
        for k in value:
            if type(k) is not str:
                raise bad(key, k)
        return {k: plain(v, key, limits, depth + 1) for k, v in value.items()}
    raise bad(key, value)
