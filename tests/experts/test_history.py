"""The version registry: ordering, bound, round trip."""

from __future__ import annotations

import json

import pytest

from metamesh.learners.experts.history import MergeRecord, VersionHistory


def rec(version: int, *, before: float = 1.0, after: float = 0.5) -> MergeRecord:
    return MergeRecord(
        version=version,
        base_version=version - 1,
        contributors=("a", "b"),
        at=100.0 + version,
        loss_before=before,
        loss_after=after,
    )


def test_records_in_order_and_bounded() -> None:
    hist = VersionHistory(maxlen=3)
    assert hist.latest is None
    for v in range(1, 6):
        hist.record(rec(v))
    assert len(hist) == 3
    assert [r.version for r in hist] == [3, 4, 5]
    assert hist.latest == rec(5)
    assert rec(5).improvement == pytest.approx(0.5)


def test_rejects_non_increasing_versions_and_bad_losses() -> None:
    hist = VersionHistory()
    hist.record(rec(2))
    with pytest.raises(ValueError, match="does not follow"):
        hist.record(rec(2))
    with pytest.raises(ValueError, match="finite"):
        hist.record(rec(3, after=float("nan")))
    with pytest.raises(ValueError):
        VersionHistory(maxlen=0)


def test_round_trip_through_json() -> None:
    hist = VersionHistory(maxlen=4)
    for v in (1, 2, 5):
        hist.record(rec(v))
    back = VersionHistory.from_dict(json.loads(json.dumps(hist.to_dict())))
    assert list(back) == list(hist)
    assert back.maxlen == 4


@pytest.mark.parametrize(
    "bad",
    [
        {},
        {"maxlen": 2},
        {"maxlen": 2, "records": [{"version": 1}]},
        {"maxlen": 2, "records": [{**rec(1).to_dict(), "contributors": "ab"}]},
    ],
)
def test_from_dict_rejects_malformed(bad: dict[str, object]) -> None:
    with pytest.raises(ValueError):
        VersionHistory.from_dict(bad)
