"""Chaos: kill -9 and restart nodes at random moments while they learn, and pause one.

Four prompt-learning node processes federate. A witness thread subscribes to each node's
own PUB and records, for every message a node authors, its sequence number and, for
Q-tables, the visit counts and episode number it carries: what peers have seen. Ten
times a random node is killed with SIGKILL at a random moment and restarted; once a node
is paused with SIGSTOP until its peers suspect it, then resumed. At the end:

* no sequence number was reused: each node's numbers only ever grow, across restarts;
* no learned state was lost: each node's published visit counts and episodes never go back;
* every node is alive to every other, and they agree: held-out accuracy within a band.
"""

from __future__ import annotations

import itertools
import queue
import random
import signal
import threading
from collections import defaultdict

import numpy as np
import pytest
import zmq

from metamesh.protocol import QTable, decode
from tests.cluster import Cluster, NodeProcess, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]

KILLS = 10
LEARNER = ("--learner", "prompts", "--pace", "0.01", "--eval-every", "100")


class Witness(threading.Thread):
    """Listens to each node's own PUB; every socket lives and dies in this thread."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self._requests: queue.Queue[tuple[str, str]] = queue.Queue()
        self._done = threading.Event()
        self.seqs: dict[str, list[int]] = defaultdict(list)
        self.tables: dict[tuple[str, str], list[tuple[float, int]]] = defaultdict(list)
        self.lock = threading.Lock()

    def watch(self, node_id: str, pub: str) -> None:
        self._requests.put((node_id, pub))

    def close(self) -> None:
        self._done.set()
        self.join(10)

    def run(self) -> None:
        ctx = zmq.Context()
        socks: dict[str, zmq.Socket[bytes]] = {}
        owner: dict[zmq.Socket[bytes], str] = {}
        poller = zmq.Poller()
        try:
            while not self._done.is_set():
                while not self._requests.empty():
                    node_id, pub = self._requests.get()
                    old = socks.pop(node_id, None)
                    if old is not None:
                        self._drain(old, node_id)  # what the old incarnation sent comes first
                        poller.unregister(old)
                        old.close(linger=0)
                    sock = ctx.socket(zmq.SUB)
                    sock.setsockopt(zmq.SUBSCRIBE, b"")
                    sock.setsockopt(zmq.RCVHWM, 100_000)
                    sock.connect(pub)
                    socks[node_id], owner[sock] = sock, node_id
                    poller.register(sock, zmq.POLLIN)
                for sock, _ in poller.poll(20):
                    self._drain(sock, owner[sock])  # type: ignore[index]
        finally:
            for sock in socks.values():
                sock.close(linger=0)
            ctx.term()

    def _drain(self, sock: zmq.Socket[bytes], node_id: str) -> None:
        while True:
            try:
                frames = sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            env = decode(frames)
            if env.sender != node_id:
                continue  # a relayed message of someone else's
            with self.lock:
                self.seqs[node_id].append(env.seq)
                if isinstance(env.body, QTable):
                    visits = float(np.asarray(env.body.visits).sum())
                    self.tables[(node_id, env.domain)].append((visits, env.body.episodes))


def accuracy(node: NodeProcess) -> float | None:
    report = node.status()
    return None if report is None else report["learner"].get("accuracy")


def test_kill_9_and_restart_at_random_moments_loses_nothing(cluster: Cluster) -> None:
    rng = random.Random(1201)
    witness = Witness()
    witness.start()
    try:
        first = cluster.start("n0", *LEARNER)
        nodes = [first] + [
            cluster.start(f"n{i}", *LEARNER, "--seed", first.router, "--random-seed", str(i))
            for i in range(1, 4)
        ]
        for node in nodes:
            witness.watch(node.id, node.info["pub"])
        names = {n.id for n in nodes}

        def all_alive() -> bool:
            return all(
                set(n.peer_states().values()) == {"alive"} and set(n.peer_states()) >= names - {n.id}
                for n in nodes
            )

        wait_until(all_alive, 30, "a full cluster")
        incarnations: dict[str, int] = defaultdict(lambda: 1)
        for k in range(KILLS):
            victim = rng.choice(nodes)
            # A random moment: some time into learning, measured in the victim's own episodes.
            start = (victim.status() or {}).get("learner", {}).get("episodes", 0)
            target = start + rng.randint(3, 40)
            wait_until(
                lambda v=victim, t=target: (v.status() or {}).get("learner", {}).get("episodes", 0) >= t,
                30,
                f"kill {k}: {victim.id} to learn",
            )
            victim.kill()
            victim.start()
            witness.watch(victim.id, victim.info["pub"])
            incarnations[victim.id] += 1
        # A pause: SIGSTOP until every peer suspects it, then SIGCONT; it must come back alive.
        wait_until(all_alive, 40, "every node alive to every other after the kills")
        paused = rng.choice(nodes)
        assert paused.proc is not None
        paused.proc.send_signal(signal.SIGSTOP)
        try:
            others = [n for n in nodes if n is not paused]
            wait_until(
                lambda: all(n.peer_states().get(paused.id) in ("suspect", "dead") for n in others),
                20,
                "the paused node to be suspected",
            )
        finally:
            paused.proc.send_signal(signal.SIGCONT)
        wait_until(all_alive, 40, "every node alive to every other after the chaos")

        # Convergence: every node evaluates after the chaos, and they agree.
        def evaluated() -> list[float] | None:
            values = [accuracy(n) for n in nodes]
            return None if any(v is None for v in values) else [float(v) for v in values if v is not None]

        wait_until(evaluated, 60, "every node to evaluate")
        wait_until(
            lambda: (a := evaluated()) is not None and min(a) >= 0.7 and max(a) - min(a) <= 0.15,
            90,
            "the nodes to converge (accuracy >= 0.7, within 0.15 of each other)",
        )
    finally:
        witness.close()

    assert sum(incarnations.values()) - len(incarnations) == KILLS
    with witness.lock:
        for node_id, seqs in witness.seqs.items():
            assert len(seqs) > 10, node_id
            reused = [(a, b) for a, b in itertools.pairwise(seqs) if b <= a]
            assert not reused, f"{node_id} reused or reordered sequence numbers: {reused[:5]}"
        assert witness.tables, "no Q-table was ever published"
        for (node_id, domain), rows in witness.tables.items():
            went_back = [(a, b) for a, b in itertools.pairwise(rows) if b[0] < a[0] or b[1] < a[1]]
            assert not went_back, f"{node_id}/{domain}: learned state went backwards: {went_back[:5]}"
    for node in nodes:
        report = node.status()
        assert report is not None
        assert report["counters"]["rejected"].get("replayed", 0) == 0, report["counters"]
    witnessed = sum(len(v) for v in witness.seqs.values())
    tables = sum(len(v) for v in witness.tables.values())
    accuracies = evaluated()
    print(f"{KILLS} kill -9 + restarts and 1 SIGSTOP pause survived; {witnessed} messages witnessed, "
          f"0 sequence numbers reused; {tables} Q-tables, none went back; accuracy {accuracies}")  # fmt: skip
