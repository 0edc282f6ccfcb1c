"""No accepted rating is lost: SIGKILL a gateway right after its 200s, restart it on the same home.

The checkpoint interval is an hour, so after the start-up checkpoint the ratings exist only in
the feedback journal; the restarted node must hold every one of them (its rating count, and the
visits of its own Q-row for the category, read back from its final checkpoint).
"""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx
import pytest

from metamesh.gateway.journal import FeedbackJournal, Rating
from metamesh.node.state import NodeDir
from tests.gateway.fakes import MODEL, echo_app, serve_app
from tests.gateway.test_processes import ask, processes, spawn

pytestmark = pytest.mark.timeout(120)
RATINGS = 60


def learner_metric(metrics: str, name: str) -> float:
    for line in metrics.splitlines():
        if line.startswith(f'metamesh_learner{{metric="{name}"}}'):
            return float(line.split()[-1])
    raise AssertionError(f"no learner metric {name!r}")


@pytest.mark.slow
async def test_every_accepted_rating_survives_sigkill(tmp_path: Path) -> None:
    home = tmp_path / "gw"
    async with serve_app(echo_app()) as backend, processes() as started, httpx.AsyncClient() as client:
        args = ("gateway", "--home", str(home), "--profile", "local", "--gateway", "127.0.0.1:0",
                "--backend", f"openai:{backend}/v1:{MODEL}", "--checkpoint-interval", "3600",
                "--rate", "0")  # fmt: skip
        first = await spawn(started, *args)
        ids = [(await ask(client, first.url, f"What is {i}+1?")).headers["x-metamesh-decision"]
               for i in range(RATINGS)]  # fmt: skip

        async def rate(i: int, decision: str) -> int:
            r = await client.post(f"{first.url}/feedback", json={"decision_id": decision, "score": i % 2})
            return r.status_code

        codes = await asyncio.gather(*(rate(i, d) for i, d in enumerate(ids)))
        assert codes == [200] * RATINGS
        first.proc.send_signal(signal.SIGKILL)  # no bye, no last checkpoint
        async with asyncio.timeout(10):
            await first.proc.wait()

        second = await spawn(started, *args)
        metrics = (await client.get(second.url.removesuffix("/v1") + "/metrics")).text
        assert learner_metric(metrics, "ratings") == RATINGS
        # a rated decision is rated for good: rating it again after the restart is refused
        again = await client.post(f"{second.url}/feedback", json={"decision_id": ids[-1], "score": 1})
        assert again.status_code == 404
        assert await second.interrupt() == 0
    state = NodeDir(home).load_checkpoint()
    assert state is not None
    own = state["learner"]["prompts"]["own"]["math"]
    assert sum(own[1]) == RATINGS  # visits of every strategy in the category
    # the final checkpoint holds them all, so the journal keeps none the checkpoint before lacks
    assert len(FeedbackJournal(home / "feedback.journal").replay()) <= RATINGS


def test_journal_skips_a_torn_line_and_compacts_what_a_checkpoint_holds(tmp_path: Path) -> None:
    path = tmp_path / "feedback.journal"
    journal = FeedbackJournal(path)

    async def write() -> None:
        for _ in range(3):
            await journal.append(Rating(journal.next_seq(), "d", "math", "direct", "", 1.0))
        await journal.aclose()

    asyncio.run(write())
    with open(path, "ab") as f:
        f.write(b'[4,"d","ma')  # a write cut short by a kill
    again = FeedbackJournal(path)
    assert [r.seq for r in again.replay()] == [1, 2, 3]
    again.open()
    again.compact(2)
    assert [r.seq for r in FeedbackJournal(path).replay()] == [3]
    again.compact(3)
    assert FeedbackJournal(path).replay() == []


async def test_a_checkpoint_in_flight_keeps_its_ratings_in_the_journal(tmp_path: Path) -> None:
    """The journal drops only what the oldest of the last three states taken holds (one is on disk)."""
    from metamesh.gateway import GatewayConfig, OpenAIBackend, build_gateway
    from metamesh.node.config import load_config

    gw = build_gateway(load_config(profile="local"), GatewayConfig(port=0),
                       backends=[OpenAIBackend("http://127.0.0.1:9/v1", "m")])  # fmt: skip
    learner = gw.learner
    learner.recover(tmp_path / "feedback.journal")

    async def rate_one() -> None:
        decision, _ = learner.decider.decide("What is 1+1?", owner="anonymous", category="math")
        await learner.rate(decision.id, owner="anonymous", score=1.0, reference=None)

    taken = []
    for _ in range(4):  # states at seq 1, 2, 3, 4; the 4th call may drop only seq <= 1
        await rate_one()
        learner.state()
        taken.append([r.seq for r in FeedbackJournal(tmp_path / "feedback.journal").replay()])
    assert taken == [[1], [1, 2], [1, 2, 3], [2, 3, 4]]
    assert learner.journal is not None
    await learner.journal.aclose()
