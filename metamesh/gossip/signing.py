"""Origin signatures: the author of a message signs it, every receiver checks it.

CurveZMQ authenticates the hop a message came over, not who wrote it: a
relay could forge or alter what it forwards. So the author signs a digest of
the header frame and every array frame with its Ed25519 key, and the
signature travels as the last frame, untouched by relays (only the topic
changes per hop). The digest is SHA-256 over length-prefixed frames, fed
buffer by buffer, so a 100 MB delta is read once and never copied; Ed25519
then signs 32 bytes. SHA-256 because CPUs accelerate it (x86 SHA-NI, ARMv8
SHA2): 1.4 GB/s here against BLAKE2b's 0.6 (``bench/signing.py``). Ed25519 is
libsodium's (PyNaCl): it verifies in 38 us here against OpenSSL's 79 through
``cryptography``; same keys, same signatures. A batch (PROTOCOL.md section
2.2) is signed once, over its header, which lists its members' digests
(``metamesh.protocol.proof``), so its author signs once and its receivers verify
once for up to 64 messages, and a member kept with that header and signature
stays verifiable alone.
Receivers look the author's public key up by sender id (``authorized/ID.key``)
and drop messages that fail, with a counted reason.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from nacl.exceptions import BadSignatureError
from nacl.signing import SigningKey, VerifyKey

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol.proof import SIGNATURE_BYTES, digest

__all__ = ["SIGNATURE_BYTES", "OriginSigner", "OriginVerifier", "digest"]


class OriginSigner:
    """Signs what this node authors (the ``signer`` of :func:`metamesh.protocol.encode`)."""

    __slots__ = ("_key",)

    def __init__(self, seed: bytes) -> None:
        self._key = SigningKey(seed)

    def __call__(self, parts: Sequence[Any]) -> bytes:
        return bytes(self._key.sign(digest(parts)).signature)


class OriginVerifier:
    """Checks an author's signature (the ``verify`` of :func:`metamesh.protocol.decode`).

    Unsigned messages, authors without a known key and bad signatures raise
    :class:`ProtocolError` with ``bad_signature`` or ``unknown_author``.
    """

    __slots__ = ("_keys",)

    def __init__(self, keys: Mapping[str, bytes]) -> None:
        self._keys = {sender: VerifyKey(raw) for sender, raw in keys.items()}

    def __call__(self, sender: str, parts: Sequence[Any], signature: bytes | None) -> None:
        if signature is None:
            raise ProtocolError(Reason.BAD_SIGNATURE, f"{sender}: unsigned message on a signed network")
        key = self._keys.get(sender)
        if key is None:
            raise ProtocolError(Reason.UNKNOWN_AUTHOR, f"{sender}: no signing key in authorized/")
        try:
            key.verify(digest(parts), signature)
        except BadSignatureError as exc:
            raise ProtocolError(Reason.BAD_SIGNATURE, f"{sender}: signature does not verify") from exc

    def knows(self, sender: str) -> bool:
        return sender in self._keys
