"""Codec speed against its references, measured in the same run.

- insight encode + decode + validate per second vs bare ``msgpack.packb`` +
  ``unpackb`` of the same header without validation (target: at least 1.0x
  bare msgpack); the two alternate batch by batch, best batch of each;
- encode+decode of a 1 MB and a 100 MB delta vs a numpy copy of the same bytes
  (target: at least 10x faster than the copy at 100 MB), with and without the
  finite-value scan.

Run: ``python bench/codec.py``
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import msgpack
import numpy as np

from metamesh.protocol import LAN, Delta, Envelope, Insight, decode, encode


def best_of(fn: Callable[[], object], *, repeat: int, number: int) -> float:
    """Best mean seconds per call over ``repeat`` batches of ``number`` calls."""
    best = float("inf")
    for _ in range(repeat):
        start = time.perf_counter()
        for _ in range(number):
            fn()
        best = min(best, (time.perf_counter() - start) / number)
    return best


def insight_envelope() -> Envelope:
    experts = {f"expert{i}": 0.1 * i + 0.05 for i in range(8)}
    samples = {f"expert{i}": 100 + i for i in range(8)}
    body = Insight.of(
        experts,
        samples,
        avg_loss=0.42,
        total_samples=832,
        round=17,
        metrics={"train_loss": 0.4, "heldout_loss": 0.45, "lr": 0.01},
    )
    return Envelope("node-7f3a9c21", 12345, "economic", body, time.time())


def bench_insight(number: int, repeat: int) -> tuple[float, float, int]:
    env = insight_envelope()
    frames = encode(env)
    header = msgpack.unpackb(frames[1])
    size = len(frames[1])

    def ours() -> None:
        decode(encode(env))

    def bare() -> None:
        msgpack.unpackb(msgpack.packb(header), raw=False)

    best_ours = best_bare = float("inf")
    for _ in range(repeat):  # alternate, so both see the same machine
        best_ours = min(best_ours, best_of(ours, repeat=1, number=number))
        best_bare = min(best_bare, best_of(bare, repeat=1, number=number))
    return best_ours, best_bare, size


def bench_delta(nbytes: int, repeat: int) -> tuple[float, float, float]:
    arr = np.random.default_rng(0).standard_normal(nbytes // 4).astype(np.float32)
    env = Envelope("node-a", 1, "economic", Delta("experts", {"w": arr}, 3, 1000), time.time())
    no_scan = LAN.with_(check_values=False)
    frames = encode(env)
    got = decode(frames).body
    assert isinstance(got, Delta) and np.shares_memory(frames[2], arr), "encode copied the array"
    assert np.shares_memory(got.tensors["w"], arr), "decode copied the array"

    def structural() -> None:
        decode(encode(env), no_scan)

    def full() -> None:
        decode(encode(env), LAN)

    def copy() -> None:
        arr.copy()

    return (
        best_of(structural, repeat=repeat, number=3),
        best_of(full, repeat=repeat, number=3),
        best_of(copy, repeat=repeat, number=3),
    )


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="fewer repetitions")
    args = parser.parse_args()
    ours, bare, size = bench_insight(2000, 10 if args.quick else 50)
    print(f"insight ({size}-byte header), encode+decode:")
    print(f"  metamesh      {1 / ours:>10,.0f} msg/s  ({ours * 1e6:.1f} us)")
    print(f"  bare msgpack  {1 / bare:>10,.0f} msg/s  ({bare * 1e6:.1f} us)")
    print(f"  ratio         {bare / ours:.2f}x bare msgpack (target >= 1.0)")
    for label, nbytes in (("1 MB", 1 << 20), ("100 MB", 100 << 20)):
        structural, full, copy = bench_delta(nbytes, repeat=3 if args.quick else 7)
        print(f"delta {label}, encode+decode (no copy, asserted):")
        ratio = copy / structural
        print(f"  metamesh, structural checks   {structural * 1e3:8.3f} ms  {ratio:8.1f}x faster than copy")
        print(f"  metamesh, + finite-value scan {full * 1e3:8.3f} ms  {copy / full:8.1f}x faster than copy")
        print(f"  numpy copy of the same bytes  {copy * 1e3:8.3f} ms")


if __name__ == "__main__":
    main()
