"""Training streams never draw held-out or selection tasks, whatever the seeds (no torch)."""

from __future__ import annotations

import itertools

import pytest

from metamesh.experiments.braid import BraidExperiment, baselines, node_mix
from metamesh.learners.braid.evaluate import HELDOUT_SEED, SELECTION_SEED, heldout, selection
from metamesh.learners.braid.tasks import TaskStream, parse_mix

pytestmark = pytest.mark.timeout(60)

BUDGETS = (1.5, 4.0, 10.0)


def ids(tasks: object) -> set[int]:
    return {t.id for t in tasks}  # type: ignore[attr-defined]


def test_no_node_of_a_ten_node_run_trains_on_held_out_tasks(tmp_path: object) -> None:
    held = set().union(*(ids(heldout(b, 3000.0)) for b in BUDGETS))
    chosen_on = set().union(*(ids(selection(b, 3000.0)) for b in BUDGETS))
    assert len(held) == 300 and not held & chosen_on  # one set of tasks, under each budget
    study = BraidExperiment(root=tmp_path, nodes=10, seed=0)  # type: ignore[arg-type]
    for i in range(10):
        args = study.node_args("federated", i)
        seed = int(args[args.index("--random-seed") + 1])
        stream = TaskStream(parse_mix(node_mix(i)), budgets=BUDGETS, latency_limit_ms=3000.0, seed=seed)
        seen = ids(itertools.islice(stream, 2000))
        assert not seen & held, (i, seed, len(seen & held))
        assert not seen & chosen_on


@pytest.mark.parametrize("seed", [HELDOUT_SEED, SELECTION_SEED])
def test_a_training_stream_with_the_held_out_seed_draws_other_tasks(seed: int) -> None:
    # Node 5 of a --seed 0 run once had the held-out seed and trained on 92 of its 300 tasks.
    stream = TaskStream(parse_mix(""), budgets=[4.0], latency_limit_ms=3000.0, seed=seed)
    seen = ids(itertools.islice(stream, 3000))
    assert not seen & ids(heldout(4.0, 3000.0)) and not seen & ids(selection(4.0, 3000.0))


def test_the_per_type_lookups_are_in_the_baselines_and_chosen_per_type() -> None:
    base = baselines(BUDGETS, 3000.0)
    for rows in base.values():
        lookup = rows["best per type"]["lookup"]
        assert set(lookup) == {"code", "math", "medical", "qa", "multi"}
        assert len(set(lookup.values())) >= 2  # a pool of specialists: not one model for all
        assert rows["best per type"]["reward"] >= rows["best single"]["reward"]
        assert rows["cheapest per type"]["cost"] <= rows["best per type"]["cost"] + 1e-9


def test_the_study_runs_on_a_given_pool_and_its_baselines_use_it(tmp_path: object) -> None:
    from pathlib import Path

    from metamesh.errors import ConfigError

    flat = Path(__file__).parents[2] / "bench" / "braid_pool_flat.toml"
    study = BraidExperiment(root=tmp_path, pool=str(flat))  # type: ignore[arg-type]
    args = study.node_args("local", 0)
    assert args[args.index("--pool") + 1] == str(flat)
    rows = study.baselines()["10"]
    # Less specialised: the cheapest model near each type's best quality is the 70B for every type.
    assert set(rows["cheapest per type"]["lookup"].values()) == {"general-70b"}
    with pytest.raises(ConfigError):
        BraidExperiment(root=tmp_path, pool=str(flat.with_name("missing.toml"))).baselines()  # type: ignore[arg-type]
