"""The fault rate of a monitor's population from the store's labels and queue batches.

    result = estimate_from_store(store, "refusal")
    result.estimate            # rate, CI, n labelled, N, method
    result.batches             # which queue batches were used, and why others were not

The population is every transcript the monitor (one version) scored; each label counts by
the latest judgement of its transcript. How the labels are weighted follows how they were
chosen:

* **Queue batches** (``queue_items`` rows of this monitor): each batch was drawn from the
  transcripts not yet labelled when it was exported, with its own probabilities. Those
  already labelled then are known exactly for that batch, and the batches pool as a
  sequential design (:mod:`oversight.stats.estimate_sequential`): exact, whatever policies
  were mixed. One usable batch is the estimate of :func:`~oversight.stats.estimate.estimate_fault_rate`
  with the earlier labels as a census (π = 1), so ``ppi``, ``stratified`` and the other
  single-design methods stay available.
* A batch is left out, and said so, when its items are not all labelled yet (a batch
  labelled half-way is missing data, possibly not at random: skipped items are often the
  hard ones), when it is a census of the top (π = 1: the other candidates had no chance),
  or when its candidates are not this population less the earlier labels (transcripts
  imported since, or a batch drawn for another version's scores; the batch id records N).
* **No queue batches at all**: labels from a plain label file. Without π they are taken to
  be a simple random sample; with π (carried by the file) one design with those π.

Which transcripts were labelled before a batch is read from the times stored with labels
and queue items; a label written while a batch was being exported may fall on either side,
and a batch it then contradicts (an item both known and drawn) is left out.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import func, select

from oversight.errors import DataError, SpecError
from oversight.review.queue import batch_plan
from oversight.stats.estimate import METHODS, RateEstimate, estimate_fault_rate
from oversight.stats.estimate_domain import domain_outcomes, to_domain
from oversight.stats.estimate_sequential import BatchDraw, sequential_rate_ci
from oversight.store import Store, schema
from oversight.store.aggregates import (
    LatestLabels,
    ScoredPopulation,
    latest_labels,
    scored_population,
)
from oversight.store.schema import as_utc
from oversight.store.subsets import TranscriptSubset, subset_ids

#: Methods that pool several batches; the others need a single design.
POOLING_METHODS = ("auto", "active", "classical")


@dataclass(frozen=True)
class BatchStatus:
    """One queue batch of the monitor, and whether the estimate used it."""

    batch_id: str
    policy: str
    created_at: datetime
    items: int
    labelled: int
    used: bool
    #: Why it was left out (None when used).
    reason: str | None = None


@dataclass(frozen=True)
class StoreEstimate:
    estimate: RateEstimate
    version: str
    batches: tuple[BatchStatus, ...] = ()
    #: Labels of this population that no usable batch drew or knew (not used).
    unused_labels: int = 0
    notes: tuple[str, ...] = field(default=())


def latest_version(store: Store, monitor_name: str) -> str:
    """The version of ``monitor_name`` with the most recent verdict; SpecError when none."""
    V = schema.Verdict
    stmt = (
        select(V.monitor_version)
        .where(V.monitor == monitor_name)
        .group_by(V.monitor_version)
        .order_by(func.max(V.created_at).desc(), V.monitor_version.desc())
        .limit(1)
    )
    with store.engine.connect() as conn:
        version = conn.execute(stmt).scalar_one_or_none()
    if version is None:
        raise SpecError(f"no verdicts from monitor {monitor_name!r} in {store.url}; run `oversight monitor --monitor {monitor_name}` first")
    return str(version)


def gather_estimate(store: Store, monitor_name: str, *, version: str | None = None, method: str = "auto") -> RateEstimate:
    """The fault rate over every transcript the monitor scored (see the module docstring)."""
    return estimate_from_store(store, monitor_name, version=version, method=method).estimate


def estimate_from_store(
    store: Store, monitor_name: str, *, version: str | None = None, method: str = "auto", where: TranscriptSubset | None = None
) -> StoreEstimate:
    """The estimate with the account of which batches and labels it used; ``where`` narrows
    the rate to a subset of the population (see :mod:`oversight.stats.estimate_domain`)."""
    version = version or latest_version(store, monitor_name)
    population = scored_population(store, monitor_name, version)
    in_domain = None
    if where is not None and not where.is_everything:
        in_domain = np.isin(population.ids, subset_ids(store, where), assume_unique=True)
        if not in_domain.any():
            raise SpecError(f"no transcript scored by {monitor_name} {version} matches --where {where.describe()}")
    return estimate_with_history(population, latest_labels(store), queue_history(store, monitor_name), method=method, in_domain=in_domain)


def estimate_for_population(
    population: ScoredPopulation, labels: LatestLabels, *, history: QueueHistory | None = None, method: str = "auto"
) -> RateEstimate:
    """The estimate from data already in memory (the dashboard keeps it up to date). Without
    ``history`` the queue batches are not known and the labels' recorded π are taken as one
    design, which is only approximate when labels come from several batches: pass
    :func:`queue_history` for the exact pooling."""
    return estimate_with_history(population, labels, history or QueueHistory(), method=method).estimate


@dataclass
class QueueBatch:
    """The items of one queue batch as the ``queue_items`` rows hold them."""

    batch_id: str
    policy: str
    created_at: datetime
    ids: list[int] = field(default_factory=list)
    pis: list[float] = field(default_factory=list)


@dataclass(frozen=True)
class QueueHistory:
    """The queue batches of one monitor, oldest first, and when each transcript was first
    labelled (when it stopped being a candidate for later batches)."""

    batches: tuple[QueueBatch, ...] = ()
    first_labelled: dict[int, datetime] = field(default_factory=dict)


def queue_history(store: Store, monitor_name: str) -> QueueHistory:
    """Read the monitor's batches and the first-label times (empty when it has no batches)."""
    L, Q = schema.Label, schema.QueueItem
    with store.engine.connect() as conn:
        items = conn.execute(
            select(Q.batch_id, Q.transcript_id, Q.inclusion_probability, Q.policy, Q.created_at)
            .where(Q.monitor == monitor_name)
            .order_by(Q.id)
        ).all()
        if not items:
            return QueueHistory()
        first = conn.execute(select(L.transcript_id, func.min(L.created_at)).group_by(L.transcript_id)).all()
    batches: dict[str, QueueBatch] = {}
    for batch_id, t, pi, policy, created in items:
        batch = batches.setdefault(str(batch_id), QueueBatch(str(batch_id), str(policy), as_utc(created)))
        batch.created_at = min(batch.created_at, as_utc(created))
        batch.ids.append(int(t))
        batch.pis.append(float(pi))
    ordered = tuple(sorted(batches.values(), key=lambda b: (b.created_at, b.batch_id)))
    # func.min() loses the column's type on SQLite (a string comes back): parse it there.
    return QueueHistory(ordered, {int(t): _as_time(when) for t, when in first})


