"""What the dashboard shows, kept current by increments instead of rescans.

A million transcripts with verdicts from several monitors is too much to aggregate per page
view. Verdicts, transcripts and labels are insert-only, so each request first reads four cheap
change markers (the largest verdict, transcript and queue-item ids; the count and largest id
of labels) and then:

* per-monitor counts and the sources/models/tasks menus add only the rows past the marker;
* a monitor's scored population (ids and scores, for estimates and new queue batches) is
  read once, from a covering index, and extended with new verdicts;
* the latest labels and the queue history are re-read when their markers move (labels are
  few), and the fault-rate estimates and calibration plots are recomputed only then.

Recomputing an estimate over a large population takes a second or so; above
``sync_limit`` transcripts it runs in a background thread while pages show the previous
estimate marked as updating (the dashboard's script fetches the new one). The first
computation, with nothing to show meanwhile, runs in the request.

Deletions (a transcript removed with its verdicts) are the one change an increment cannot
see, and on PostgreSQL a transaction may commit an id below the marker after the marker moved
past it; so every ``rebuild_every`` seconds the whole state is rebuilt from scratch in a
background thread and swapped in, the old one serving until then. The cache belongs to one app
instance (no module-level state); one lock guards it.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field, replace
from typing import TypeVar

import numpy as np

from oversight.errors import OversightError
from oversight.monitors.evaluate import MonitorQuality, calibration_plot_svg, quality_from_scores
from oversight.review.estimates import (
    BatchStatus,
    QueueHistory,
    estimate_with_history,
    queue_history,
)
from oversight.stats.estimate import RateEstimate
from oversight.store import aggregates
from oversight.store.aggregates import LatestLabels, MonitorCounts, ScoredPopulation
from oversight.store.db import Store

T = TypeVar("T")
#: Bootstrap resamples for the calibration plot's AUROC interval (the plot is per label change).
_BOOT = 200
_Key = tuple[str, str, int, tuple[int, int], int]
#: Seconds a background estimate waits before it starts: the request that started it answers
#: first, and labels arriving together are folded into one computation.
_SETTLE = 0.3


@dataclass(frozen=True)
class MonitorSummary:
    counts: MonitorCounts
    latest: bool
    n_labelled: int
    n_faults_labelled: int
    estimate: RateEstimate | None
    #: Why there is no estimate (no labels yet, no queue batch fully labelled yet…).
    estimate_error: str | None
    #: The monitor's queue batches and whether the estimate could use each.
    batches: tuple[BatchStatus, ...] = ()
    notes: tuple[str, ...] = ()
    #: True while a newer estimate is being computed (this one predates the latest labels).
    updating: bool = False


@dataclass(frozen=True)
class Calibration:
    quality: MonitorQuality | None
    svg: str
    n_labelled: int


@dataclass
class _State:
    built_at: float = 0.0
    verdict_mark: int = 0
    counts: list[MonitorCounts] = field(default_factory=list)
    transcript_mark: int = 0
    transcripts: int = 0
    facets: dict[str, set[str]] = field(default_factory=dict)
    populations: dict[tuple[str, str], ScoredPopulation] = field(default_factory=dict)
    labels: LatestLabels | None = None
    queue_mark: int = -1
    histories: dict[str, QueueHistory] = field(default_factory=dict)
    #: (monitor, version, population mark, label token, queue mark) -> summary
    estimates: dict[_Key, MonitorSummary] = field(default_factory=dict)
    #: The last summary computed per (monitor, version): shown while a newer one is computed.
    previous: dict[tuple[str, str], MonitorSummary] = field(default_factory=dict)
    calibrations: dict[tuple[str, str, int, tuple[int, int]], Calibration] = field(default_factory=dict)


class StoreCache:
    def __init__(
        self,
        store: Store,
        *,
        rebuild_every: float = 600.0,
        sync_limit: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.store = store
        self.rebuild_every = rebuild_every
        self.sync_limit = sync_limit
        self._clock = clock
        self._lock = threading.RLock()
        self._state = _State()
        self._workers: dict[object, threading.Thread] = {}

    # -- refresh ----------------------------------------------------------------------------
    def _fresh(self) -> _State:
        """The state, brought up to date with the store (call with the lock held)."""
        state = self._state
        if state.built_at == 0.0:
            state.built_at = self._clock()
        elif self._clock() - state.built_at > self.rebuild_every:
            self._spawn("rebuild", self._rebuild)
        self._advance(state)
        return state

    def _advance(self, state: _State) -> None:
        """Add to ``state`` what was stored since its markers."""
        marks = aggregates.markers(self.store)
        if marks.verdicts != state.verdict_mark:
            if marks.verdicts > state.verdict_mark:
                new = aggregates.verdict_counts(self.store, after_id=state.verdict_mark, up_to_id=marks.verdicts)
                state.counts = aggregates.merge_counts(state.counts, new)
            else:  # verdicts went away: count again now (the next rebuild redoes the rest)
                state.counts = aggregates.verdict_counts(self.store, up_to_id=marks.verdicts)
                state.populations.clear()
            state.verdict_mark = marks.verdicts
        if marks.transcripts != state.transcript_mark:
            n_new, _ = aggregates.transcript_total(self.store, after_id=state.transcript_mark)
            state.transcripts += n_new
            for name, values in aggregates.facet_values(self.store, after_id=state.transcript_mark).items():
                state.facets.setdefault(name, set()).update(values)
            state.transcript_mark = marks.transcripts
        if state.labels is None or state.labels.token != marks.labels:
            state.labels = aggregates.latest_labels(self.store)
            state.histories.clear()  # they hold first-label times
            state.calibrations.clear()
        if marks.queue_items != state.queue_mark:
            state.queue_mark = marks.queue_items
            state.histories.clear()

    def _rebuild(self) -> None:
        """Build a state from scratch (outside the lock) and swap it in."""
        fresh = _State(built_at=self._clock())
        self._advance(fresh)
        with self._lock:
            wanted = list(self._state.populations)
        for monitor, version in wanted:
            self._population(fresh, monitor, version)
        with self._lock:
            fresh.previous = dict(self._state.previous)
            self._state = fresh

    def _spawn(self, key: object, work: Callable[[], None], *, delay: float = 0.0) -> None:
        """Run ``work`` in a daemon thread unless one for ``key`` is running (lock held).
        ``delay`` lets the request that asked finish first: the work holds the GIL."""
        running = self._workers.get(key)
        if running is not None and running.is_alive():
            return

        def run() -> None:
            try:
                time.sleep(delay)
                work()
            finally:
                with self._lock:
                    self._workers.pop(key, None)

        thread = threading.Thread(target=run, name=f"oversight-cache-{key}", daemon=True)
        self._workers[key] = thread
        thread.start()

    def warm_in_background(self) -> None:
        """Read every monitor's counts, population and estimate now, in a thread, so the first
        visitor of a large store does not wait for them (``oversight web`` calls this)."""
        def warm() -> None:
            self.summaries()

        with self._lock:
            self._spawn("warm", warm)

    def wait_idle(self, timeout: float = 60.0) -> None:
        """Wait for background work (tests and benchmarks)."""
        deadline = time.monotonic() + timeout
        while True:
            with self._lock:
                threads = list(self._workers.values())
            if not threads or time.monotonic() > deadline:
                return
            for t in threads:
                t.join(timeout=max(0.0, deadline - time.monotonic()))

    def _locked(self, read: Callable[[_State], T]) -> T:
        with self._lock:
            return read(self._fresh())

    # -- reads ------------------------------------------------------------------------------
    def monitor_counts(self) -> list[MonitorCounts]:
        return self._locked(lambda s: list(s.counts))

    def versions(self) -> dict[str, str]:
        """Each monitor's latest version (the one dashboards, lists and queues use)."""
        return self._locked(lambda s: aggregates.latest_versions(s.counts))

    def transcript_count(self) -> int:
        return self._locked(lambda s: s.transcripts)

    def facets(self) -> dict[str, list[str]]:
        return self._locked(lambda s: {k: sorted(v) for k, v in s.facets.items()})

    def labels(self) -> LatestLabels:
        def read(s: _State) -> LatestLabels:
            assert s.labels is not None
            return s.labels

        return self._locked(read)

    def population(self, monitor: str, version: str) -> ScoredPopulation:
        with self._lock:
            return self._population(self._fresh(), monitor, version)

    def _population(self, state: _State, monitor: str, version: str) -> ScoredPopulation:
        key = (monitor, version)
        known = state.populations.get(key)
        if known is None or known.max_verdict_id < state.verdict_mark:
            known = aggregates.scored_population(self.store, monitor, version, since=known)
            # The population is current up to the marker even when its last verdict is older.
            known = ScoredPopulation(known.monitor, known.version, known.ids, known.scores, max(state.verdict_mark, known.max_verdict_id))
            state.populations[key] = known
        return known

    def summaries(self) -> list[MonitorSummary]:
        """Every monitor version with its counts, labels and fault-rate estimate."""
        with self._lock:
            state = self._fresh()
            latest = aggregates.latest_versions(state.counts)
            return [self._summary(state, c, latest.get(c.monitor) == c.version) for c in state.counts]

    def summary(self, monitor: str, version: str) -> MonitorSummary | None:
        with self._lock:
            state = self._fresh()
            latest = aggregates.latest_versions(state.counts)
            for c in state.counts:
                if c.monitor == monitor and c.version == version:
                    return self._summary(state, c, latest.get(monitor) == version)
        return None

    def _summary(self, state: _State, counts: MonitorCounts, latest: bool) -> MonitorSummary:
        assert state.labels is not None
        population = self._population(state, counts.monitor, counts.version)
        key: _Key = (counts.monitor, counts.version, population.max_verdict_id, state.labels.token, state.queue_mark)
        if key in state.estimates:
            return replace(state.estimates[key], counts=counts, latest=latest)
        history = state.histories.get(counts.monitor)
        if history is None:
            history = state.histories[counts.monitor] = queue_history(self.store, counts.monitor)
        labels = state.labels
        previous = state.previous.get((counts.monitor, counts.version))
        if previous is not None and len(population) > self.sync_limit:
            def work() -> None:
                summary = _estimate(counts, latest, population, labels, history)
                with self._lock:
                    state.estimates[key] = summary
                    state.previous[(counts.monitor, counts.version)] = summary

            # One computation per monitor version at a time; a request after it finishes starts
            # the next if labels moved on meanwhile.
            self._spawn(("estimate", counts.monitor, counts.version), work, delay=_SETTLE)
            return replace(previous, counts=counts, latest=latest, updating=True)
        summary = _estimate(counts, latest, population, labels, history)
        state.estimates[key] = summary
        state.previous[(counts.monitor, counts.version)] = summary
        return summary

    def calibration(self, monitor: str, version: str) -> Calibration:
        """Monitor score against the human labels (the labelled transcripts, as the queue chose
        them), as a reliability diagram."""
        with self._lock:
            state = self._fresh()
            assert state.labels is not None
            population = self._population(state, monitor, version)
            key = (monitor, version, population.max_verdict_id, state.labels.token)
            if key not in state.calibrations:
                state.calibrations[key] = _calibration(population, state.labels, monitor)
            return state.calibrations[key]


