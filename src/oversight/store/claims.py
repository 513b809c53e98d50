"""Handing review-queue items to reviewers, one reviewer per item, on SQLite and PostgreSQL.

A reviewer *claims* an item: a conditional ``UPDATE … SET lock_owner = me, lock_expires_at =
now + lock WHERE id = :id AND labelled_at IS NULL AND (lock_expires_at IS NULL OR
lock_expires_at <= now)`` that changes one row or none. Both databases make it atomic:

* PostgreSQL (read committed) locks the row for the update; a second claimer of the same row
  waits, then re-checks the ``WHERE`` against the committed row, finds the lock taken and
  updates nothing, and moves on to the next candidate.
* SQLite runs the whole claim in a ``BEGIN IMMEDIATE`` transaction, which takes the database's
  write lock before reading, so claims are serialised (and a deferred transaction's
  read-then-write upgrade, which can fail with "database is locked", never happens).

A transcript can sit in two open items (two batches of the sequential design), so a claim
also checks that no other item of its transcript is held by someone else; that check spans
rows, so on PostgreSQL claims, labels and skips of one monitor also take a transaction
advisory lock (SQLite's write lock already serialises them).

Labelling is the same kind of statement: it sets ``labelled_at`` only if the item is still
unlabelled and locked by this reviewer (or its lock lapsed with nobody else taking it), so a
double-submitted form or a reviewer whose lock was taken over cannot add a second label.
Every label records the reviewer, the time, the item's inclusion probability, policy and
batch, and an audit event, in one transaction.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Connection, and_, exists, func, insert, or_, select, update

from oversight.errors import OversightError, SpecError
from oversight.store import schema
from oversight.store.accounts import audit
from oversight.store.db import Store

#: Candidates tried per claim; more than concurrent reviewers of one queue, in practice.
_CANDIDATES = 20


class ClaimError(OversightError):
    """An item cannot be labelled by this reviewer; ``reason`` is machine-readable."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass(frozen=True)
class QueueEntry:
    id: int
    transcript_id: int
    monitor: str | None
    policy: str
    batch_id: str
    inclusion_probability: float
    created_at: datetime
    lock_owner: str | None
    lock_expires_at: datetime | None
    labelled_at: datetime | None


@dataclass(frozen=True)
class QueueStatus:
    """Where one queue (monitor × policy) stands."""

    open: int
    locked: int
    labelled: int
    skipped_by_me: int
    batches: int


@dataclass(frozen=True)
class LabelWritten:
    label_id: int
    transcript_id: int
    label: int
    reviewer: str
    created_at: datetime
    inclusion_probability: float | None
    queue_policy: str | None
    queue_batch: str | None


@contextmanager
def write_transaction(store: Store) -> Iterator[Connection]:
    """A transaction that holds the write lock from its first statement on SQLite."""
    with store.engine.connect() as conn:
        if store.dialect == "sqlite":
            conn.exec_driver_sql("BEGIN IMMEDIATE")
        try:
            yield conn
        except BaseException:
            conn.rollback()
            raise
        conn.commit()


def _entry(row: Any) -> QueueEntry:
    return QueueEntry(
        id=int(row["id"]),
        transcript_id=int(row["transcript_id"]),
        monitor=row["monitor"],
        policy=str(row["policy"]),
        batch_id=str(row["batch_id"]),
        inclusion_probability=float(row["inclusion_probability"]),
        created_at=row["created_at"],
        lock_owner=row["lock_owner"],
        lock_expires_at=row["lock_expires_at"],
        labelled_at=row["labelled_at"],
    )


def _unlabelled() -> Any:
    Q, L = schema.QueueItem, schema.Label
    return and_(Q.labelled_at.is_(None), ~exists().where(L.transcript_id == Q.transcript_id))


def _free(now: datetime) -> Any:
    Q = schema.QueueItem
    return or_(Q.lock_expires_at.is_(None), Q.lock_expires_at <= now)


def get_entry(store: Store, item_id: int) -> QueueEntry | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(schema.QueueItem).where(schema.QueueItem.id == item_id)).mappings().first()
    return None if row is None else _entry(row)


def has_claimable(conn: Connection, reviewer: str, monitor: str, policy: str, now: datetime) -> bool:
    """Whether ``reviewer`` could claim an item of this queue now (inside a transaction)."""
    return bool(conn.execute(_claimable(reviewer, monitor, policy, now).limit(1)).first())


def _held_elsewhere(reviewer: str, now: datetime) -> Any:
    """Another item of the same transcript (a transcript can be in two batches) is locked by
    someone else."""
    Q = schema.QueueItem
    other = schema.QueueItem.__table__.alias("other")
    return exists().where(
        other.c.transcript_id == Q.transcript_id,
        other.c.id != Q.id,
        other.c.lock_owner != reviewer,
        other.c.lock_expires_at > now,
        other.c.labelled_at.is_(None),
    )


