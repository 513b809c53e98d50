"""The review loop over the store: export a queue, label it, estimate the fault rate.

    selection = export_queue(store, "refusal", "active", 40, "queue.jsonl")
    # … a human fills in the label column …
    import_labels(store, "queue.jsonl", reviewer="ana")
    estimate = gather_estimate(store, "refusal")      # rate with a 95% CI (review/estimates.py)

Labels come back from a filled-in file (:func:`import_labels`) or one at a time from the
interactive labeller (:class:`LabellingSession`, driven by :mod:`oversight.review.terminal`).
Inclusion probabilities travel with the items: each exported item is a ``queue_items`` row
and a line of the file, the file carries π back in, and each label row keeps it, so the
estimate weights every label by the design that chose it.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from contextlib import nullcontext
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import and_, delete, exists, select

from oversight.errors import DataError, SpecError
from oversight.monitors.embedding_cache import EmbedProgress
from oversight.review.estimates import estimate_for_population, gather_estimate, latest_version
from oversight.review.labels_io import (
    LabelRecord,
    file_format,
    iter_labels,
    iter_queue_rows,
    raw_rows,
    write_queue,
)
from oversight.review.queue import Selection, get_policy
from oversight.review.queue import select as select_queue
from oversight.store import Store, schema
from oversight.store.browse import TranscriptDetail, VerdictView, transcript_detail

__all__ = [
    "ItemView",
    "LabelImportReport",
    "LabellingSession",
    "ReviewItem",
    "estimate_for_population",
    "export_queue",
    "gather_estimate",
    "import_labels",
    "pending_queue_items",
    "queue_file_items",
]

#: Characters of the last message written to a queue export's ``last_message`` column.
EXPORT_TEXT_LIMIT = 4000
#: Transcripts read and embedded at a time for the ``diverse`` policy.
EMBED_CHUNK = 512


@dataclass(frozen=True)
class LabelImportReport:
    """What one :func:`import_labels` call did."""

    path: str
    #: Label rows added (a history: relabelling a transcript adds a row, the latest counts).
    added: int
    #: Of those, labels for transcripts that already had one.
    relabelled: int
    #: Rows whose label was empty (items not reviewed yet).
    unlabelled_rows: int

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def export_queue(
    store: Store,
    monitor_name: str,
    policy: str,
    n: int,
    out_path: str | Path,
    *,
    seed: int = 0,
    version: str | None = None,
    progress: EmbedProgress | None = None,
) -> Selection:
    """Choose ``n`` transcripts for review among those scored by the monitor and not labelled
    yet, record them (with π) as queue items, and write the export file (JSONL or CSV by suffix).

    The ``diverse`` policy clusters the candidates' MiniLM embeddings (:func:`candidate_embeddings`,
    cached on disk; ``progress`` follows the embedding)."""
    chosen_policy = get_policy(policy)
    version = version or latest_version(store, monitor_name)
    # Taken before the candidates are read: a label made before this moment is one the
    # candidate query saw, which is how the estimate tells earlier labels from this batch.
    now = schema.utcnow()
    T, V, L = schema.Transcript, schema.Verdict, schema.Label
    labelled = exists().where(L.transcript_id == T.id)
    stmt = (
        select(T.id, V.score)
        .join(V, and_(V.transcript_id == T.id, V.monitor == monitor_name, V.monitor_version == version))
        .where(~labelled)
        .order_by(T.id)
    )
    with store.engine.connect() as conn:
        rows = conn.execute(stmt).all()
    if not rows:
        raise SpecError(f"no unlabelled transcripts scored by {monitor_name} {version}: nothing to queue")
    ids = np.array([int(r[0]) for r in rows], dtype=np.int64)
    scores = np.array([math.nan if r[1] is None else float(r[1]) for r in rows], dtype=np.float64)
    embeddings = candidate_embeddings(store, ids.tolist(), progress=progress) if chosen_policy.needs_embeddings else None
    selection = select_queue(policy, ids, scores, n, seed=seed, embeddings=embeddings)
    chosen = store.get_transcripts(selection.ids)
    extra = {i: {"last_message": _last_text(chosen[i])} for i in selection.ids if i in chosen}
    items = [
        {
            "transcript_id": item.id,
            "monitor": monitor_name,
            "policy": selection.policy,
            "inclusion_probability": item.inclusion_probability,
            "batch_id": selection.batch_id,
            "created_at": now,
        }
        for item in selection.items
    ]
    with store.transaction() as session:
        if items:
            session.execute(_insert_ignore(store, schema.QueueItem.__table__, ["batch_id", "transcript_id"]), items)
        write_queue(selection, out_path, extra=extra)  # inside: a failed write records nothing
    return selection


def candidate_embeddings(
    store: Store, ids: Sequence[int], *, cache: bool = True, progress: EmbedProgress | None = None
) -> NDArray[np.float32]:
    """MiniLM embeddings (N × 384) of the stored transcripts ``ids``, whole conversations.

    Read and embedded :data:`EMBED_CHUNK` transcripts at a time, through the on-disk cache
    keyed by text (``cache=False`` skips it), so only transcripts never embedded before cost
    encoder time and memory holds one chunk of text at a time.
    """
    from oversight.monitors.embedding import load_encoder, transcript_text
    from oversight.monitors.embedding_cache import embed_with_cache, open_cache

    encoder = load_encoder()
    out = np.zeros((len(ids), encoder.dim), dtype=np.float32)
    with open_cache(encoder.fingerprint, encoder.dim) if cache else nullcontext() as disk:
        for start in range(0, len(ids), EMBED_CHUNK):
            part = list(ids[start : start + EMBED_CHUNK])
            found = store.get_transcripts(part)
            missing = [i for i in part if i not in found]
            if missing:
                raise SpecError(f"transcript {missing[0]} was deleted while the queue was being built; run it again")
            texts = [transcript_text(found[i]) for i in part]
            out[start : start + len(part)] = embed_with_cache(texts, encoder.encode, disk)
            if progress is not None:
                progress(start + len(part), len(ids))
    return out


def import_labels(store: Store, path: str | Path, *, reviewer: str | None = None) -> LabelImportReport:
    """Add the labels of a JSONL/CSV label file (a filled-in queue export, say).

    The whole file is read and checked first: a bad row, or a label for a transcript id the
    store does not have, raises :class:`DataError` naming ``file:line`` and adds nothing.
    A row without π takes it from the queue item of its batch, when the file names one.
    """
    path = Path(path)
    records = list(iter_labels(path, reviewer=reviewer))
    known = store.get_transcripts(r.transcript_id for r in records)
    for r in records:
        if r.transcript_id not in known:
            raise DataError(f"no transcript with id {r.transcript_id} in {store.url}; nothing from this file was added", path=path, line=r.line, field="transcript_id")
    unlabelled_rows = _count_rows(path) - len(records)
    queued = _queue_probabilities(store, records)
    L = schema.Label
    with store.transaction() as session:
        already = set(session.execute(select(L.transcript_id).where(L.transcript_id.in_({r.transcript_id for r in records}))).scalars()) if records else set()
        now = schema.utcnow()
        for r in records:
            pi = r.inclusion_probability
            if pi is None and r.batch_id is not None:
                pi = queued.get((r.batch_id, r.transcript_id))
            session.add(
                L(
                    transcript_id=r.transcript_id,
                    label=r.label,
                    reviewer=r.reviewer,
                    note=r.note,
                    created_at=now,
                    inclusion_probability=pi,
                    queue_policy=r.policy,
                    queue_batch=r.batch_id,
                )
            )
    relabelled = sum(1 for r in records if r.transcript_id in already)
    return LabelImportReport(path=str(path), added=len(records), relabelled=relabelled, unlabelled_rows=max(unlabelled_rows, 0))


def _last_text(transcript: Any) -> str:
    messages: Sequence[Any] = transcript.messages
    text = str(messages[-1].content) if messages else ""
    return text if len(text) <= EXPORT_TEXT_LIMIT else text[: EXPORT_TEXT_LIMIT - 1] + "…"


def _count_rows(path: Path) -> int:
    """Rows of a label file, labelled or not (for the report only)."""
    return sum(1 for _ in raw_rows(path, file_format(path)))


def _queue_probabilities(store: Store, records: list[LabelRecord]) -> dict[tuple[str, int], float]:
    batches = {r.batch_id for r in records if r.batch_id is not None and r.inclusion_probability is None}
    if not batches:
        return {}
    Q = schema.QueueItem
    with store.engine.connect() as conn:
        rows = conn.execute(select(Q.batch_id, Q.transcript_id, Q.inclusion_probability).where(Q.batch_id.in_(batches))).all()
    return {(str(b), int(t)): float(p) for b, t, p in rows}


def _insert_ignore(store: Store, table: Any, keys: list[str]) -> Any:
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        return pg_insert(table).on_conflict_do_nothing(index_elements=keys)
    from sqlalchemy.dialects.sqlite import insert as sqlite_insert

    return sqlite_insert(table).on_conflict_do_nothing(index_elements=keys)


# --------------------------------------------------------------------------- labelling


@dataclass(frozen=True)
class ReviewItem:
    """One queued transcript to label, with how the queue chose it."""

    transcript_id: int
    #: π of the batch that drew it (None for an item from a file that does not say).
    inclusion_probability: float | None
    batch_id: str | None
    policy: str | None


@dataclass(frozen=True)
class ItemView:
    """What a reviewer sees of an item: the conversation and each monitor's latest verdict."""

    item: ReviewItem
    detail: TranscriptDetail
    verdicts: tuple[VerdictView, ...]