def _estimate(counts: MonitorCounts, latest: bool, population: ScoredPopulation, labels: LatestLabels, history: QueueHistory) -> MonitorSummary:
    found, _ = population.scores_of(labels.ids)
    n_labelled = int(found.sum())
    n_faults = int(labels.labels[found].sum()) if n_labelled else 0
    try:
        result = estimate_with_history(population, labels, history)
        return MonitorSummary(counts, latest, n_labelled, n_faults, result.estimate, None, result.batches, result.notes)
    except OversightError as e:
        return MonitorSummary(counts, latest, n_labelled, n_faults, None, str(e), _statuses(population, labels, history))


def _calibration(population: ScoredPopulation, labels: LatestLabels, monitor: str) -> Calibration:
    found, scores = population.scores_of(labels.ids)
    ok = found & ~np.isnan(scores)
    y, s = labels.labels[ok], scores[ok]
    quality = None
    if y.size:
        quality = quality_from_scores(y, s, (s >= 0.5).astype(int), n_boot=_BOOT if y.size >= 2 else 0)
    if quality is None:
        return Calibration(None, _empty_plot(), 0)
    return Calibration(quality, calibration_plot_svg(quality, plot_id=f"cal-{monitor}", title=monitor), int(y.size))


def _empty_plot() -> str:
    return (
        '<svg xmlns="http://www.w3.org/2000/svg" width="240" height="60" viewBox="0 0 240 60">'
        '<text x="8" y="34" font-family="sans-serif" font-size="12" fill="#6e7781">no labels yet</text></svg>'
    )


def _statuses(population: ScoredPopulation, labels: LatestLabels, history: QueueHistory) -> tuple[BatchStatus, ...]:
    """Progress of each batch (items labelled of items) when no estimate can be made yet."""
    labelled = set(labels.ids[population.scores_of(labels.ids)[0]].tolist())
    return tuple(
        BatchStatus(b.batch_id, b.policy, b.created_at, len(b.ids), sum(t in labelled for t in b.ids), False, None) for b in history.batches
    )