def _claimable(reviewer: str, monitor: str, policy: str, now: datetime) -> Any:
    Q, S = schema.QueueItem, schema.QueueSkip
    skipped = exists().where(S.queue_item_id == Q.id, S.reviewer == reviewer)
    return (
        select(Q.id)
        .where(Q.monitor == monitor, Q.policy == policy, _unlabelled(), _free(now), ~skipped, ~_held_elsewhere(reviewer, now))
        .order_by(Q.id)
    )


def serialise(conn: Connection, monitor: str | None) -> None:
    """Claims, labels, skips and new batches of one monitor's queues run one at a time.
    SQLite's ``BEGIN IMMEDIATE`` already does this for the whole database; on PostgreSQL a
    transaction advisory lock does it per monitor, since the checks that span two rows (the
    same transcript in two batches) are not re-checked by a row lock, and a new batch must see
    exactly the labels written before it (its candidates are the transcripts not labelled
    yet, which the estimator checks against the labels' times)."""
    if conn.dialect.name == "postgresql":
        conn.exec_driver_sql("SELECT pg_advisory_xact_lock(hashtext(%s))", (f"oversight-claims|{monitor or ''}",))


def claim_next(store: Store, reviewer: str, monitor: str, policy: str, *, lock_for: timedelta) -> QueueEntry | None:
    """The item ``reviewer`` should label next in this queue, locked to them for ``lock_for``:
    the one they already hold (lock renewed), else the oldest free one. None when the queue
    has nothing left for them (the caller may add a batch and call again)."""
    Q = schema.QueueItem
    now = schema.utcnow()
    expires = now + lock_for
    with write_transaction(store) as conn:
        serialise(conn, monitor)
        held = conn.execute(
            select(Q.id)
            .where(Q.monitor == monitor, Q.policy == policy, Q.lock_owner == reviewer, Q.lock_expires_at > now, _unlabelled())
            .order_by(Q.id)
            .limit(1)
        ).scalar_one_or_none()
        candidates = [held] if held is not None else list(conn.execute(_claimable(reviewer, monitor, policy, now).limit(_CANDIDATES)).scalars())
        for item_id in candidates:
            guard = Q.lock_owner == reviewer if item_id == held else _free(now)
            done = conn.execute(
                update(Q).where(Q.id == item_id, Q.labelled_at.is_(None), guard).values(lock_owner=reviewer, lock_expires_at=expires)
            )
            if done.rowcount == 1:
                row = conn.execute(select(Q).where(Q.id == item_id)).mappings().one()
                return _entry(row)
    return None


def _has_label(conn: Connection, transcript_id: int) -> bool:
    L = schema.Label
    return conn.execute(select(L.id).where(L.transcript_id == transcript_id).limit(1)).first() is not None


def _monitor_of(store: Store, item_id: int) -> str | None:
    with store.engine.connect() as conn:
        return conn.execute(select(schema.QueueItem.monitor).where(schema.QueueItem.id == item_id)).scalar_one_or_none()


def holds(entry: QueueEntry, reviewer: str, now: datetime | None = None) -> bool:
    now = now or schema.utcnow()
    return entry.labelled_at is None and entry.lock_owner == reviewer and entry.lock_expires_at is not None and entry.lock_expires_at > now


def submit_label(store: Store, item_id: int, reviewer: str, label: int, note: str | None) -> LabelWritten:
    """Label a claimed item. ClaimError (``not_found``, ``already_labelled``, ``locked``) when
    this reviewer may not, and then nothing is written."""
    if label not in (0, 1):
        raise SpecError("a label is 1 (fault) or 0 (fine)")
    Q = schema.QueueItem
    monitor = _monitor_of(store, item_id)
    with write_transaction(store) as conn:
        serialise(conn, monitor)
        now = schema.utcnow()
        done = conn.execute(
            update(Q)
            .where(Q.id == item_id, _unlabelled(), or_(Q.lock_owner == reviewer, _free(now)), ~_held_elsewhere(reviewer, now))
            .values(labelled_at=now, lock_owner=reviewer, lock_expires_at=None)
        )
        row = conn.execute(select(Q).where(Q.id == item_id)).mappings().first()
        if done.rowcount != 1 or row is None:
            if row is None:
                raise ClaimError("not_found", f"no queue item {item_id}")
            if row["labelled_at"] is not None or _has_label(conn, int(row["transcript_id"])):
                raise ClaimError("already_labelled", f"queue item {item_id} is already labelled (correct a label on the transcript's page)")
            raise ClaimError("locked", f"queue item {item_id} (or its transcript in another batch) is held by another reviewer")
        entry = _entry(row)
        return _write_label(
            conn, entry.transcript_id, label, reviewer, note, now,
            entry.inclusion_probability, entry.policy, entry.batch_id, queue_item=entry.id,
        )


