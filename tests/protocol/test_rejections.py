"""Every reason the decoder rejects a message, fed the bad input it names."""

from __future__ import annotations

from typing import Any

import msgpack
import numpy as np
import pytest

from metamesh.errors import ProtocolError, Reason
from metamesh.protocol import (
    EDGE,
    GLOBAL_DOMAIN,
    LAN,
    PROTOCOL_MAX,
    Delta,
    Envelope,
    Hello,
    Insight,
    Prompt,
    QTable,
    decode,
    encode,
)


def _good_insight() -> list[Any]:
    return encode(Envelope("node-a", 3, "math", Insight(["e0"], [0.5], [4], 0.5, 4), 10.0))


def _good_delta(arr: np.ndarray | None = None) -> list[Any]:
    arr = np.ones((2, 3), np.float32) if arr is None else arr
    return [bytes(memoryview(f)) for f in encode(Envelope("a", 1, "d", Delta("m", {"w": arr}, 0, 1), 1.0))]


def _header(frames: list[Any]) -> dict[str, Any]:
    return msgpack.unpackb(frames[1])  # type: ignore[no-any-return]


def _with_header(frames: list[Any], **changes: Any) -> list[Any]:
    header = _header(frames)
    for key, value in changes.items():
        if value is _DELETE:
            header.pop(key)
        else:
            header[key] = value
    return [frames[0], msgpack.packb(header), *frames[2:]]


def _with_payload(frames: list[Any], **changes: Any) -> list[Any]:
    header = _header(frames)
    for key, value in changes.items():
        if value is _DELETE:
            header["p"].pop(key)
        else:
            header["p"][key] = value
    return [frames[0], msgpack.packb(header), *frames[2:]]


_DELETE = object()


def _reject(frames: list[Any], reason: Reason, limits: Any = LAN) -> ProtocolError:
    with pytest.raises(ProtocolError) as info:
        decode(frames, limits)
    assert info.value.reason is reason, info.value
    return info.value


def test_too_few_frames() -> None:
    _reject([b"math/insight/6"], Reason.BAD_FRAMES)


def test_array_frames_do_not_match_header() -> None:
    frames = _good_delta()
    _reject(frames[:2], Reason.BAD_FRAMES)
    _reject([*frames, b"extra"], Reason.BAD_FRAMES)


def test_too_many_frames() -> None:
    frames = _good_delta()
    _reject([frames[0], frames[1], *[b""] * 40], Reason.TOO_MANY_FRAMES, LAN.with_(max_arrays=8))


def test_oversize_frame() -> None:
    frames = _good_delta(np.ones(1000, np.float32))
    _reject(frames, Reason.FRAME_TOO_LARGE, LAN.with_(max_frame_bytes=3999))
    _reject(_good_insight(), Reason.FRAME_TOO_LARGE, LAN.with_(max_header_bytes=20))


@pytest.mark.parametrize(
    "topic",
    [
        b"math/insight",
        b"math/insight/6/x",
        b"Math/insight/6",
        b"math/insight/-1",
        b"math/insight/99",
        b"\xff/insight/6",
        b"math/insight/ 6",
        b"_other/insight/6",
        b"",
    ],
)
def test_bad_topic(topic: bytes) -> None:
    _reject([topic, *_good_insight()[1:]], Reason.BAD_TOPIC)


def test_topic_must_match_header() -> None:
    frames = _good_insight()
    _reject([b"geo/insight/6", *frames[1:]], Reason.TOPIC_MISMATCH)
    _reject([b"math/bye/6", *frames[1:]], Reason.TOPIC_MISMATCH)


@pytest.mark.parametrize(
    "header",
    [b"\xc1", b"not msgpack at all \xff\xff", msgpack.packb([1, 2]), msgpack.packb({1: 2}), b"\x92\x01"],
)
def test_bad_header(header: bytes) -> None:
    _reject([b"math/insight/6", header], Reason.BAD_HEADER)


def test_unknown_version() -> None:
    _reject(_with_header(_good_insight(), v=99), Reason.UNKNOWN_VERSION)
    _reject(_with_header(_good_insight(), v="1"), Reason.UNKNOWN_VERSION)


def test_unknown_kind() -> None:
    frames = _with_header(_good_insight(), k="telepathy")
    _reject([b"math/telepathy/6", *frames[1:]], Reason.UNKNOWN_KIND)


@pytest.mark.parametrize("key", ["s", "n", "p"])
def test_missing_envelope_field(key: str) -> None:
    _reject(_with_header(_good_insight(), **{key: _DELETE}), Reason.MISSING_FIELD)


@pytest.mark.parametrize("key", ["avg_loss", "experts", "loss", "total_samples"])
def test_missing_body_field(key: str) -> None:
    _reject(_with_payload(_good_insight(), **{key: _DELETE}), Reason.MISSING_FIELD)


