"""Origin signatures: keys on disk, signing, verification without copying arrays."""

from __future__ import annotations

import time
import tracemalloc
from pathlib import Path

import numpy as np
import pytest

from metamesh.errors import ConfigError, ProtocolError, Reason
from metamesh.gossip.keys import generate_keys, load_keys
from metamesh.gossip.signing import OriginSigner, OriginVerifier, digest
from metamesh.protocol import Delta, Envelope, decode, encode


def signer_and_verifier(tmp_path: Path, name: str = "a") -> tuple[OriginSigner, OriginVerifier]:
    generate_keys(tmp_path / name)
    keys = load_keys(tmp_path / name)
    assert keys.sign_secret is not None and keys.sign_public is not None
    return OriginSigner(keys.sign_secret), OriginVerifier({name: keys.sign_public})


def delta_frames(signer: OriginSigner, n: int = 1000, sender: str = "a") -> list[object]:
    body = Delta("m", {"w": np.arange(n, dtype=np.float32)}, 0, 5)
    return encode(Envelope(sender, 1, "math", body, time.time()), signer=signer)


def test_signed_message_verifies_and_any_change_breaks_it(tmp_path: Path) -> None:
    signer, verifier = signer_and_verifier(tmp_path)
    frames = delta_frames(signer)
    env = decode(frames, verify=verifier)
    assert env.signature is not None and len(env.signature) == 64
    changed = bytearray(np.asarray(frames[2]).tobytes())
    changed[7] ^= 1
    with pytest.raises(ProtocolError) as info:
        decode([frames[0], frames[1], bytes(changed), frames[3]], verify=verifier)
    assert info.value.reason is Reason.BAD_SIGNATURE and info.value.author is None


def test_unsigned_unknown_and_foreign_signatures_are_refused(tmp_path: Path) -> None:
    signer, verifier = signer_and_verifier(tmp_path)
    other, _ = signer_and_verifier(tmp_path, "b")
    body = Delta("m", {"w": np.zeros(4, np.float32)}, 0, 5)
    cases = {
        Reason.BAD_SIGNATURE: encode(Envelope("a", 1, "math", body, time.time())),  # unsigned
        Reason.UNKNOWN_AUTHOR: delta_frames(signer, sender="z"),
    }
    cases_forged = delta_frames(other)  # right format, a's name, b's key
    for reason, frames in [*cases.items(), (Reason.BAD_SIGNATURE, cases_forged)]:
        with pytest.raises(ProtocolError) as info:
            decode(frames, verify=verifier)
        assert info.value.reason is reason


def test_errors_after_verification_name_the_author(tmp_path: Path) -> None:
    signer, verifier = signer_and_verifier(tmp_path)
    bad = Delta("m", {"w": np.array([np.nan, 1.0], np.float32)}, 0, 5)
    frames = encode(Envelope("a", 1, "math", bad, time.time()), signer=signer)
    with pytest.raises(ProtocolError) as info:
        decode(frames, verify=verifier)
    assert info.value.reason is Reason.NON_FINITE and info.value.author == "a"


def test_digest_of_a_large_delta_copies_nothing(tmp_path: Path) -> None:
    signer, verifier = signer_and_verifier(tmp_path)
    frames = delta_frames(signer, n=10_000_000)  # 40 MB
    assert digest([b"ab", b"c"]) != digest([b"a", b"bc"])  # frame boundaries are part of the digest
    tracemalloc.start()
    try:
        decode(frames, verify=verifier)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert peak < 1_000_000, f"verifying a 40 MB delta allocated {peak} bytes"


def test_keys_generate_adds_a_signing_key_to_an_old_directory(tmp_path: Path) -> None:
    import zmq

    old = tmp_path / "old"
    (old / "authorized").mkdir(parents=True)
    public, secret = zmq.curve_keypair()
    (old / "node.key").write_bytes(public + b"\n")
    (old / "node.key_secret").write_bytes(secret + b"\n")
    with pytest.raises(ConfigError, match="keys generate"):
        load_keys(old)
    assert generate_keys(old) == public  # Curve keys kept, peers need not be told again
    keys = load_keys(old)
    assert keys.public == public and keys.secret == secret and keys.sign_secret is not None
    with pytest.raises(ConfigError, match="--force"):
        generate_keys(old)
    (old / "authorized" / "b.key").write_text(public.decode() + "\ned25519 short\n")
    with pytest.raises(ConfigError, match="ed25519"):
        load_keys(old)
