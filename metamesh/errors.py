"""The one exception tree of metamesh.

Every error metamesh raises on purpose is a :class:`MetameshError`::

    MetameshError
    ├── ProtocolError        untrusted input that failed to decode or validate;
    │                        carries a short ``reason`` code a node counts per peer
    ├── ConfigError          a configuration value or file a user must fix
    ├── TransportError       a ZeroMQ socket could not be bound, connected or used
    ├── StateError           a node directory, identity or checkpoint problem
    │   └── HomeInUse        another running process holds the node's home (its lock)
    └── LLMError             an LLM backend failed
        ├── LLMUnavailable   the server cannot be reached
        ├── ModelNotFound    the server is up but lacks the model
        ├── LLMResponseError the server answered with something unusable
        └── LLMNotInstalled  a local model needs a package that is not installed

Errors of dependencies (pyzmq, msgpack, httpx, OSError) are translated at the
boundary with ``raise ... from exc`` so callers catch one tree.
"""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path

__all__ = [
    "ConfigError",
    "HomeInUse",
    "LLMError",
    "LLMNotInstalled",
    "LLMResponseError",
    "LLMUnavailable",
    "MetameshError",
    "ModelNotFound",
    "ProtocolError",
    "Reason",
    "StateError",
    "TransportError",
]


class Reason(StrEnum):
    """Why a message was rejected; stable codes, listed in PROTOCOL.md."""

    BAD_FRAMES = "bad_frames"
    FRAME_TOO_LARGE = "frame_too_large"
    TOO_MANY_FRAMES = "too_many_frames"
    BAD_BATCH = "bad_batch"
    BAD_TOPIC = "bad_topic"
    TOPIC_MISMATCH = "topic_mismatch"
    BAD_HEADER = "bad_header"
    UNKNOWN_VERSION = "unknown_version"
    UNKNOWN_KIND = "unknown_kind"
    MISSING_FIELD = "missing_field"
    BAD_FIELD = "bad_field"
    BAD_ARRAY = "bad_array"
    BAD_DTYPE = "bad_dtype"
    TOO_MANY_ELEMENTS = "too_many_elements"
    SHAPE_MISMATCH = "shape_mismatch"
    NON_FINITE = "non_finite"
    BAD_SIGNATURE = "bad_signature"
    UNKNOWN_AUTHOR = "unknown_author"
    DUPLICATE = "duplicate"
    REPLAYED = "replayed"
    STALE = "stale"
    FUTURE = "future"
    QUARANTINED = "quarantined"
    OUTLIER = "outlier"
    INSANE_VALUES = "insane_values"
    OTHER_MODEL = "other_model"


class MetameshError(Exception):
    """Base of every error metamesh raises on purpose."""


class ProtocolError(MetameshError):
    """Untrusted input failed to decode or validate.

    ``reason`` is a stable code for counters; ``detail`` is for humans and is
    already truncated, so it is safe to log. ``author`` is set when the
    message failed after its sender was known (and, on a signed network,
    verified), so the failure can count against that peer's score.
    """

    def __init__(self, reason: Reason, detail: str = "", author: str | None = None) -> None:
        self.reason = reason
        self.detail = detail[:200]
        self.author = author
        super().__init__(f"{reason.value}: {self.detail}" if detail else reason.value)


class ConfigError(MetameshError):
    """A configuration value or file that the user must fix."""


class TransportError(MetameshError):
    """A socket could not be bound, connected or used."""


class StateError(MetameshError):
    """A node directory, identity or checkpoint problem."""


class HomeInUse(StateError):
    """Another running process holds the node's home: two nodes would share one identity.

    ``pid`` is the holder's process id as it wrote it into the lock file, or None if it
    could not be read. The message is one line, meant to be shown as it is.
    """

    def __init__(self, home: Path, pid: int | None) -> None:
        self.home = home
        self.pid = pid
        holder = f"PID {pid}" if pid is not None else "another process"
        super().__init__(f"home {home} is in use by {holder}; give each node its own --home")


class LLMError(MetameshError):
    """An LLM backend failed."""


class LLMUnavailable(LLMError):
    """The LLM server cannot be reached."""


class ModelNotFound(LLMError):
    """The LLM server is up but does not have the requested model."""


class LLMResponseError(LLMError):
    """The LLM server answered with a status or body metamesh cannot use."""


class LLMNotInstalled(LLMError):
    """A local model (``--llm local``) needs a package that is not installed; the message says which."""