@pytest.mark.parametrize(
    ("where", "key", "value"),
    [
        ("h", "s", "has space"),
        ("h", "s", 5),
        ("h", "n", -1),
        ("h", "n", 1.5),
        ("h", "t", float("nan")),
        ("h", "t", "yesterday"),
        ("h", "g", "yes"),
        ("h", "r", "x"),
        ("p", "avg_loss", float("inf")),
        ("p", "avg_loss", -1.0),
        ("p", "total_samples", True),
        ("p", "loss", ["high"]),
        ("p", "loss", [-0.5]),
        ("p", "loss", [float("nan")]),
        ("p", "samples", [4, 5]),
        ("p", "samples", [4.0]),
        ("p", "experts", ["bad name"]),
        ("p", "metrics", {"acc": float("inf")}),
        ("p", "metrics", {"acc": "high"}),
        ("p", "loss", [1.7e308, 1.7e308]),
        ("p", "metrics", {"a": 1e308, "b": 1e308, "c": -1e308}),
        ("p", "metrics", [1, 2]),
    ],
)
def test_mistyped_field(where: str, key: str, value: Any) -> None:
    edit = _with_header if where == "h" else _with_payload
    _reject(edit(_good_insight(), **{key: value}), Reason.BAD_FIELD)


def test_bad_array_descriptor() -> None:
    frames = _good_delta()
    _reject(_with_header(frames, a=[["<f4"]]), Reason.BAD_ARRAY)
    _reject(_with_header(frames, a=[["<f4", [2, -3]]]), Reason.BAD_ARRAY)
    _reject(_with_header(frames, a=[["<f4", [1] * 9]]), Reason.BAD_ARRAY)
    _reject(_with_payload(frames, tensors={"w": 5}), Reason.BAD_ARRAY)


def test_unreferenced_array_frame() -> None:
    frames = _good_delta()
    _reject(_with_payload(frames, tensors={}), Reason.BAD_ARRAY)


@pytest.mark.parametrize("code", ["|O", "<c8", ">f4", "<U4", "|V8", "<M8[s]", "f4"])
def test_disallowed_dtype(code: str) -> None:
    _reject(_with_header(_good_delta(), a=[[code, [2, 3]]]), Reason.BAD_DTYPE)


def test_too_many_elements() -> None:
    frames = _good_delta(np.ones(1000, np.float32))
    _reject(frames, Reason.TOO_MANY_ELEMENTS, LAN.with_(max_array_elements=999))
    two = [
        bytes(memoryview(f))
        for f in encode(
            Envelope(
                "a",
                1,
                "d",
                Delta("m", {"x": np.ones(600, np.float32), "y": np.ones(600, np.float32)}, 0, 1),
                1.0,
            )
        )
    ]
    _reject(two, Reason.TOO_MANY_ELEMENTS, LAN.with_(max_total_elements=1000))


def test_shape_mismatch_against_frame() -> None:
    frames = _good_delta()
    _reject(_with_header(frames, a=[["<f4", [2, 4]]]), Reason.SHAPE_MISMATCH)
    _reject([*frames[:2], frames[2][:-1]], Reason.SHAPE_MISMATCH)


def test_qtable_shape_must_match_its_labels() -> None:
    env = Envelope("a", 1, "d", QTable(("s",), ("x", "y"), np.zeros((1, 2)), np.zeros((1, 2))), 1.0)
    frames = [bytes(memoryview(f)) for f in encode(env)]
    _reject(_with_payload(frames, actions=["x", "y", "z"]), Reason.SHAPE_MISMATCH)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
@pytest.mark.parametrize("code", ["<f2", "<f4", "<f8"])
def test_non_finite_values(bad: float, code: str) -> None:
    arr = np.zeros(100, dtype=code)
    arr[57] = bad
    _reject(_good_delta(arr), Reason.NON_FINITE)


def test_huge_finite_float64_values_pass() -> None:
    arr = np.full(10, 1e300)
    decode(_good_delta(arr))


def test_non_finite_check_can_be_left_to_the_merge() -> None:
    arr = np.array([np.nan], np.float32)
    decode(_good_delta(arr), LAN.with_(check_values=False))


def test_signature_frame_must_be_64_bytes() -> None:
    frames = _with_header(_good_insight(), g=True)
    _reject([*frames, b"short"], Reason.BAD_SIGNATURE)
    assert decode([*frames, bytes(64)]).signature == bytes(64)


