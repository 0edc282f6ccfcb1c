"""One name per node setting: the ``NodeConfig`` field is the TOML key, ``--field-name`` the
flag and ``METAMESH_`` plus the name in capitals the environment variable.

Pure helpers of :mod:`metamesh.node.config`: the names of a setting, the old names still
accepted (with a warning), the closest known name for a misspelt one, and turning a TOML,
environment or flag value into the setting's type with an error that says what is allowed.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from metamesh.errors import ConfigError

__all__ = [
    "ENV_PREFIX",
    "OTHER_ENV",
    "RENAMED",
    "closest",
    "coerce",
    "env_name",
    "flag_name",
]

ENV_PREFIX = "METAMESH_"

#: Old names of renamed settings -> the current name. Still accepted in TOML and the
#: environment, with a warning; the old ``seed`` (the learner's random seed) cannot be, since
#: ``seed`` now names the peers to join, so :func:`coerce` explains an integer given for it.
RENAMED: Mapping[str, str] = {
    "seeds": "seed",
    "domains": "domain",
    "keys_dir": "keys",
    "status_port": "metrics_port",
}

#: ``METAMESH_*`` variables the project reads that are not node settings.
OTHER_ENV: Mapping[str, str] = {
    "METAMESH_BENCH_EAGER": "bench/aggregate.py: relay every message eagerly, for comparison",
}

#: Settings that hold several values: a TOML list, or a comma-separated string.
LISTS = frozenset({"seed", "domain", "frozen", "peer_networks"})
#: Settings that are paths (``~`` expanded; an empty value is none).
PATHS = frozenset({"home", "keys"})

_BOOLS = {"1": True, "true": True, "yes": True, "on": True}
_BOOLS.update(dict.fromkeys(("0", "false", "no", "off"), False))


def flag_name(name: str) -> str:
    """The command-line flag of a setting: ``metrics_port`` -> ``--metrics-port``."""
    return "--" + name.replace("_", "-")


def env_name(name: str) -> str:
    """The environment variable of a setting: ``metrics_port`` -> ``METAMESH_METRICS_PORT``."""
    return ENV_PREFIX + name.upper()


def closest(word: str, known: Iterable[str]) -> str:
    """``"; did you mean X?"`` for the known name nearest to ``word``, or ``""`` when none is near."""
    match = difflib.get_close_matches(word, list(known), n=1, cutoff=0.6)
    return f"; did you mean {match[0]}?" if match else ""


def _allowed(default: Any, choices: Sequence[str] | None) -> str:
    if choices is not None:
        return "one of " + ", ".join(repr(c) for c in choices)
    if isinstance(default, bool):
        return "true or false (also 1/0, yes/no, on/off)"
    if isinstance(default, int):
        return "a whole number"
    if isinstance(default, float):
        return "a number"
    return "text"


def coerce(name: str, value: Any, *, default: Any, choices: Sequence[str] | None, source: str) -> Any:
    """``value`` as the type of ``default``; :class:`ConfigError` names the source, the setting,
    the value and what is allowed."""

    def bad(allowed: str) -> ConfigError:
        return ConfigError(f"{source}: {name} = {value!r} is not allowed; expected {allowed}")

    if name in PATHS:
        return None if value in (None, "") else Path(str(value)).expanduser()
    if name in LISTS:
        items = [value] if isinstance(value, (str, int, float)) else value
        if not isinstance(items, (list, tuple)):
            raise bad("a list of text or a comma-separated string")
        if name == "seed" and any(isinstance(v, int) or str(v).strip().isdigit() for v in items):
            raise bad(
                "peer endpoints such as tcp://10.0.0.2:5556 (seed names the peers to join; "
                "the learner's random seed is random_seed)"
            )
        return tuple(p.strip() for v in items for p in str(v).split(",") if p.strip())
    if choices is not None:
        if str(value) not in choices:
            raise bad(_allowed(default, choices))
        return str(value)
    if isinstance(default, bool):
        if isinstance(value, bool):
            return value
        if str(value).lower() not in _BOOLS:
            raise bad(_allowed(default, None))
        return _BOOLS[str(value).lower()]
    try:
        if isinstance(value, bool):
            raise ValueError(value)
        if isinstance(default, int):
            if isinstance(value, float) and not value.is_integer():
                raise ValueError(value)
            return int(value)
        if isinstance(default, float):
            return float(value)
    except (TypeError, ValueError):
        raise bad(_allowed(default, None)) from None
    if not isinstance(value, str):
        raise bad("text")
    return value
