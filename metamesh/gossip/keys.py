"""Keys on disk: a node's CurveZMQ and Ed25519 keypairs and the peers it admits.

Layout of a keys directory::

    node.key            this node's public keys: the CurveZMQ key (Z85, line 1)
                        and ``ed25519 <Z85>``, its origin-signing key (line 2)
    node.key_secret     the matching secret keys (mode 0600), same layout
    authorized/ID.key   a copy of each admitted peer's ``node.key``, named by peer id

Curve encrypts and authenticates each hop; the Ed25519 key signs what a node
authors, so a message relayed through other nodes can still be traced to its
author (``metamesh.gossip.signing``). Exchanging ``node.key`` files between
hosts, into each other's ``authorized/``, is all it takes to build an
encrypted network where every message's author is verified.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass
from pathlib import Path

import zmq
from zmq.utils import z85

from metamesh.errors import ConfigError

__all__ = ["CurveKeys", "generate_keys", "load_keys"]

_Z85_KEY = re.compile(r"[0-9A-Za-z.\-:+=^!/*?&<>()\[\]{}@%$#]{40}\Z")
_SIGN_PREFIX = "ed25519 "


@dataclass(frozen=True, slots=True)
class CurveKeys:
    """A node's keypairs and the public keys it admits, by peer id.

    ``sign_secret`` is the 32-byte Ed25519 seed; ``signers`` maps a peer id to
    its raw 32-byte Ed25519 public key (peers whose ``authorized`` file has no
    signing line are admitted on the wire, but their messages cannot be verified).
    """

    public: bytes
    secret: bytes
    authorized: dict[str, bytes]
    sign_public: bytes | None = None
    sign_secret: bytes | None = None
    signers: dict[str, bytes] | None = None

    def server_key(self, peer_id: str) -> bytes | None:
        """The public key to expect from ``peer_id``'s sockets, if it is allowlisted."""
        return self.authorized.get(peer_id)


def _sign_keypair() -> tuple[bytes, bytes]:
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
    from cryptography.hazmat.primitives.serialization import (
        Encoding,
        NoEncryption,
        PrivateFormat,
        PublicFormat,
    )

    key = Ed25519PrivateKey.generate()
    seed = key.private_bytes(Encoding.Raw, PrivateFormat.Raw, NoEncryption())
    public = key.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
    return public, seed


def _write_secret(path: Path, text: str) -> None:
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="ascii") as fh:
        fh.write(text)


def generate_keys(directory: Path, *, force: bool = False) -> bytes:
    """Write new keypairs into ``directory``; returns the Curve public key.

    Refuses to overwrite an existing keypair unless ``force``: a lost secret key
    means every peer must be given the new public key. A directory made before
    origin signatures gets its signing key added, its Curve keys kept.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "authorized").mkdir(exist_ok=True)
    public_path, secret_path = directory / "node.key", directory / "node.key_secret"
    if secret_path.exists() and not force:
        curve_secret, sign_seed = _read_keyfile(secret_path)
        if sign_seed is not None:
            raise ConfigError(f"{secret_path} exists; pass --force to replace the node's keys")
        curve_public, _ = _read_keyfile(public_path)
    else:
        curve_public, curve_secret = zmq.curve_keypair()
    sign_public, sign_seed = _sign_keypair()
    public_path.write_text(f"{curve_public.decode()}\n{_SIGN_PREFIX}{z85.encode(sign_public).decode()}\n")
    _write_secret(secret_path, f"{curve_secret.decode()}\n{_SIGN_PREFIX}{z85.encode(sign_seed).decode()}\n")
    return curve_public


def _read_keyfile(path: Path) -> tuple[bytes, bytes | None]:
    """The Curve key (Z85 bytes) and, if present, the raw 32-byte Ed25519 key of a key file."""
    try:
        lines = path.read_text(encoding="ascii").split()
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read key {path}: {exc}") from exc
    if not lines or not _Z85_KEY.match(lines[0]):
        raise ConfigError(f"{path} does not start with a 40-character Z85 CurveZMQ key")
    sign: bytes | None = None
    if len(lines) >= 3 and lines[1] == _SIGN_PREFIX.strip():
        if not _Z85_KEY.match(lines[2]):
            raise ConfigError(f"{path}: the ed25519 key is not 40 Z85 characters")
        sign = z85.decode(lines[2].encode("ascii"))
    elif len(lines) > 1:
        raise ConfigError(f"{path}: expected 'ed25519 <key>' on the second line")
    return lines[0].encode("ascii"), sign


def load_keys(directory: Path) -> CurveKeys:
    """Load a keys directory written by ``metamesh keys generate``."""
    if not (directory / "node.key_secret").exists():
        raise ConfigError(f"no keys in {directory}; run `metamesh keys generate --dir {directory}`")
    authorized: dict[str, bytes] = {}
    signers: dict[str, bytes] = {}
    auth_dir = directory / "authorized"
    if auth_dir.is_dir():
        for path in sorted(auth_dir.glob("*.key")):
            authorized[path.stem], sign = _read_keyfile(path)
            if sign is not None:
                signers[path.stem] = sign
    public, sign_public = _read_keyfile(directory / "node.key")
    secret, sign_secret = _read_keyfile(directory / "node.key_secret")
    if sign_secret is None or sign_public is None:
        raise ConfigError(
            f"{directory} has no origin-signing key (made by an older metamesh); "
            f"run `metamesh keys generate --dir {directory}` to add one, keeping the Curve keys"
        )
    return CurveKeys(
        public=public,
        secret=secret,
        authorized=authorized,
        sign_public=sign_public,
        sign_secret=sign_secret,
        signers=signers,
    )
