"""CurveZMQ keys on disk: a node's own keypair and the allowlist of peers' public keys.

Layout of a keys directory::

    node.key            this node's public key (Z85, 40 characters)
    node.key_secret     this node's secret key (mode 0600)
    authorized/ID.key   public key of each peer allowed in, named by peer id

Exchanging ``node.key`` files between hosts (into each other's ``authorized/``)
is all it takes to build an encrypted, authenticated network.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq

from metamesh.errors import ConfigError

__all__ = ["CurveKeys", "generate_keys", "load_keys"]

_Z85_KEY = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}\Z")


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """A node's keypair and the public keys it admits, by peer id."""

    public: bytes
    secret: bytes
    authorized: dict[str, bytes]

    def server_key(self, peer_id: str) -> bytes | None:
        """The public key to expect from ``peer_id``'s sockets, if it is allowlisted."""
        return self.authorized.get(peer_id)


def generate_keys(directory: Path, *, force: bool = False) -> bytes:
    """Write a new keypair into ``directory``; returns the public key.

    Refuses to overwrite an existing keypair unless ``force``: a lost secret key
    means every peer must be given the new public key.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "authorized").mkdir(exist_ok=True)
    public_path, secret_path = directory / "node.key", directory / "node.key_secret"
    if secret_path.exists() and not force:
        raise ConfigError(f"{secret_path} exists; pass --force to replace the node's keys")
    public, secret = zmq.curve_keypair()
    public_path.write_bytes(public + b"\n")
    fd = os.open(secret_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(secret + b"\n")
    return public


def _read_key(path: Path) -> bytes:
    try:
        text = path.read_text(encoding="ascii").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read key {path}: {exc}") from exc
    if not _Z85_KEY.match(text):
        raise ConfigError(f"{path} is not a 40-character Z85 CurveZMQ key")
    return text.encode("ascii")


def load_keys(directory: Path) -> CurveKeys:
    """Load a keys directory written by ``metamesh keys generate``."""
    if not (directory / "node.key_secret").exists():
        raise ConfigError(f"no keys in {directory}; run `metamesh keys generate --dir {directory}`")
    authorized = {}
    auth_dir = directory / "authorized"
    if auth_dir.is_dir():
        for path in sorted(auth_dir.glob("*.key")):
            authorized[path.stem] = _read_key(path)
    return CurveKeys(
        public=_read_key(directory / "node.key"),
        secret=_read_key(directory / "node.key_secret"),
        authorized=authorized,
    )
