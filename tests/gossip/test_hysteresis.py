import itertools
import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from metamesh.gossip.hysteresis import DomainMembership


def test_joins_above_enter_and_leaves_below_exit_after_dwell() -> None:
    dm = DomainMembership(enter=0.3, exit=0.1, min_dwell=10)
    assert dm.update({"math": 0.29}, 0) == []
    [c] = dm.update({"math": 0.31}, 1)
    assert c.joined and dm.domains == {"math"}
    assert dm.update({"math": 0.05}, 5) == []  # below exit, but dwell not over
    [c] = dm.update({"math": 0.05}, 11)
    assert not c.joined and dm.domains == frozenset()


def test_no_change_inside_the_band() -> None:
    dm = DomainMembership(enter=0.3, exit=0.1, min_dwell=0)
    dm.update({"d": 0.5}, 0)
    rng = random.Random(3)
    for t in range(1, 1000):
        assert dm.update({"d": rng.uniform(0.1, 0.3)}, t) == []
    assert dm.domains == {"d"}


@given(st.lists(st.floats(0, 1), min_size=1, max_size=300), st.floats(0.5, 20))
def test_square_wave_or_noise_changes_at_most_once_per_dwell(values: list[float], dwell: float) -> None:
    dm = DomainMembership(enter=0.6, exit=0.4, min_dwell=dwell)
    leaves = []
    for t, v in enumerate(values):
        leaves += [c.at for c in dm.update({"d": v}, float(t)) if not c.joined]
    for a, b in itertools.pairwise(sorted(leaves)):
        assert b - a >= dwell


def test_bad_thresholds_are_refused() -> None:
    with pytest.raises(ValueError, match="exit"):
        DomainMembership(enter=0.1, exit=0.2, min_dwell=1)
