from hypothesis import given
from hypothesis import strategies as st

from metamesh.gossip.dedup import SeenCache


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 20)), max_size=200))
def test_never_delivers_a_duplicate_within_capacity(keys: list[tuple[str, int]]) -> None:
    cache = SeenCache(capacity=1000, ttl=100.0)
    delivered = [k for i, k in enumerate(keys) if cache.check_and_add(k, float(i) * 0.01)]
    assert len(delivered) == len(set(delivered)) == len(set(keys))


def test_bounded_in_size_and_time() -> None:
    cache = SeenCache(capacity=10, ttl=5.0)
    for i in range(100):
        cache.check_and_add(("a", i), 0.0)
    assert len(cache) <= 10
    assert cache.check_and_add(("b", 1), 1.0)
    assert not cache.check_and_add(("b", 1), 2.0)
    assert cache.check_and_add(("b", 1), 7.0)  # expired
