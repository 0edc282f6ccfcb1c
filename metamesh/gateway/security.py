"""Who may call a gateway, and how often: bearer API keys from a keys file, a rate per key.

A keys file has one key per line, ``NAME KEY`` (or a bare ``KEY``, named by its first 8
characters); blank lines and ``#`` comments are skipped. A key's *name* owns the decisions made
for it (feedback on another key's decision is refused) and appears in logs; the key never does.
Keys are compared in constant time. :class:`RateLimiter` is a token bucket per key name.
:func:`add_api_key` makes a key and appends it to a keys file (``metamesh keys api``).
"""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
import secrets
import time
from collections.abc import Callable, Mapping
from pathlib import Path

from metamesh.errors import ConfigError

__all__ = ["ANONYMOUS", "KeyRing", "RateLimiter", "add_api_key", "is_loopback", "load_keys_file"]

#: The owner of every decision on a gateway without keys (loopback only).
ANONYMOUS = "anonymous"
MIN_KEY_CHARS = 16
_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}\Z")


def add_api_key(path: Path, name: str) -> str:
    """A new random key for ``name``, appended to the keys file at ``path`` (made with mode 0600).

    ConfigError for a name that is not 1-64 letters, digits, ``_.@-`` or that the file already
    lists, or a file that cannot be read or written. Returns the key: it is shown once, never logged.
    """
    if not _NAME.match(name) or name == ANONYMOUS:
        raise ConfigError(f"API key name {name!r}: use 1-64 letters, digits, '_', '.', '@' or '-'")
    if path.exists():
        names = set(load_keys_file(path).values()) if path.read_text(encoding="utf-8").strip() else set()
        if name in names:
            raise ConfigError(f"{path} already has a key named {name!r}")
    key = "mm-" + secrets.token_urlsafe(32)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
        with os.fdopen(fd, "a", encoding="utf-8") as f:
            f.write(f"{name} {key}\n")
    except OSError as exc:
        raise ConfigError(f"cannot write the API keys file {path}: {exc.strerror or exc}") from exc
    return key


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