def queue_file_items(store: Store, path: str | Path) -> list[ReviewItem]:
    """The items of a queue export, in file order; an id the store lacks is a DataError
    naming the line. π missing from the file is taken from the batch's queue item."""
    rows = list(iter_queue_rows(path))
    known = store.get_transcripts(r.transcript_id for r in rows)
    for r in rows:
        if r.transcript_id not in known:
            raise DataError(f"no transcript with id {r.transcript_id} in {store.url}", path=path, line=r.line, field="transcript_id")
    Q = schema.QueueItem
    batches = {r.batch_id for r in rows if r.batch_id is not None and r.inclusion_probability is None}
    queued: dict[tuple[str, int], float] = {}
    if batches:
        with store.engine.connect() as conn:
            found = conn.execute(select(Q.batch_id, Q.transcript_id, Q.inclusion_probability).where(Q.batch_id.in_(batches))).all()
        queued = {(str(b), int(t)): float(p) for b, t, p in found}
    items: dict[int, ReviewItem] = {}
    for r in rows:
        pi = r.inclusion_probability
        if pi is None and r.batch_id is not None:
            pi = queued.get((r.batch_id, r.transcript_id))
        items.setdefault(r.transcript_id, ReviewItem(r.transcript_id, pi, r.batch_id, r.policy))
    return list(items.values())