def relabel(store: Store, transcript_id: int, reviewer: str, label: int, note: str | None) -> LabelWritten:
    """A corrected label for a transcript that already has one. It carries the inclusion
    probability, policy and batch of the label it supersedes, so the estimate still knows how
    the transcript was chosen; a transcript never labelled must go through the queue."""
    if label not in (0, 1):
        raise SpecError("a label is 1 (fault) or 0 (fine)")
    L = schema.Label
    now = schema.utcnow()
    with write_transaction(store) as conn:
        last = conn.execute(
            select(L.inclusion_probability, L.queue_policy, L.queue_batch)
            .where(L.transcript_id == transcript_id)
            .order_by(L.created_at.desc(), L.id.desc())
            .limit(1)
        ).first()
        if last is None:
            raise SpecError(
                f"transcript {transcript_id} has no label yet: label it through the review queue, "
                "which records how it was chosen (the estimate needs that)"
            )
        return _write_label(conn, transcript_id, label, reviewer, note, now, last[0], last[1], last[2], relabel=True)


def _write_label(
    conn: Connection,
    transcript_id: int,
    label: int,
    reviewer: str,
    note: str | None,
    now: datetime,
    pi: float | None,
    policy: str | None,
    batch: str | None,
    **details: Any,
) -> LabelWritten:
    L = schema.Label
    note = (note or "").strip() or None
    label_id = conn.execute(
        insert(L)
        .values(
            transcript_id=transcript_id, label=label, reviewer=reviewer, note=note, created_at=now,
            inclusion_probability=pi, queue_policy=policy, queue_batch=batch,
        )
        .returning(L.id)
    ).scalar_one()
    audit(conn, reviewer, "label", f"transcript:{transcript_id}", label=label, label_id=int(label_id), inclusion_probability=pi, batch=batch, **details)
    return LabelWritten(int(label_id), transcript_id, label, reviewer, now, pi, policy, batch)


def skip(store: Store, item_id: int, reviewer: str) -> None:
    """Release the item and never offer it to this reviewer again (others still get it)."""
    Q, S = schema.QueueItem, schema.QueueSkip
    monitor = _monitor_of(store, item_id)
    with write_transaction(store) as conn:
        serialise(conn, monitor)
        conn.execute(update(Q).where(Q.id == item_id, Q.lock_owner == reviewer, Q.labelled_at.is_(None)).values(lock_owner=None, lock_expires_at=None))
        if conn.execute(select(S.queue_item_id).where(S.queue_item_id == item_id, S.reviewer == reviewer)).first() is None:
            conn.execute(insert(S).values(queue_item_id=item_id, reviewer=reviewer, created_at=schema.utcnow()))
        audit(conn, reviewer, "queue.skip", f"queue_item:{item_id}")


def status(store: Store, monitor: str, policy: str, reviewer: str) -> QueueStatus:
    Q, S = schema.QueueItem, schema.QueueSkip
    now = schema.utcnow()
    mine = and_(Q.monitor == monitor, Q.policy == policy)
    with store.engine.connect() as conn:
        open_items = conn.execute(select(func.count()).select_from(Q).where(mine, _unlabelled())).scalar_one()
        locked = conn.execute(select(func.count()).select_from(Q).where(mine, _unlabelled(), Q.lock_expires_at > now)).scalar_one()
        total = conn.execute(select(func.count()).select_from(Q).where(mine)).scalar_one()
        skipped = conn.execute(
            select(func.count()).select_from(S).join(Q, Q.id == S.queue_item_id).where(mine, S.reviewer == reviewer, _unlabelled())
        ).scalar_one()
        batches = conn.execute(select(func.count(func.distinct(Q.batch_id))).where(mine)).scalar_one()
    return QueueStatus(open=int(open_items), locked=int(locked), labelled=int(total) - int(open_items), skipped_by_me=int(skipped), batches=int(batches))


def labelled_transcripts(conn: Connection) -> set[int]:
    L = schema.Label
    return {int(t) for t in conn.execute(select(L.transcript_id).distinct()).scalars()}


def batch_count(conn: Connection, monitor: str, policy: str) -> int:
    Q = schema.QueueItem
    return int(conn.execute(select(func.count(func.distinct(Q.batch_id))).where(Q.monitor == monitor, Q.policy == policy)).scalar_one())


def add_items(conn: Connection, monitor: str, policy: str, batch_id: str, items: list[tuple[int, float]]) -> None:
    """Record a batch chosen by the review queue: (transcript id, inclusion probability) in
    presentation order, so item ids follow it. Items already recorded for the batch are kept."""
    Q = schema.QueueItem
    now = schema.utcnow()
    known = set(conn.execute(select(Q.transcript_id).where(Q.batch_id == batch_id)).scalars())
    rows = [
        {"transcript_id": t, "monitor": monitor, "policy": policy, "inclusion_probability": pi, "batch_id": batch_id, "created_at": now}
        for t, pi in items
        if t not in known
    ]
    if rows:
        conn.execute(insert(Q), rows)
