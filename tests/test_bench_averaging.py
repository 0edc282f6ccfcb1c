import random

import numpy as np

from bench.averaging import mesh_graph, simulate_push_sum, simulate_tables, spread_rounds


def test_mesh_graph_has_the_degree_floor() -> None:
    adj = mesh_graph(50, 6, random.Random(1))
    assert all(len(a) >= 6 for a in adj)
    assert all(i in adj[j] for i, a in enumerate(adj) for j in a)  # undirected


def test_tables_reach_the_exact_weighted_average_even_with_loss() -> None:
    adj = mesh_graph(64, 6, random.Random(2))
    rng = np.random.default_rng(2)
    values, samples = list(rng.normal(size=64)), list(rng.integers(1, 100, 64).astype(float))
    clean = simulate_tables(values, samples, adj, loss=0.0, rounds=20, keepalive=10, rng=random.Random(3))
    lossy = simulate_tables(values, samples, adj, loss=0.1, rounds=40, keepalive=10, rng=random.Random(3))
    assert clean.rounds_to_target is not None and clean.rounds_to_target <= 8
    assert clean.residual < 1e-12 and lossy.residual < 1e-12


def test_push_sum_converges_without_loss_and_is_biased_with_it() -> None:
    adj = mesh_graph(32, 6, random.Random(4))
    rng = np.random.default_rng(4)
    values, samples = list(rng.normal(1, 0.5, 32)), list(rng.integers(1, 100, 32).astype(float))
    clean = simulate_push_sum(values, samples, adj, loss=0.0, rounds=60, fanout=2, rng=random.Random(5))
    lossy = simulate_push_sum(values, samples, adj, loss=0.1, rounds=60, fanout=2, rng=random.Random(5))
    assert clean.residual < 1e-6
    assert lossy.residual > 1e-4


def test_relay_reaches_everyone_in_few_rounds() -> None:
    rounds = spread_rounds(mesh_graph(100, 6, random.Random(6)))
    assert rounds is not None and rounds <= 10