def pending_queue_items(store: Store, monitor: str, *, policy: str | None = None, reviewer: str | None = None) -> list[ReviewItem]:
    """The queue items of ``monitor`` (and ``policy``) whose transcript has no label yet,
    oldest batch first, in each batch's presentation order. Items another reviewer holds
    a live web-app lock on are left to them."""
    Q, L = schema.QueueItem, schema.Label
    labelled = exists().where(L.transcript_id == Q.transcript_id)
    stmt = select(Q.transcript_id, Q.inclusion_probability, Q.batch_id, Q.policy, Q.lock_owner, Q.lock_expires_at).where(Q.monitor == monitor, ~labelled)
    if policy is not None:
        stmt = stmt.where(Q.policy == get_policy(policy).name)
    with store.engine.connect() as conn:
        rows = conn.execute(stmt.order_by(Q.id)).all()
    now = schema.utcnow()
    items: dict[int, ReviewItem] = {}
    for t, pi, batch, pol, owner, expires in rows:
        if owner is not None and owner != reviewer and expires is not None and schema.as_utc(expires) > now:
            continue
        items.setdefault(int(t), ReviewItem(int(t), float(pi), str(batch), str(pol)))
    return list(items.values())


def labelled_ids(store: Store, ids: Sequence[int]) -> set[int]:
    """Which of ``ids`` have at least one label."""
    L = schema.Label
    out: set[int] = set()
    with store.engine.connect() as conn:
        for start in range(0, len(ids), 5000):
            part = list(ids[start : start + 5000])
            out.update(int(t) for t in conn.execute(select(L.transcript_id).where(L.transcript_id.in_(part)).distinct()).scalars())
    return out


