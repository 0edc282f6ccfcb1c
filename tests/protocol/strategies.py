"""Hypothesis strategies for every message kind, and an equality that understands arrays."""

from __future__ import annotations

from typing import Any

import numpy as np
from hypothesis import strategies as st

from metamesh.protocol import (
    ALLOWED_DTYPES,
    GLOBAL_DOMAIN,
    Body,
    Bye,
    Delta,
    Envelope,
    Graft,
    Heartbeat,
    Hello,
    IHave,
    Insight,
    Meta,
    PeerAddr,
    Prompt,
    Prune,
    QTable,
    Snapshot,
    SnapshotRequest,
    Status,
    StatusRequest,
)

names = st.from_regex(r"[A-Za-z0-9_.:-]{1,20}", fullmatch=True)
domains = st.one_of(st.just(GLOBAL_DOMAIN), st.from_regex(r"[a-z0-9][a-z0-9_-]{0,15}", fullmatch=True))
# Lists and maps of numbers must have a finite sum (PROTOCOL.md section 4).
finite = st.floats(min_value=-1e300, max_value=1e300, allow_nan=False, allow_infinity=False, width=64)
nonneg = st.floats(min_value=0, max_value=1e12, allow_nan=False)
counts = st.integers(min_value=0, max_value=2**40)
endpoints = st.builds(lambda p: f"tcp://127.0.0.1:{p}", st.integers(1, 65535))
peers = st.lists(st.builds(PeerAddr, names, endpoints, endpoints), max_size=4).map(tuple)
texts = st.text(max_size=200)
shapes = st.lists(st.integers(0, 4), min_size=0, max_size=3).map(tuple)


@st.composite
def arrays(draw: st.DrawFn, dtype: str | None = None, shape: tuple[int, ...] | None = None) -> np.ndarray:
    code = dtype or draw(st.sampled_from(sorted(ALLOWED_DTYPES)))
    shp = shape if shape is not None else draw(shapes)
    n = int(np.prod(shp)) if shp else 1
    dt = np.dtype(code)
    if dt.kind == "f":
        vals = draw(st.lists(st.floats(-1e4, 1e4, width=16), min_size=n, max_size=n))
    elif dt.kind == "b":
        vals = draw(st.lists(st.booleans(), min_size=n, max_size=n))
    else:
        info = np.iinfo(dt)
        vals = draw(st.lists(st.integers(int(info.min), int(info.max)), min_size=n, max_size=n))
    return np.array(vals, dtype=dt).reshape(shp)


@st.composite
def qtables(draw: st.DrawFn) -> QTable:
    states = tuple(draw(st.lists(st.text(min_size=1, max_size=10), max_size=5, unique=True)))
    actions = tuple(draw(st.lists(st.text(min_size=1, max_size=10), max_size=5, unique=True)))
    shape = (len(states), len(actions))
    values = draw(arrays(draw(st.sampled_from(["<f4", "<f8"])), shape))
    visits = draw(arrays(draw(st.sampled_from(["<i8", "<u4", "<f8"])), shape))
    return QTable(states, actions, values, visits, draw(counts))


label_tuples = st.lists(st.text(min_size=1, max_size=8), max_size=4, unique=True).map(tuple)
tensor_maps = st.dictionaries(names, arrays(), max_size=4)
number_maps = st.dictionaries(names, finite, max_size=5)


@st.composite
def insights(draw: st.DrawFn) -> Insight:
    experts = draw(st.lists(names, max_size=6, unique=True))
    return Insight(
        experts,
        [draw(nonneg) for _ in experts],
        [draw(counts) for _ in experts],
        draw(nonneg),
        draw(counts),
        draw(counts),
        draw(number_maps),
    )


plain = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**63), 2**63 - 1) | finite | texts,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(texts, inner, max_size=3),
    max_leaves=10,
)

bodies: st.SearchStrategy[Body] = st.one_of(
    st.builds(Hello, endpoints, endpoints, st.lists(names, max_size=3).map(tuple), peers, texts),
    st.builds(Heartbeat, endpoints, endpoints, st.lists(names, max_size=3).map(tuple), peers, nonneg),
    st.builds(Bye, texts),
    insights(),
    qtables(),
    st.builds(
        Delta,
        names,
        tensor_maps,
        counts,
        counts,
        counts,
        st.none() | nonneg,
        st.none() | nonneg,
    ),
    st.builds(
        Meta,
        counts,
        st.just("") | names,
        number_maps,
        st.dictionaries(names, label_tuples, max_size=3),
        tensor_maps,
    ),
    st.builds(
        SnapshotRequest, st.lists(names, max_size=3).map(tuple), st.lists(names, max_size=3).map(tuple)
    ),
    st.builds(IHave, names, counts, names, st.integers(0, 16)),
    st.builds(Snapshot, counts, st.dictionaries(names, counts, max_size=4)),
    st.builds(Prompt, names, texts.map(lambda t: t + " {question}"), finite, counts, texts, counts),
    st.just(StatusRequest()),
    st.builds(Status, st.dictionaries(texts, plain, max_size=4)),
    st.just(Graft()),
    st.builds(Prune, nonneg, peers),
)

envelopes = st.builds(
    Envelope,
    sender=names,
    seq=counts,
    domain=domains,
    body=bodies,
    created=nonneg,
    hops=st.integers(0, 16),
    reply_to=st.none() | counts,
)


def same(a: Any, b: Any) -> bool:
    """Deep equality where arrays compare by dtype, shape and bytes."""
    if isinstance(a, np.ndarray) or isinstance(b, np.ndarray):
        a, b = np.asarray(a), np.asarray(b)
        return a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
    if isinstance(a, Body):
        return type(a) is type(b) and all(
            same(getattr(a, name), getattr(b, name)) for name in a.__struct_fields__
        )
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b, strict=True))
    return bool(a == b) and type(a) is type(b)
