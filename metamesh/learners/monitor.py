"""The closed-loop monitor (seed 003's CLRS): drift, alignment and coherence of a learner.

Any learner feeds it what it chose (a strategy, a prompt, a model) and, when
there is one, the feedback score of the result (0..1, from a scorer or a
user). Every ``cycle`` observations it reports:

* **drift**: Jensen-Shannon divergence (base 2, so 0..1) between this
  cycle's choice distribution and a reference window — the first
  ``reference_cycles`` cycles after ``warmup_cycles``, frozen until
  :meth:`DriftMonitor.rebaseline` (a reference that slid along would follow
  a slow drift and never see it);
* **alignment**: the mean feedback score of the cycle, judged against the
  reference window's (an LLM that is right 40% of the time is not
  misaligned; one that was right 85% of the time and now is 55% is);
* **coherence** (when peers' distributions are given): 1 minus the mean
  divergence between this node's choices and its domain peers'.

Alerts are Schmitt triggers, as everywhere in metamesh: drift raises above
``drift_raise`` and clears only below ``drift_clear``; misalignment raises
when alignment falls ``alignment_drop`` below the reference's and clears only
once it is back within half that. A value wandering around one threshold
therefore does not flap.

Why JS at these thresholds: with ``k`` choices and ``n`` observations per
cycle, sampling noise alone gives a divergence of about ``(k - 1) / (4 n ln 2)``
against a well-estimated reference (0.03 for 6 choices and 50 observations),
far below the default raise of 0.2, while a learner that moves a third of
its choices to another option scores above 0.1 and one that switches its
favourite outright scores 0.3 and more.

Pure: no clock, no I/O.
"""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field

__all__ = ["CycleReport", "DriftMonitor", "MonitorConfig", "js_divergence"]


def js_divergence(p: Mapping[str, float], q: Mapping[str, float]) -> float:
    """Jensen-Shannon divergence, base 2 (0 for equal distributions, 1 for disjoint ones).

    Inputs are non-negative weights; each is normalised. An empty input counts as uniform
    over the other's support.
    """
    keys = set(p) | set(q)
    if not keys:
        return 0.0
    sp, sq = sum(p.values()), sum(q.values())
    pn = {k: p.get(k, 0.0) / sp for k in keys} if sp > 0 else dict.fromkeys(keys, 1 / len(keys))
    qn = {k: q.get(k, 0.0) / sq for k in keys} if sq > 0 else dict.fromkeys(keys, 1 / len(keys))
    total = 0.0
    for k in keys:
        m = (pn[k] + qn[k]) / 2
        if pn[k] > 0:
            total += pn[k] * math.log2(pn[k] / m)
        if qn[k] > 0:
            total += qn[k] * math.log2(qn[k] / m)
    return max(0.0, min(1.0, total / 2))


@dataclass(frozen=True, slots=True, kw_only=True)
class MonitorConfig:
    cycle: int = 50
    """Observations per cycle."""
    warmup_cycles: int = 0
    """Cycles ignored before the reference window (a learner still exploring)."""
    reference_cycles: int = 4
    drift_raise: float = 0.2
    drift_clear: float = 0.1
    alignment_drop: float = 0.2

    def __post_init__(self) -> None:
        if self.cycle < 1 or self.reference_cycles < 1 or self.warmup_cycles < 0:
            raise ValueError("cycle and reference_cycles must be >= 1, warmup_cycles >= 0")
        if not 0 <= self.drift_clear < self.drift_raise <= 1:
            raise ValueError(
                f"need 0 <= drift_clear < drift_raise <= 1, got {self.drift_clear}, {self.drift_raise}"
            )
        if not 0 < self.alignment_drop <= 1:
            raise ValueError(f"alignment_drop must be in (0, 1], got {self.alignment_drop}")


@dataclass(frozen=True, slots=True)
class CycleReport:
    """One cycle's figures and alert states (``drift`` is None while the reference forms)."""

    cycle: int
    distribution: dict[str, float]
    drift: float | None
    alignment: float | None
    coherence: float | None
    drifting: bool
    misaligned: bool
    changes: tuple[str, ...] = ()
    """Alerts raised or cleared at this cycle: ``drift``, ``drift_cleared``, ``misaligned``, ``aligned``."""


@dataclass(slots=True)
class DriftMonitor:
    """Feed :meth:`observe`; read :attr:`reports`, :attr:`drifting` and :attr:`misaligned`."""

    config: MonitorConfig = field(default_factory=MonitorConfig)
    reports: list[CycleReport] = field(default_factory=list)
    drifting: bool = False
    misaligned: bool = False
    _choices: Counter[str] = field(default_factory=Counter)
    _scores: list[float] = field(default_factory=list)
    _reference: Counter[str] = field(default_factory=Counter)
    _reference_scores: list[float] = field(default_factory=list)
    _reference_cycles: int = 0
    _cycle: int = 0

    def observe(
        self, choice: str, score: float | None = None, *, peers: Sequence[Mapping[str, float]] = ()
    ) -> CycleReport | None:
        """One output: what was chosen and, if known, its feedback score in [0, 1].

        Returns the cycle's report when this observation completes a cycle; ``peers``
        (their latest choice distributions) are then used for coherence.
        """
        if score is not None and not 0.0 <= score <= 1.0:
            raise ValueError(f"feedback scores are in [0, 1], got {score!r}")
        self._choices[choice] += 1
        if score is not None:
            self._scores.append(score)
        if sum(self._choices.values()) < self.config.cycle:
            return None
        return self._close_cycle(peers)

    def rebaseline(self) -> None:
        """Accept the current behaviour as normal: the next cycles form a new reference."""
        self._reference = Counter()
        self._reference_scores = []
        self._reference_cycles = 0
        self.drifting = False
        self.misaligned = False

    def distribution(self) -> dict[str, float]:
        """The last complete cycle's choice shares."""
        return dict(self.reports[-1].distribution) if self.reports else {}

    def _close_cycle(self, peers: Sequence[Mapping[str, float]]) -> CycleReport:
        cfg = self.config
        self._cycle += 1
        n = sum(self._choices.values())
        shares = {k: v / n for k, v in sorted(self._choices.items())}
        drift: float | None = None
        changes: list[str] = []
        alignment = sum(self._scores) / len(self._scores) if self._scores else None
        judged = False
        if self._cycle > cfg.warmup_cycles:
            if self._reference_cycles < cfg.reference_cycles:
                self._reference.update(self._choices)
                self._reference_scores += self._scores
                self._reference_cycles += 1
            else:
                judged = True
                drift = js_divergence(shares, self._reference)
                if not self.drifting and drift > cfg.drift_raise:
                    self.drifting = True
                    changes.append("drift")
                elif self.drifting and drift < cfg.drift_clear:
                    self.drifting = False
                    changes.append("drift_cleared")
        if judged and alignment is not None and self._reference_scores:
            expected = sum(self._reference_scores) / len(self._reference_scores)
            if not self.misaligned and alignment < expected - cfg.alignment_drop:
                self.misaligned = True
                changes.append("misaligned")
            elif self.misaligned and alignment > expected - cfg.alignment_drop / 2:
                self.misaligned = False
                changes.append("aligned")
        coherence = 1.0 - sum(js_divergence(shares, p) for p in peers) / len(peers) if peers else None
        report = CycleReport(
            self._cycle, shares, drift, alignment, coherence, self.drifting, self.misaligned, tuple(changes)
        )
        self.reports.append(report)
        del self.reports[:-1000]  # bounded history
        self._choices = Counter()
        self._scores = []
        return report
