"""Domain averaging and relay over a gossip mesh, simulated (pure, seeded).

Prints, in one run: rounds until every node is within 1e-3 relative error of
the true sample-weighted average for N = 16, 64, 256 — metamesh's latest-state
tables against push-sum with fanout 2 (target at N = 64: at most 14 rounds);
rounds until one relayed message reaches 99.99% of N = 100 nodes (target at
most 10); messages per node per round as D and N vary; and the residual error
with 1% and 10% message loss.

Run: ``python bench/gossip.py``
"""

from __future__ import annotations

import random

import numpy as np
from averaging import mesh_graph, simulate_push_sum, simulate_tables, spread_rounds

from metamesh.protocol import Envelope, encode

D = 6
ROUNDS = 40


def workload(n: int, seed: int) -> tuple[list[float], list[float]]:
    rng = np.random.default_rng(seed)
    return list(rng.normal(1.0, 0.5, n)), list(rng.integers(10, 1000, n).astype(float))


def fmt(x: int | None) -> str:
    return "never" if x is None else str(x)


def main() -> None:
    print(f"mesh degree D = {D}; push-sum fanout 2; {ROUNDS} rounds; keepalive republish every 10 rounds\n")
    print("rounds until every node is within 1e-3 of the true weighted average (no loss):")
    print(f"  {'N':>5} {'tables':>8} {'push-sum':>9}")
    for n in (16, 64, 256):
        rng = random.Random(n)
        adj = mesh_graph(n, D, rng)
        values, samples = workload(n, n)
        t = simulate_tables(values, samples, adj, loss=0.0, rounds=ROUNDS, keepalive=10, rng=random.Random(1))
        p = simulate_push_sum(values, samples, adj, loss=0.0, rounds=ROUNDS, fanout=2, rng=random.Random(1))
        print(f"  {n:>5} {fmt(t.rounds_to_target):>8} {fmt(p.rounds_to_target):>9}")
    adj100 = mesh_graph(100, D, random.Random(100))
    spread = fmt(spread_rounds(adj100))
    print(f"\nrounds until one relayed message reaches 99.99% of N = 100: {spread} (target <= 10)")
    print("\nmessages sent per node per round (tables: one batch per mesh neighbour while there is news):")
    print(f"  {'D':>3} {'N':>5} {'messages':>9} {'entries':>8}")
    for d, n in ((3, 64), (6, 64), (12, 64), (6, 16), (6, 256)):
        adj = mesh_graph(n, d, random.Random(d * n))
        values, samples = workload(n, n)
        t = simulate_tables(values, samples, adj, loss=0.0, rounds=ROUNDS, keepalive=10, rng=random.Random(2))
        print(f"  {d:>3} {n:>5} {t.messages_per_node_round:>9.1f} {t.entries_per_node_round:>8.1f}")
    print("\nresidual relative error after 40 rounds, N = 64, with message loss:")
    print(f"  {'loss':>5} {'tables':>10} {'push-sum':>10}")
    adj = mesh_graph(64, D, random.Random(64))
    values, samples = workload(64, 64)
    for loss in (0.01, 0.10):
        t = simulate_tables(
            values, samples, adj, loss=loss, rounds=ROUNDS, keepalive=10, rng=random.Random(3)
        )
        p = simulate_push_sum(values, samples, adj, loss=loss, rounds=ROUNDS, fanout=2, rng=random.Random(3))
        print(f"  {loss:>5.0%} {t.residual:>10.2e} {p.residual:>10.2e}")


def send_on_change_run(
    *, timer_every: int | None, episodes: int = 200, seed: int = 0
) -> tuple[int, int, float]:
    """Four prompt learners sharing Q-table rows in one process; returns messages, bytes, accuracy.

    ``timer_every=None`` is send on change (the learner's default gate); a number sends
    every row every that many episodes, whether it changed or not.
    """
    import asyncio
    from dataclasses import replace

    from metamesh.experiments.prompts import node_weights
    from metamesh.learners.factory import parse_weights
    from metamesh.learners.prompts.dataset import CATEGORIES, builtin_trivia, by_category, question_stream
    from metamesh.learners.prompts.learner import PromptLearner, PromptLearnerConfig
    from metamesh.llm.simulated import SimulatedLLM

    questions = builtin_trivia()
    pools = by_category(questions)
    held = [q for c in sorted(pools) for q in random.Random(12345).sample(pools[c], 20)]
    train = [q for q in questions if q not in set(held)]

    async def run() -> tuple[int, int, float]:
        llm = SimulatedLLM(questions, seed=seed)
        config = PromptLearnerConfig(seed=seed)
        if timer_every is not None:
            config = replace(config, share_change=0.0)
        learners = [
            PromptLearner(
                llm,
                question_stream(
                    train, weights=parse_weights(node_weights(i), CATEGORIES), seed=seed * 100 + i
                ),
                config=replace(config, seed=seed * 100 + i),
                categories=CATEGORIES,
            )
            for i in range(4)
        ]
        messages = nbytes = 0
        for episode in range(1, episodes + 1):
            for i, learner in enumerate(learners):
                await learner.step()
                if timer_every is not None and episode % timer_every:
                    continue
                for domain, body in learner.share():
                    frames = encode(Envelope(f"n{i}", episode, domain, body, 0.0))
                    messages += 1
                    nbytes += sum(memoryview(f).nbytes for f in frames)
                    for j, other in enumerate(learners):
                        if j != i:
                            other.merge(f"n{i}", domain, body)
        accuracy = sum([await learner.evaluate(held) for learner in learners]) / len(learners)
        return messages, nbytes, accuracy

    return asyncio.run(run())


def send_on_change_section() -> None:
    print("\nsend on change vs a fixed timer, 4 prompt learners x 200 episodes (messages published):")
    print(f"  {'policy':<28} {'messages':>9} {'kB':>8} {'accuracy':>9}")
    rows = [
        ("send on change (default)", None),
        ("timer: every row, every 5", 5),
        ("timer: every row, every 1", 1),
    ]
    for label, every in rows:
        messages, nbytes, accuracy = send_on_change_run(timer_every=every)
        print(f"  {label:<28} {messages:>9} {nbytes / 1024:>8.1f} {accuracy:>9.1%}")


if __name__ == "__main__":
    main()
    send_on_change_section()
