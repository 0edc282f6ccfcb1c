"""Readers for header and body fields that turn bad peer data into ``ProtocolError``.

Each takes the decoded map and a key; none asserts, all report which key was
missing or mistyped so a node can count and log it.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from typing import Any, TypeGuard

from metamesh.errors import ProtocolError, Reason
from tests.protocol.v1.limits import Limits

NAME_RE = re.compile(r"[A-Za-z0-9_.:-]{1,128}\Z")
_MISSING = object()
_KNOWN_NAMES: set[str] = set()
_KNOWN_NAMES_MAX = 16_384


def is_name(value: Any) -> TypeGuard[str]:
    """An identifier: node ids, expert and tensor names. Memoised, since the same
    few names arrive in every message; the memo is bounded."""
    if type(value) is not str:
        return False
    if value in _KNOWN_NAMES:
        return True
    if NAME_RE.match(value) is None:
        return False
    if len(_KNOWN_NAMES) < _KNOWN_NAMES_MAX:
        _KNOWN_NAMES.add(value)
    return True


def all_names(items: Any) -> bool:
    """``is_name`` for every item; one set comparison in C when all are known."""
    try:
        if _KNOWN_NAMES.issuperset(items):
            return True
    except TypeError:  # an unhashable item
        return False
    return all(is_name(k) for k in items)


def counts(values: Any) -> bool:
    """All values are non-negative integers (C-level builtins, no Python loop)."""
    return not values or (set(map(type, values)) == {int} and min(values) >= 0)


def finite_floats(values: Any, lo: float) -> bool:
    """All values are numbers, finite and at least ``lo``, checked with C-level builtins.

    A sum of finite floats that overflows is rejected too; no honest metric is that large.
    """
    if not values:
        return True
    try:
        return math.isfinite(math.fsum(values)) and min(values) >= lo
    except (TypeError, OverflowError):  # a value that is not a number, or a sum beyond float range
        return False


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
    if not is_name(value):
        raise bad(key, value)
    return value


def names(p: Mapping[str, Any], key: str, limits: Limits, *, default: bool = False) -> tuple[str, ...]:
    value = p.get(key, [] if default else _MISSING)
    if value is _MISSING:
        raise ProtocolError(Reason.MISSING_FIELD, key)
    if type(value) is not list or len(value) > limits.max_list_len:
        raise bad(key, value)
    for item in value:
        if not is_name(item):
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
    p: Mapping[str, Any],
    key: str,
    *,
    integers: bool = False,
    lo: float = -math.inf,
    default: bool = False,
) -> dict[str, Any]:
    """A map of names to finite floats (or to integers), all at least ``lo``.

    On the hot path of every insight, so the checks run as C-level set and
    reduction builtins over the whole map; returns the decoded map itself.
    """
    value = p.get(key, {} if default else _MISSING)
    if value is _MISSING:
        raise ProtocolError(Reason.MISSING_FIELD, key)
    if type(value) is not dict or len(value) > 65_536 or not all_names(value.keys()):
        raise bad(key, value)
    values = list(value.values())
    if not integers and set(map(type, values)) - {float, int}:
        raise bad(key, value)
    if integers:
        ok = not values or (set(map(type, values)) == {int} and min(values) >= lo)
    else:
        ok = finite_floats(values, lo)
    if not ok:
        raise bad(key, value)
    return value


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