def test_a_known_message_is_skipped_after_its_header_before_its_arrays() -> None:
    arr = np.zeros(100, np.float32)
    arr[3] = np.nan  # reading the arrays would say non_finite; a skipped message never gets there
    frames = _good_delta(arr)
    asked: list[tuple[str, int]] = []

    def known(sender: str, seq: int) -> bool:
        asked.append((sender, seq))
        return True

    with pytest.raises(ProtocolError) as info:
        decode(frames, LAN, skip=known)
    assert info.value.reason is Reason.DUPLICATE and asked == [("a", 1)]
    # A header that is itself invalid is rejected for that, whatever skip would say.
    _bad = _with_header(frames, n=-1)
    with pytest.raises(ProtocolError) as info:
        decode(_bad, LAN, skip=known)
    assert info.value.reason is Reason.BAD_FIELD


def _good_hello() -> list[Any]:
    hello = Hello("tcp://10.0.0.2:5555", "tcp://[fd00::2]:5556", ("math",), (), "n")
    return [bytes(memoryview(f)) for f in encode(Envelope("a", 1, GLOBAL_DOMAIN, hello, 1.0))]


def test_advertised_ip_endpoints_pass() -> None:
    env = decode(_good_hello(), LAN)
    assert isinstance(env.body, Hello) and env.body.router == "tcp://[fd00::2]:5556"


@pytest.mark.parametrize(
    "endpoint",
    [
        "tcp://seed.example.org:5555",  # a name: ZeroMQ would look it up on its I/O thread
        "tcp://localhost:5555",
        "tcp://127.0.0.q:1",
        "tcp://10.0.0.2",  # no port
        "tcp://10.0.0.2:0",
        "tcp://10.0.0.2:65536",
        "tcp://10.0.0.2:+55",
        "tcp://10.0.0.2:\u0665\u0665",  # digits, but not ASCII ones
        "tcp://fd00::2:5555",  # IPv6 without brackets
        "ipc:///tmp/node.sock",
        "udp://10.0.0.2:5555",
        "10.0.0.2:5555",
    ],
)
def test_advertised_endpoints_must_be_tcp_to_an_ip_literal(endpoint: str) -> None:
    _reject(_with_payload(_good_hello(), pub=endpoint), Reason.BAD_FIELD)
    _reject(_with_payload(_good_hello(), peers=[["p", "tcp://10.0.0.3:1", endpoint]]), Reason.BAD_FIELD)


def _frames(body: Any) -> list[Any]:
    return [bytes(memoryview(f)) for f in encode(Envelope("a", 1, "d", body, 1.0))]


@pytest.mark.parametrize(
    ("values", "visits"), [("<f2", "<f8"), ("<i8", "<f8"), ("<f8", "|b1"), ("<f8", "<f2")]
)
def test_qtable_dtypes_are_those_of_the_spec(values: str, visits: str) -> None:
    """Section 4: values ``<f4``/``<f8``, visits those or an integer type; ``<f2`` is refused."""
    table = QTable(("s",), ("x", "y"), np.zeros((1, 2), values), np.zeros((1, 2), visits))
    _reject(_frames(table), Reason.BAD_DTYPE)


def test_a_prompt_template_must_hold_the_question() -> None:
    decode(_frames(Prompt("math", "Think. {question}", 0.5, 3)))
    _reject(_frames(Prompt("math", "Think step by step.", 0.5, 3)), Reason.BAD_FIELD)


def test_more_arrays_than_the_limit_are_too_many_frames() -> None:
    delta = Delta("m", {f"t{i}": np.zeros(1, np.float32) for i in range(9)}, 0, 1)
    _reject(_frames(delta), Reason.TOO_MANY_FRAMES, LAN.with_(max_arrays=8))


def test_an_array_referenced_twice_is_a_bad_array() -> None:
    frames = _frames(Delta("m", {"w": np.zeros(2, np.float32), "b": np.zeros(2, np.float32)}, 0, 1))
    _reject(_with_payload(frames, tensors={"w": 0, "b": 0}), Reason.BAD_ARRAY)


def test_a_body_error_is_charged_to_its_author_but_an_envelope_error_to_nobody() -> None:
    assert _reject(_with_payload(_good_insight(), loss=["x"]), Reason.BAD_FIELD).author == "node-a"
    assert _reject(_with_header(_good_insight(), n=-1), Reason.BAD_FIELD).author is None


def test_a_bad_body_on_an_unknown_version_is_an_unknown_version() -> None:
    frames = _with_payload(_with_header(_good_insight(), v=PROTOCOL_MAX + 1), loss="garbage")
    _reject(frames, Reason.UNKNOWN_VERSION)


def test_edge_limits_apply_to_lists() -> None:
    names = [f"e{i}" for i in range(5000)]
    body = Insight(names, [0.0] * 5000, [0] * 5000, 0.0, 0)
    decode(_frames(body))
    _reject(_frames(body), Reason.BAD_FIELD, EDGE.with_(max_header_bytes=LAN.max_header_bytes))
