"""Hosting a learner: its learning loop, and every call into it guarded.

The node calls only the hooks of :class:`~metamesh.node.learner.Learner`. ``merge`` and
``apply_meta`` run inside the receive loop, so an exception there is caught: counted in
``counters.merge_failed`` by kind, written to the event log and logged at most once per
kind a minute (with how many were not), and the node keeps serving.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable

from metamesh.errors import LLMError
from metamesh.node.core import Core
from metamesh.node.learner import Learner, StepPacer
from metamesh.node.trust import Trust
from metamesh.protocol import Body, Envelope, Meta

__all__ = ["LearnerHost"]

log = logging.getLogger(__name__)

#: Seconds between two reports of merge failures of one kind.
FAILURE_LOG_INTERVAL = 60.0


class LearnerHost:
    """The node's side of the learner contract."""

    def __init__(self, core: Core, learner: Learner | None, trust: Trust) -> None:
        self._core = core
        self.learner = learner
        self._trust = trust
        self._reported: dict[str, float] = {}  # kind -> when a failure was last reported
        self._unreported: Counter[str] = Counter()
        self._undeclared: set[str] = set()

    def accepts(self, kind: str) -> bool:
        return self.learner is not None and kind in self.learner.accepts

    def validate(self, env: Envelope) -> str | None:
        """The learner's verdict on a peer's message of a kind it accepts: None, or why not."""
        if self.learner is None or env.kind not in self.learner.accepts:
            return None
        try:
            return self.learner.validate(env.sender, env.domain, env.body)
        except Exception as exc:  # a learner bug must not end the receive loop
            self._failed(env.kind, "validate", exc)
            return "learner_error"

    def merge(self, env: Envelope) -> bool:
        """Hand a validated message to the learner; False if the learner raised."""
        if self.learner is None or env.kind not in self.learner.accepts:
            return True
        try:
            self.learner.merge(env.sender, env.domain, env.body)
        except Exception as exc:
            self._failed(env.kind, "merge", exc)
            return False
        return True

    def apply_meta(self, meta: Meta) -> None:
        if self.learner is None:
            return
        try:
            self.learner.apply_meta(meta)
        except Exception as exc:
            self._failed("meta", "apply_meta", exc)

    def _failed(self, kind: str, hook: str, exc: Exception) -> None:
        core = self._core
        core.counters.merge_failed[kind] += 1
        now = time.monotonic()
        last = self._reported.get(kind)
        if last is not None and now - last < FAILURE_LOG_INTERVAL:
            self._unreported[kind] += 1
            return
        self._reported[kind] = now
        suppressed = self._unreported.pop(kind, 0)
        reason = f"{type(exc).__name__}: {exc}"[:200]
        core.events.write("merge_failed", kind=kind, hook=hook, reason=reason, suppressed=suppressed)
        log.error(
            "learner %s failed on a %s (%s; %d more since the last report); the node keeps running",
            hook,
            kind,
            reason,
            suppressed,
            exc_info=exc,
        )

    # -- learning --------------------------------------------------------------------

    async def learn_loop(
        self,
        *,
        caught_up: asyncio.Event,
        peers_alive: Callable[[], int],
        peer_joined: asyncio.Event,
        checkpoint: Callable[[], Awaitable[bool]],
        publish: Callable[[str, Body], object],
    ) -> None:
        """Step, share, log and blame, paced, until cancelled."""
        learner = self.learner
        assert learner is not None
        core, cfg = self._core, self._core.config
        if cfg.seed:
            # Learn from what the network already knows: a late joiner starts from its domain's state.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(caught_up.wait(), 15.0)
        if cfg.wait_peers:
            deadline = time.monotonic() + 30.0
            while peers_alive() < cfg.wait_peers and time.monotonic() < deadline:
                peer_joined.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(peer_joined.wait(), deadline - time.monotonic())
            core.events.write("learning", peers=peers_alive())
        backoff, pacer = 1.0, StepPacer()  # the pacer keeps a step that returns at once from spinning
        while True:
            try:
                did_work = await learner.step()
                backoff = 1.0
            except LLMError as exc:
                # The LLM is down or confused: keep gossiping, say it once per outage, retry.
                if backoff == 1.0:
                    log.error("learning paused: %s", exc)
                    core.events.write("llm_error", error=str(exc))
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 30.0)
                continue
            shares = learner.share()
            if shares:
                # Persist before publishing: what a peer has seen survives a kill -9.
                await checkpoint()
            for domain, body in shares:
                if body.KIND in learner.publishes:
                    publish(domain, body)
                elif body.KIND not in self._undeclared:
                    self._undeclared.add(body.KIND)
                    log.error(
                        "learner %s shared a %s, not among the kinds it publishes", learner.name, body.KIND
                    )
            for name, fields in learner.drain_events():
                core.events.write(name, **fields)
            for peer, reason in learner.drain_blame():
                core.counters.reject(reason, peer)
                self._trust.blame(peer, reason)
            await pacer.wait(did_work, cfg.pace)
