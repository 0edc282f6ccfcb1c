"""What origin signatures cost, against the codec's own cost, in the same run.

- an insight: encode+decode unsigned vs signed-and-verified (µs per message);
- a 40 MB delta: decode unsigned vs decode with signature verification, and the
  digest's bandwidth next to a numpy copy of the same bytes (the digest reads
  the arrays once and copies nothing);
- the small-message options: Ed25519 sign and verify of one message's digest
  with a cached key object (``cryptography``, and PyNaCl when installed), and
  one signature over a batch of 64 insights' digests, per message.

Run: ``python bench/signing.py``
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).parent))

from codec import best_of, insight_envelope

from metamesh.gossip.keys import generate_keys, load_keys
from metamesh.gossip.signing import OriginSigner, OriginVerifier, digest
from metamesh.protocol import Delta, Envelope, decode, encode


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        generate_keys(Path(tmp) / "k")
        keys = load_keys(Path(tmp) / "k")
    assert keys.sign_secret is not None and keys.sign_public is not None
    signer, verifier = OriginSigner(keys.sign_secret), OriginVerifier({"bench": keys.sign_public})

    env = insight_envelope()
    env.sender = "bench"
    plain = best_of(lambda: decode(encode(env)), repeat=5, number=2000)
    signed = best_of(lambda: decode(encode(env, signer=signer), verify=verifier), repeat=5, number=2000)
    print(f"insight encode+decode: unsigned {plain * 1e6:.1f} µs, signed+verified {signed * 1e6:.1f} µs "
          f"({signed / plain:.1f}x; the signature adds {(signed - plain) * 1e6:.0f} µs)")  # fmt: skip

    arr = np.random.default_rng(0).random(10_000_000, dtype=np.float32)  # 40 MB
    big = Envelope("bench", 1, "math", Delta("m", {"w": arr}, 0, 10), time.time())
    frames_plain = encode(big)
    frames_signed = encode(big, signer=signer)
    d_plain = best_of(lambda: decode(frames_plain), repeat=5, number=3)
    d_signed = best_of(lambda: decode(frames_signed, verify=verifier), repeat=5, number=3)
    dig = best_of(lambda: digest(frames_signed[1:-1]), repeat=5, number=3)
    copy = best_of(arr.copy, repeat=5, number=3)
    gbps = arr.nbytes / dig / 1e9
    print(f"40 MB delta decode: unsigned {d_plain * 1e3:.1f} ms, verified {d_signed * 1e3:.1f} ms")
    print(f"digest {dig * 1e3:.1f} ms ({gbps:.2f} GB/s) vs numpy copy {copy * 1e3:.1f} ms "
          f"({arr.nbytes / copy / 1e9:.2f} GB/s): {copy / dig:.2f}x of a copy's speed")  # fmt: skip
    small_messages()


def small_messages() -> None:
    """Per-message Ed25519 against one signature per batch, with key objects built once."""
    from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

    env = insight_envelope()
    parts = encode(env)[1:]
    key = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
    public = key.public_key()
    d = digest(parts)
    sig = key.sign(d)
    rows = [
        ("digest (SHA-256 over the frames)", best_of(lambda: digest(parts), repeat=5, number=5000)),
        ("cryptography: sign", best_of(lambda: key.sign(d), repeat=5, number=2000)),
        ("cryptography: verify", best_of(lambda: public.verify(sig, d), repeat=5, number=2000)),
    ]
    try:
        import nacl.signing
    except ImportError:
        print("PyNaCl not installed: its rows are left out")
    else:
        nkey = nacl.signing.SigningKey(bytes(range(32)))
        nverify = nkey.verify_key
        nsig = nkey.sign(d).signature
        rows += [
            ("PyNaCl: sign", best_of(lambda: nkey.sign(d), repeat=5, number=2000)),
            ("PyNaCl: verify", best_of(lambda: nverify.verify(d, nsig), repeat=5, number=2000)),
        ]
    batch = 64
    digests = [digest([p, bytes([i])]) for i, p in enumerate([parts[0]] * batch)]

    def batch_sign() -> None:
        key.sign(b"".join(digests))

    def batch_verify() -> None:
        public.verify(key_sig, b"".join(digests))

    key_sig = key.sign(b"".join(digests))
    rows += [
        (f"one signature over {batch}: sign, per message", best_of(batch_sign, repeat=5, number=500) / batch),
        (
            f"one signature over {batch}: verify, per message",
            best_of(batch_verify, repeat=5, number=500) / batch,
        ),
    ]
    codec = best_of(lambda: decode(encode(env)), repeat=5, number=5000)
    print(f"insight codec (encode+decode), for scale: {codec * 1e6:.1f} µs")
    for label, seconds in rows:
        print(f"  {label:48s} {seconds * 1e6:7.2f} µs")


if __name__ == "__main__":
    main()