def estimate_with_history(
    population: ScoredPopulation,
    labels: LatestLabels,
    history: QueueHistory,
    *,
    method: str = "auto",
    in_domain: NDArray[np.bool_] | None = None,
) -> StoreEstimate:
    """The estimate from a population, its labels and the monitor's queue history; given
    ``in_domain`` (aligned with ``population.ids``), the rate of that domain only."""
    if method not in METHODS:
        raise SpecError(f"unknown estimation method {method!r}; accepted: {', '.join(METHODS)}")
    name = f"{population.monitor} {population.version}"
    data = _Data.of(population, labels, history)
    if not data.latest:
        raise SpecError(f"no labels for transcripts scored by {name}; label a queue first (`oversight queue`, then `oversight label`)")
    if in_domain is None:
        return _estimate(data, history, method, population.version, name)
    if in_domain.shape != (len(data.ids),):
        raise ValueError(f"in_domain must have one entry per scored transcript ({len(data.ids)}); got shape {in_domain.shape}")
    inside = sum(bool(in_domain[data.position[t]]) for t in data.latest)
    if inside == 0:
        # The variance would be estimated from labels that are all zero by construction.
        raise SpecError(f"none of the {len(data.latest)} labelled transcripts scored by {name} is in the subset; label some of its transcripts first")
    found = _estimate(data.for_domain(in_domain), history, method, population.version, name)
    return replace(found, estimate=to_domain(found.estimate, int(in_domain.sum()), inside))


def _estimate(data: _Data, history: QueueHistory, method: str, version: str, name: str) -> StoreEstimate:
    if not history.batches:
        return StoreEstimate(_unqueued(data, method), version)
    statuses, draws = _assess_batches(data, history)
    usable = [d for d in draws if d is not None]
    if not usable:
        reasons = "; ".join(f"{s.batch_id}: {s.reason}" for s in statuses)
        raise SpecError(f"no queue batch of {name} can be used yet ({reasons})")
    y = np.full(len(data.ids), np.nan)
    for tid, (label, _) in data.latest.items():
        y[data.position[tid]] = label
    try:
        estimate = _from_batches(data, usable, y, method)
    except ValueError as e:
        raise SpecError(str(e)) from None
    used = {int(i) for d in usable for part in (d.drawn, d.known) for i in np.asarray(part)}
    unused = len(data.latest) - len(used)
    notes = tuple(f"batch {s.batch_id} not used: {s.reason}" for s in statuses if not s.used)
    if unused:
        notes += (f"{unused} labels were neither drawn by a usable batch nor made before one; they do not enter the estimate",)
    return StoreEstimate(estimate, version, tuple(statuses), unused, notes)


