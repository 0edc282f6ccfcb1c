"""Who may call a gateway, and how often: bearer API keys from a keys file, a rate per key.

A keys file has one key per line, ``NAME KEY`` (or a bare ``KEY``, named by its first 8
characters); blank lines and ``#`` comments are skipped. A key's *name* owns the decisions made
for it (feedback on another key's decision is refused) and appears in logs; the key never does.
Keys are compared in constant time. :class:`RateLimiter` is a token bucket per key name.
"""

from __future__ import annotations

import hmac
import ipaddress
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from metamesh.errors import ConfigError

__all__ = ["ANONYMOUS", "KeyRing", "RateLimiter", "is_loopback", "load_keys_file"]

#: The owner of every decision on a gateway without keys (loopback only).
ANONYMOUS = "anonymous"
MIN_KEY_CHARS = 16


def load_keys_file(path: Path) -> dict[str, str]:
    """``{key: name}`` from a keys file; ConfigError for an unreadable file, a short or repeated key."""
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"cannot read the API keys file {path}: {exc.strerror or exc}") from exc
    keys: dict[str, str] = {}
    for number, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        parts = line.split()
        if len(parts) > 2:
            raise ConfigError(f"{path}:{number}: expected NAME KEY or KEY")
        key = parts[-1]
        name = parts[0] if len(parts) == 2 else key[:8]
        if len(key) < MIN_KEY_CHARS:
            raise ConfigError(f"{path}:{number}: a key needs at least {MIN_KEY_CHARS} characters")
        if key in keys:
            raise ConfigError(f"{path}:{number}: this key is listed twice")
        keys[key] = name
    if not keys:
        raise ConfigError(f"the API keys file {path} lists no key")
    return keys


class KeyRing:
    """The keys a gateway accepts; :meth:`owner` maps an ``Authorization`` header to a key name."""

    def __init__(self, keys: Mapping[str, str] | None) -> None:
        self._keys = dict(keys or {})

    @property
    def required(self) -> bool:
        return bool(self._keys)

    def owner(self, authorization: str | None) -> str | None:
        """The key's name, ANONYMOUS when no keys are configured, None for a missing or wrong key."""
        if not self._keys:
            return ANONYMOUS
        if not authorization or not authorization.startswith("Bearer "):
            return None
        given = authorization[len("Bearer ") :].strip().encode()
        found = None
        for key, name in self._keys.items():
            if hmac.compare_digest(key.encode(), given):
                found = name
        return found


class RateLimiter:
    """A token bucket per key: ``rate`` requests a second on average, bursts of ``burst``."""

    def __init__(self, rate: float, burst: float, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.rate = rate
        self.burst = burst
        self._clock = clock
        self._buckets: dict[str, tuple[float, float]] = {}

    def allow(self, who: str) -> bool:
        if self.rate <= 0:
            return True
        now = self._clock()
        tokens, at = self._buckets.get(who, (self.burst, now))
        tokens = min(self.burst, tokens + (now - at) * self.rate)
        if tokens < 1.0:
            self._buckets[who] = (tokens, now)
            return False
        self._buckets[who] = (tokens - 1.0, now)
        return True


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