def item_view(store: Store, item: ReviewItem) -> ItemView:
    detail = transcript_detail(store, item.transcript_id)
    if detail is None:
        raise DataError(f"transcript {item.transcript_id} is no longer in {store.url}")
    latest: dict[str, VerdictView] = {}
    for v in detail.verdicts:  # newest first within a monitor: keep its latest version
        latest.setdefault(v.monitor, v)
    return ItemView(item, detail, tuple(latest.values()))


class LabellingSession:
    """The labeller's state over a list of items, writing every label to the store at once.

    The cursor starts at the first item without a label, so a session closed half-way
    (or crashed) resumes where it stopped; skipped items stay unlabelled and come first
    next time. :meth:`undo` takes back this session's last step, deleting the label row
    it wrote (and nothing else).
    """

    def __init__(self, store: Store, items: Sequence[ReviewItem], reviewer: str) -> None:
        if not reviewer.strip():
            raise SpecError("the reviewer's name is empty: pass --reviewer NAME")
        self.store, self.items, self.reviewer = store, list(items), reviewer.strip()
        self.labelled = labelled_ids(store, [i.transcript_id for i in self.items])
        self.added = 0
        self.skipped = 0
        #: A note typed for the current item, written with its label.
        self.note: str | None = None
        self._history: list[tuple[int, int | None, str | None]] = []
        self.index = self._next_unlabelled(0)

    @property
    def current(self) -> ReviewItem | None:
        return self.items[self.index] if self.index < len(self.items) else None

    @property
    def done(self) -> bool:
        return self.current is None

    @property
    def remaining(self) -> int:
        return sum(1 for i in self.items if i.transcript_id not in self.labelled)

    def view(self) -> ItemView | None:
        return None if self.current is None else item_view(self.store, self.current)

    def label(self, value: int) -> int:
        """Record ``value`` (1 fault, 0 fine) for the current item; returns the label row id."""
        item = self.current
        if item is None:
            raise SpecError("every item is done")
        if value not in (0, 1):
            raise ValueError(f"a label is 1 (fault) or 0 (fine), got {value!r}")
        row = schema.Label(
            transcript_id=item.transcript_id, label=value, reviewer=self.reviewer, note=self.note,
            created_at=schema.utcnow(), inclusion_probability=item.inclusion_probability,
            queue_policy=item.policy, queue_batch=item.batch_id,
        )
        with self.store.transaction() as session:
            session.add(row)
            session.flush()
            row_id = int(row.id)
        self._history.append((self.index, row_id, self.note))
        self.labelled.add(item.transcript_id)
        self.added += 1
        self.note = None
        self.index = self._next_unlabelled(self.index + 1)
        return row_id

    def skip(self) -> None:
        if self.current is None:
            return
        self._history.append((self.index, None, self.note))
        self.skipped += 1
        self.note = None
        self.index = self._next_unlabelled(self.index + 1)

    def undo(self) -> bool:
        """Go back one step (deleting the label it wrote); False when there is nothing to undo."""
        if not self._history:
            return False
        index, row_id, note = self._history.pop()
        if row_id is None:
            self.skipped -= 1
        else:
            with self.store.transaction() as session:
                session.execute(delete(schema.Label).where(schema.Label.id == row_id))
            self.labelled.discard(self.items[index].transcript_id)
            self.added -= 1
        self.index, self.note = index, note
        return True

    def _next_unlabelled(self, start: int) -> int:
        for k in range(start, len(self.items)):
            if self.items[k].transcript_id not in self.labelled:
                return k
        return len(self.items)