@dataclass
class _Data:
    ids: list[int]
    scores: np.ndarray[Any, np.dtype[np.float64]]
    position: dict[int, int]
    #: transcript → (latest label, π recorded with it), for the labelled transcripts scored
    latest: dict[int, tuple[int, float | None]]
    first_labelled: dict[int, datetime]

    @classmethod
    def of(cls, population: ScoredPopulation, labels: LatestLabels, history: QueueHistory) -> _Data:
        ids = [int(t) for t in population.ids]
        found, _ = population.scores_of(labels.ids)
        latest = {
            int(t): (int(y), None if np.isnan(pi) else float(pi))
            for t, y, pi in zip(labels.ids[found], labels.labels[found], labels.inclusion[found], strict=True)
        }
        return cls(ids, population.estimate_scores, {t: i for i, t in enumerate(ids)}, latest, history.first_labelled)

    def for_domain(self, in_domain: NDArray[np.bool_]) -> _Data:
        """Labels and scores times the domain indicator: the outcome whose population rate
        is the domain's rate times N_D / N (:mod:`oversight.stats.estimate_domain`)."""
        latest = {t: (y if in_domain[self.position[t]] else 0, pi) for t, (y, pi) in self.latest.items()}
        return replace(self, scores=domain_outcomes(self.scores, in_domain), latest=latest)


def _as_time(value: datetime | str) -> datetime:
    return as_utc(value if isinstance(value, datetime) else datetime.fromisoformat(value))


# --------------------------------------------------------------------------- batches


def _assess_batches(data: _Data, history: QueueHistory) -> tuple[list[BatchStatus], list[BatchDraw | None]]:
    statuses: list[BatchStatus] = []
    draws: list[BatchDraw | None] = []
    for batch in history.batches:
        labelled = sum(t in data.latest for t in batch.ids)
        reason, draw = _batch_draw(data, batch, labelled)
        statuses.append(BatchStatus(batch.batch_id, batch.policy, batch.created_at, len(batch.ids), labelled, draw is not None, reason))
        draws.append(draw)
    return statuses, draws


def _batch_draw(data: _Data, batch: QueueBatch, labelled: int) -> tuple[str | None, BatchDraw | None]:
    outside = [t for t in batch.ids if t not in data.position]
    if outside:
        return f"{len(outside)} of its items are not scored by this version (drawn for another version?)", None
    if labelled < len(batch.ids):
        return f"{len(batch.ids) - labelled} of its {len(batch.ids)} items are not labelled yet", None
    known = [t for t, when in data.first_labelled.items() if when < batch.created_at and t in data.position]
    known_set = set(known)
    if known_set.intersection(batch.ids):
        return "some items were labelled before the batch was exported (a label written meanwhile?)", None
    candidates = len(data.ids) - len(known)
    plan = batch_plan(batch.batch_id)
    if plan is not None and plan[0] != candidates:
        return (
            f"it was drawn from {plan[0]} candidates, but this population less the earlier labels "
            f"has {candidates} (transcripts added since, or drawn for another version)"
        ), None
    if all(p >= 1.0 for p in batch.pis) and len(batch.ids) < candidates:
        return "a census of the top (π = 1) says nothing about the other candidates; its labels count for the batches drawn after it", None
    return None, BatchDraw(
        drawn=np.array([data.position[t] for t in batch.ids], dtype=np.int64),
        inclusion_probabilities=np.array(batch.pis),
        known=np.array(sorted(data.position[t] for t in known), dtype=np.int64),
        expected_size=None if plan is None else float(plan[1]),
    )


def _from_batches(data: _Data, usable: list[BatchDraw], labels: np.ndarray[Any, np.dtype[np.float64]], method: str) -> RateEstimate:
    if len(usable) == 1:
        # One design: the earlier labels are its census; every single-design method applies.
        (draw,) = usable
        index = np.concatenate([np.asarray(draw.known, dtype=np.int64), np.asarray(draw.drawn, dtype=np.int64)])
        pis = np.concatenate([np.ones(len(np.asarray(draw.known))), np.asarray(draw.inclusion_probabilities, dtype=np.float64)])
        return estimate_fault_rate(labels[index], data.scores[index], data.scores, inclusion_probabilities=pis, method=method)  # type: ignore[arg-type]
    if method not in POOLING_METHODS:
        raise ValueError(
            f"method {method!r} needs a single design, but the labels come from {len(usable)} queue "
            f"batches; use one of {', '.join(POOLING_METHODS)}"
        )
    return sequential_rate_ci(data.scores, labels, usable, use_monitor=method != "classical")


def _unqueued(data: _Data, method: str) -> RateEstimate:
    """Labels with no queue batch behind them: a simple random sample, or one design by π."""
    ids = sorted(data.latest)
    pis = [data.latest[i][1] for i in ids]
    if any(p is None for p in pis) and not all(p is None for p in pis):
        missing = sum(p is None for p in pis)
        raise DataError(
            f"{missing} of {len(pis)} labels carry no inclusion probability and the others do: "
            "labels from a queue and labels chosen some other way cannot be combined in one estimate"
        )
    index = np.array([data.position[i] for i in ids], dtype=np.int64)
    try:
        return estimate_fault_rate(
            [data.latest[i][0] for i in ids],
            data.scores[index],
            data.scores,
            inclusion_probabilities=None if pis[0] is None else [float(p) for p in pis if p is not None],
            method=method,  # type: ignore[arg-type]
        )
    except ValueError as e:
        raise SpecError(str(e)) from None
