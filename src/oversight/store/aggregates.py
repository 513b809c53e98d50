"""Aggregates over verdicts and transcripts that can be brought up to date incrementally.

Verdicts and transcripts are only ever inserted (a monitor version scores a transcript once;
an import adds rows), so every aggregate here takes ``after_id`` and answers for the rows added
since: a dashboard keeps the totals of 1M rows and adds the few new ones on each refresh
instead of rescanning (see ``web.cache``). Deletions (a transcript removed with its verdicts)
are the one thing an increment cannot see; callers rebuild from scratch now and then.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import and_, case, func, select

from oversight.store import schema
from oversight.store.db import Store

#: Score given to an errored verdict in estimates (the review queue's convention: a failure
#: is maximally uncertain). Same value as ``review.queue.ERROR_SCORE``.
ERROR_SCORE = 0.5


@dataclass(frozen=True)
class MonitorCounts:
    """Verdicts of one monitor version."""

    monitor: str
    version: str
    n_verdicts: int
    n_errors: int
    #: Verdicts whose label is 1: the monitor's own decision at its own threshold.
    n_flagged: int
    score_sum: float
    #: The newest verdict's id (ids grow with time: verdicts are only inserted).
    last_id: int

    @property
    def n_scored(self) -> int:
        return self.n_verdicts - self.n_errors

    @property
    def flagged_rate(self) -> float | None:
        return self.n_flagged / self.n_scored if self.n_scored else None

    @property
    def mean_score(self) -> float | None:
        return self.score_sum / self.n_scored if self.n_scored else None

    def plus(self, other: MonitorCounts) -> MonitorCounts:
        return replace(
            self,
            n_verdicts=self.n_verdicts + other.n_verdicts,
            n_errors=self.n_errors + other.n_errors,
            n_flagged=self.n_flagged + other.n_flagged,
            score_sum=self.score_sum + other.score_sum,
            last_id=max(self.last_id, other.last_id),
        )


@dataclass(frozen=True)
class Markers:
    """The change markers of the insert-only tables, read in one round trip."""

    verdicts: int
    transcripts: int
    queue_items: int
    labels: tuple[int, int]


def markers(store: Store) -> Markers:
    V, T, Q, L = (m.__table__.c for m in (schema.Verdict, schema.Transcript, schema.QueueItem, schema.Label))
    stmt = select(
        select(func.coalesce(func.max(V.id), 0)).scalar_subquery(),
        select(func.coalesce(func.max(T.id), 0)).scalar_subquery(),
        select(func.coalesce(func.max(Q.id), 0)).scalar_subquery(),
        select(func.count()).select_from(schema.Label.__table__).scalar_subquery(),
        select(func.coalesce(func.max(L.id), 0)).scalar_subquery(),
    )
    with store.engine.connect() as conn:
        v, t, q, n, top = conn.execute(stmt).one()
    return Markers(int(v), int(t), int(q), (int(n), int(top)))


def max_id(store: Store, table: type[schema.Base]) -> int:
    """The largest id of a table (0 when empty): an O(log n) change marker for insert-only tables."""
    column = table.__table__.c.id
    with store.engine.connect() as conn:
        return int(conn.execute(select(func.coalesce(func.max(column), 0))).scalar_one())


def verdict_counts(store: Store, *, after_id: int = 0, up_to_id: int | None = None) -> list[MonitorCounts]:
    """Counts per (monitor, version) over verdicts with ``after_id < id <= up_to_id``; every
    column read is in ``ix_verdicts_population``, so a full count scans that index only."""
    V = schema.Verdict
    stmt = select(
        V.monitor,
        V.monitor_version,
        func.count(),
        func.sum(case((V.score.is_(None), 1), else_=0)),
        func.sum(case((V.label == "1", 1), else_=0)),
        func.coalesce(func.sum(V.score), 0.0),
        func.max(V.id),
    ).group_by(V.monitor, V.monitor_version)
    if after_id:
        stmt = stmt.where(V.id > after_id)
    if up_to_id is not None:
        stmt = stmt.where(V.id <= up_to_id)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    return [MonitorCounts(str(m), str(v), int(n), int(e or 0), int(f or 0), float(s or 0.0), int(last)) for m, v, n, e, f, s, last in rows]


def merge_counts(old: list[MonitorCounts], new: list[MonitorCounts]) -> list[MonitorCounts]:
    out = {(c.monitor, c.version): c for c in old}
    for c in new:
        key = (c.monitor, c.version)
        out[key] = out[key].plus(c) if key in out else c
    return sorted(out.values(), key=lambda c: (c.monitor, c.version))


def latest_versions(counts: list[MonitorCounts]) -> dict[str, str]:
    """Per monitor, the version with the newest verdict (``review.estimates.latest_version``'s
    rule, by id instead of time: the same for verdicts stored as they are made)."""
    best: dict[str, MonitorCounts] = {}
    for c in counts:
        seen = best.get(c.monitor)
        if seen is None or c.last_id > seen.last_id:
            best[c.monitor] = c
    return {m: c.version for m, c in sorted(best.items())}


@dataclass(frozen=True)
class ScoredPopulation:
    """Every transcript one monitor version scored: ids ascending, scores aligned (NaN where the
    monitor failed). ``max_verdict_id`` is where an increment resumes."""

    monitor: str
    version: str
    ids: NDArray[np.int64]
    scores: NDArray[np.float64]
    max_verdict_id: int

    def __len__(self) -> int:
        return int(self.ids.size)

    @property
    def estimate_scores(self) -> NDArray[np.float64]:
        """Scores as the estimators take them: a failed verdict counts as :data:`ERROR_SCORE`."""
        return np.where(np.isnan(self.scores), ERROR_SCORE, self.scores)

    def scores_of(self, transcript_ids: NDArray[np.int64]) -> tuple[NDArray[np.bool_], NDArray[np.float64]]:
        """Which of ``transcript_ids`` are in the population, and their scores (NaN if not)."""
        pos = np.searchsorted(self.ids, transcript_ids)
        pos = np.clip(pos, 0, max(self.ids.size - 1, 0))
        found = (self.ids[pos] == transcript_ids) if self.ids.size else np.zeros(transcript_ids.size, dtype=bool)
        scores = np.where(found, self.scores[pos] if self.ids.size else np.nan, np.nan)
        return found, scores


def scored_population(store: Store, monitor: str, version: str, *, since: ScoredPopulation | None = None) -> ScoredPopulation:
    """The population of a monitor version, read whole or, given ``since``, only what was added."""
    after = since.max_verdict_id if since is not None else 0
    mark = "?" if store.dialect == "sqlite" else "%s"
    # In transcript order, the order of ix_verdicts_population, which covers the query.
    sql = f"SELECT id, transcript_id, score FROM verdicts WHERE monitor = {mark} AND monitor_version = {mark} AND id > {mark} ORDER BY transcript_id"
    with store.engine.connect() as conn:
        # The driver's own cursor: at 1M rows SQLAlchemy's row objects would cost seconds.
        cursor = conn.connection.cursor()
        try:
            cursor.execute(sql, (monitor, version, after))
            rows = cursor.fetchall()
        finally:
            cursor.close()
    verdict_ids = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
    newest = int(verdict_ids.max()) if len(rows) else after
    new_ids = np.fromiter((r[1] for r in rows), dtype=np.int64, count=len(rows))
    new_scores = np.fromiter((np.nan if r[2] is None else r[2] for r in rows), dtype=np.float64, count=len(rows))
    if since is not None and since.ids.size:
        new_ids = np.concatenate([since.ids, new_ids])
        new_scores = np.concatenate([since.scores, new_scores])
    if new_ids.size > 1 and not bool(np.all(new_ids[1:] > new_ids[:-1])):
        order = np.argsort(new_ids, kind="stable")
        new_ids, new_scores = new_ids[order], new_scores[order]
    return ScoredPopulation(monitor, version, new_ids, new_scores, newest)


@dataclass(frozen=True)
class LatestLabels:
    """The latest human label of every labelled transcript (a history: the last one counts),
    with the inclusion probability recorded with it (NaN when none was)."""

    ids: NDArray[np.int64]
    labels: NDArray[np.int64]
    inclusion: NDArray[np.float64]
    #: (count, max id) of the labels table when read: changes whenever a label is added.
    token: tuple[int, int] = field(default=(0, 0))

    def __len__(self) -> int:
        return int(self.ids.size)


def labels_token(store: Store) -> tuple[int, int]:
    L = schema.Label
    with store.engine.connect() as conn:
        n, top = conn.execute(select(func.count(), func.coalesce(func.max(L.id), 0))).one()
    return int(n), int(top)


def latest_labels(store: Store) -> LatestLabels:
    """Every transcript's latest label, ids ascending (ties in time broken by label id)."""
    L = schema.Label
    newer = schema.Label.__table__.alias("newer")
    superseded = (
        select(newer.c.id)
        .where(
            newer.c.transcript_id == L.transcript_id,
            (newer.c.created_at > L.created_at) | and_(newer.c.created_at == L.created_at, newer.c.id > L.id),
        )
        .exists()
    )
    stmt = select(L.transcript_id, L.label, L.inclusion_probability).where(~superseded).order_by(L.transcript_id)
    with store.engine.connect() as conn:
        token = conn.execute(select(func.count(), func.coalesce(func.max(L.id), 0))).one()
        rows = conn.execute(stmt).all()
    return LatestLabels(
        ids=np.array([int(r[0]) for r in rows], dtype=np.int64),
        labels=np.array([int(r[1]) for r in rows], dtype=np.int64),
        inclusion=np.array([np.nan if r[2] is None else float(r[2]) for r in rows], dtype=np.float64),
        token=(int(token[0]), int(token[1])),
    )


def transcript_total(store: Store, *, after_id: int = 0) -> tuple[int, int]:
    """(transcripts with id > after_id, the largest id)."""
    T = schema.Transcript
    with store.engine.connect() as conn:
        n, top = conn.execute(select(func.count(), func.coalesce(func.max(T.id), 0)).where(T.id > after_id)).one()
    return int(n), max(int(top), after_id)


def facet_values(store: Store, *, after_id: int = 0, limit: int = 500) -> dict[str, set[str]]:
    """Distinct sources, models and tasks among transcripts with id > after_id (at most
    ``limit`` each: a filter menu, not an inventory)."""
    T = schema.Transcript
    out: dict[str, set[str]] = {}
    with store.engine.connect() as conn:
        for name, column in (("source", T.source), ("model", T.model), ("task", T.task)):
            stmt = select(column).where(column.is_not(None)).distinct().limit(limit)
            if after_id:
                stmt = stmt.where(T.id > after_id)
            out[name] = {str(v) for v in conn.execute(stmt).scalars()}
    return out
