import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings

from metamesh.protocol import ALLOWED_DTYPES, Delta, Envelope, decode, encode, relay_frames
from tests.protocol.strategies import envelopes, same


def _wire(frames: list[object]) -> list[bytes]:
    """What a receiver gets: plain bytes, as ZeroMQ would deliver them."""
    return [bytes(memoryview(f)) for f in frames]  # type: ignore[arg-type]


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(envelopes)
def test_every_kind_round_trips(env: Envelope) -> None:
    got = decode(_wire(encode(env)))
    assert got.sender == env.sender and got.seq == env.seq and got.domain == env.domain
    assert got.created == env.created and got.hops == env.hops and got.reply_to == env.reply_to
    assert got.kind == env.kind
    assert same(got.body, env.body)


@pytest.mark.parametrize("code", sorted(ALLOWED_DTYPES))
@pytest.mark.parametrize("shape", [(), (0,), (3, 0), (2, 3), (1, 1, 4)])
def test_arrays_of_every_dtype_and_edge_shapes(code: str, shape: tuple[int, ...]) -> None:
    arr = (np.arange(int(np.prod(shape)) if shape else 1) % 2).astype(code).reshape(shape)
    env = Envelope("a", 1, "d", Delta("m", {"w": arr}, 0, 1), 1.0)
    got = decode(_wire(encode(env))).body
    assert isinstance(got, Delta)
    assert same(got.tensors["w"], arr)


def test_non_contiguous_and_big_endian_arrays_are_sent_correctly() -> None:
    base = np.arange(12, dtype=np.float64).reshape(3, 4)
    tensors = {"t": base.T, "b": base.astype(">f8")}
    got = decode(_wire(encode(Envelope("a", 1, "d", Delta("m", tensors, 0, 1), 1.0)))).body
    assert isinstance(got, Delta)
    np.testing.assert_array_equal(got.tensors["t"], base.T)
    np.testing.assert_array_equal(got.tensors["b"], base)


def test_relay_rewrites_only_the_topic() -> None:
    env = Envelope("a", 7, "math", Delta("m", {"w": np.ones(3, np.float32)}, 0, 1), 1.0, hops=3)
    received = decode(_wire(encode(env)))
    forwarded = relay_frames(received)
    assert forwarded[0] == b"math/delta/2"
    assert forwarded[1:] == list(received.raw)
    again = decode(_wire(forwarded))
    assert again.hops == 2 and again.id == ("a", 7)


def test_decoded_arrays_are_read_only_views() -> None:
    env = Envelope("a", 1, "d", Delta("m", {"w": np.ones(4, np.float32)}, 0, 1), 1.0)
    got = decode(_wire(encode(env))).body
    assert isinstance(got, Delta)
    with pytest.raises(ValueError, match="read-only"):
        got.tensors["w"][0] = 2.0
