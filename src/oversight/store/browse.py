"""Reading transcripts for people: filtered, searchable, keyset-paged lists and one transcript
with everything known about it.

Paging is by keyset, never ``OFFSET``: a page asks for rows *after* the last one shown, in the
order of an index, so page 20,000 of a million rows costs what page 1 costs. Two orders:

* ``newest``: transcript id descending (the primary key; with a search, the FTS5 rowid, which
  is the same id, so SQLite walks the full-text index backwards and stops after one page);
* ``score``: one monitor's score descending, then verdict id, which the verdicts index
  ``(monitor, monitor_version, score)`` serves (on SQLite its implicit rowid is the verdict id).

The cursor is the sort key of the last row shown (``n<id>`` or ``s<score>_<verdict id>``),
opaque to the page but readable in a URL.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, Literal

from sqlalchemy import Select, and_, exists, or_, select

from oversight.errors import SpecError
from oversight.store import schema
from oversight.store.db import Store
from oversight.store.search import (
    FTS,
    SearchQuery,
    parse_query,
    pg_matches,
    sqlite_match,
    sqlite_match_ids,
    sqlite_matches_at_least,
)

LabelFilter = Literal["fault", "fine", "labelled", "unlabelled"]
LABEL_FILTERS: tuple[LabelFilter, ...] = ("fault", "fine", "labelled", "unlabelled")
Sort = Literal["newest", "score"]
PREVIEW_CHARS = 240
MAX_PAGE = 200


@dataclass(frozen=True)
class TranscriptQuery:
    """What a transcript list shows. A score range or ``sort="score"`` needs a monitor;
    ``version`` defaults to the monitor's latest (the caller resolves it)."""

    source: str | None = None
    model: str | None = None
    task: str | None = None
    monitor: str | None = None
    version: str | None = None
    score_min: float | None = None
    score_max: float | None = None
    label: LabelFilter | None = None
    search: str | None = None
    sort: Sort = "newest"

    def checked(self) -> TranscriptQuery:
        for name in ("score_min", "score_max"):
            value = getattr(self, name)
            if value is not None and not (0.0 <= value <= 1.0 and math.isfinite(value)):
                raise SpecError(f"{name} must be between 0 and 1, got {value}")
        if self.score_min is not None and self.score_max is not None and self.score_min > self.score_max:
            raise SpecError(f"score_min {self.score_min} is above score_max {self.score_max}")
        needs_monitor = self.sort == "score" or self.score_min is not None or self.score_max is not None
        if needs_monitor and (not self.monitor or not self.version):
            raise SpecError("a score range or sorting by score needs a monitor that has scored transcripts")
        if self.label is not None and self.label not in LABEL_FILTERS:
            raise SpecError(f"unknown label filter {self.label!r}; accepted: {', '.join(LABEL_FILTERS)}")
        if self.sort not in ("newest", "score"):
            raise SpecError(f"unknown sort {self.sort!r}; accepted: newest, score")
        search = (self.search or "").strip() or None
        if search is not None:
            parse_query(search)  # raises SpecError on a search with nothing to find
        return replace(self, search=search)


@dataclass(frozen=True)
class ListedTranscript:
    id: int
    created_at: datetime
    source: str | None
    model: str | None
    task: str | None
    n_messages: int
    #: The start of the first user message (or of the first message).
    preview: str
    #: Latest verdict score per monitor (its latest version); None for an errored verdict.
    scores: dict[str, float | None]
    label: int | None
    labelled_by: str | None


@dataclass(frozen=True)
class TranscriptPage:
    items: list[ListedTranscript]
    next_cursor: str | None


def list_transcripts(
    store: Store,
    query: TranscriptQuery,
    *,
    versions: Mapping[str, str],
    cursor: str | None = None,
    limit: int = 50,
) -> TranscriptPage:
    """One page of transcripts matching ``query``; ``versions`` maps each monitor to the
    version whose scores the rows show."""
    query = query.checked()
    if not 1 <= limit <= MAX_PAGE:
        raise SpecError(f"limit must be between 1 and {MAX_PAGE}")
    with store.engine.connect() as conn:
        search = _search_plan(conn, query)
        stmt = _score_page(query, cursor, search) if query.sort == "score" else _newest_page(query, cursor, search)
        rows = conn.execute(stmt.limit(limit + 1)).mappings().all()
        more = len(rows) > limit
        rows = rows[:limit]
        ids = [int(r["id"]) for r in rows]
        scores = _page_scores(conn, ids, versions)
        labels = _page_labels(conn, ids)
    items = [
        ListedTranscript(
            id=int(r["id"]),
            created_at=r["created_at"],
            source=r["source"],
            model=r["model"],
            task=r["task"],
            n_messages=len(r["messages"]),
            preview=_preview(r["messages"]),
            scores=scores.get(int(r["id"]), {}),
            label=labels.get(int(r["id"]), (None, None))[0],
            labelled_by=labels.get(int(r["id"]), (None, None))[1],
        )
        for r in rows
    ]
    next_cursor = None
    if more and rows:
        last = rows[-1]
        next_cursor = f"s{float(last['score'])!r}_{int(last['verdict_id'])}" if query.sort == "score" else f"n{int(last['id'])}"
    return TranscriptPage(items, next_cursor)


def _columns() -> list[Any]:
    T = schema.Transcript
    return [T.id, T.created_at, T.source, T.model, T.task, T.messages]


@dataclass(frozen=True)
class _Search:
    """How a page applies a search: on SQLite, ``drive`` walks the full-text index in id
    order (newest first; it stops after a page), ``probe`` asks it about each candidate row
    (a common word under another order: matches are dense, a page comes quickly), ``ids``
    reads every match first (a rare word: few ids, then sorted); PostgreSQL gets one
    predicate and its planner chooses."""

    how: Literal["drive", "probe", "ids", "pg"]
    query: SearchQuery


#: Matches above which a search is "common" (probe), below which it is read whole (ids).
DENSE_SEARCH = 2000


def _search_plan(conn: Any, query: TranscriptQuery) -> _Search | None:
    if not query.search:
        return None
    parsed = parse_query(query.search)
    if conn.dialect.name != "sqlite":
        return _Search("pg", parsed)
    if query.sort == "newest":
        return _Search("drive", parsed)
    return _Search("probe" if sqlite_matches_at_least(conn, parsed, DENSE_SEARCH) else "ids", parsed)


def _search_filter(search: _Search | None) -> list[Any]:
    T = schema.Transcript
    if search is None or search.how == "drive":
        return []
    if search.how == "pg":
        return [pg_matches(search.query)]
    if search.how == "ids":
        return [T.id.in_(sqlite_match_ids(search.query).columns(T.id))]
    return [exists(select(FTS.c.rowid).where(FTS.c.rowid == T.id, sqlite_match(search.query)))]


def _newest_page(query: TranscriptQuery, cursor: str | None, search: _Search | None) -> Select[Any]:
    T, V = schema.Transcript, schema.Verdict
    if search is not None and search.how == "drive":
        # FTS5 yields rowids in descending order itself, so the page ends the scan.
        key: Any = FTS.c.rowid
        stmt = select(*_columns()).select_from(FTS).join(T, T.id == FTS.c.rowid).where(sqlite_match(search.query))
    else:
        key = T.id
        stmt = select(*_columns()).where(*_search_filter(search))
    stmt = stmt.where(*_common_filters(query)).order_by(key.desc())
    if cursor is not None:
        stmt = stmt.where(key < _newest_cursor(cursor))
    if query.score_min is not None or query.score_max is not None:
        stmt = stmt.join(V, and_(V.transcript_id == T.id, V.monitor == query.monitor, V.monitor_version == query.version))
        stmt = stmt.where(*_score_range(query))
    return stmt


def _score_page(query: TranscriptQuery, cursor: str | None, search: _Search | None) -> Select[Any]:
    T, V = schema.Transcript, schema.Verdict
    stmt = (
        select(*_columns(), V.score, V.id.label("verdict_id"))
        .select_from(V)
        .join(T, T.id == V.transcript_id)
        .where(V.monitor == query.monitor, V.monitor_version == query.version, V.score.is_not(None), *_score_range(query))
        .where(*_common_filters(query), *_search_filter(search))
        .order_by(V.score.desc(), V.id.desc())
    )
    if cursor is not None:
        score, verdict_id = _score_cursor(cursor)
        # The redundant ``score <= s`` lets both planners use it as the index range.
        stmt = stmt.where(V.score <= score, or_(V.score < score, V.id < verdict_id))
    return stmt


def _score_range(query: TranscriptQuery) -> list[Any]:
    V = schema.Verdict
    out = []
    if query.score_min is not None:
        out.append(V.score >= query.score_min)
    if query.score_max is not None:
        out.append(V.score <= query.score_max)
    return out


def _common_filters(query: TranscriptQuery) -> list[Any]:
    T, L = schema.Transcript, schema.Label
    out: list[Any] = []
    for column, value in ((T.source, query.source), (T.model, query.model), (T.task, query.task)):
        if value:
            out.append(column == value)
    if query.label in ("fault", "fine"):
        latest = _latest_label_rows().where(L.label == (1 if query.label == "fault" else 0))
        out.append(T.id.in_(latest))
    elif query.label == "labelled":
        out.append(T.id.in_(select(L.transcript_id)))
    elif query.label == "unlabelled":
        out.append(~exists().where(L.transcript_id == T.id))
    return out


def _latest_label_rows() -> Select[Any]:
    """Transcript ids with their latest label (later time wins, then higher id)."""
    L = schema.Label
    newer = schema.Label.__table__.alias("newer")
    superseded = exists().where(
        newer.c.transcript_id == L.transcript_id,
        or_(newer.c.created_at > L.created_at, and_(newer.c.created_at == L.created_at, newer.c.id > L.id)),
    )
    return select(L.transcript_id).where(~superseded)


def _newest_cursor(cursor: str) -> int:
    try:
        if cursor.startswith("n"):
            return int(cursor[1:])
    except ValueError:
        pass
    raise SpecError(f"bad page cursor {cursor[:40]!r} for the newest-first order; start from the first page")


def _score_cursor(cursor: str) -> tuple[float, int]:
    try:
        if cursor.startswith("s"):
            score, verdict_id = cursor[1:].split("_")
            value = float(score)
            if math.isfinite(value):
                return value, int(verdict_id)
    except ValueError:
        pass
    raise SpecError(f"bad page cursor {cursor[:40]!r} for the by-score order; start from the first page")


def _page_scores(conn: Any, ids: Sequence[int], versions: Mapping[str, str]) -> dict[int, dict[str, float | None]]:
    if not ids:
        return {}
    V = schema.Verdict
    out: dict[int, dict[str, float | None]] = {}
    rows = conn.execute(select(V.transcript_id, V.monitor, V.monitor_version, V.score).where(V.transcript_id.in_(ids)))
    for tid, monitor, version, score in rows:
        if versions.get(monitor) == version:
            out.setdefault(int(tid), {})[str(monitor)] = None if score is None else float(score)
    return out


def _page_labels(conn: Any, ids: Sequence[int]) -> dict[int, tuple[int, str]]:
    if not ids:
        return {}
    L = schema.Label
    out: dict[int, tuple[int, str]] = {}
    rows = conn.execute(select(L.transcript_id, L.label, L.reviewer).where(L.transcript_id.in_(ids)).order_by(L.created_at, L.id))
    for tid, label, reviewer in rows:  # in time order: the last one wins
        out[int(tid)] = (int(label), str(reviewer))
    return out


def _preview(messages: Sequence[Mapping[str, Any]]) -> str:
    first = next((m for m in messages if m.get("role") == "user"), messages[0] if messages else None)
    content = " ".join(str(first.get("content", "")).split()) if first else ""
    return content if len(content) <= PREVIEW_CHARS else content[: PREVIEW_CHARS - 1] + "…"


# -- one transcript ---------------------------------------------------------------------------


@dataclass(frozen=True)
class VerdictView:
    monitor: str
    version: str
    score: float | None
    label: str | None
    evidence: str | None
    evidence_message: int | None
    evidence_start: int | None
    evidence_end: int | None
    error: str | None
    created_at: datetime


@dataclass(frozen=True)
class LabelView:
    id: int
    label: int
    reviewer: str
    note: str | None
    created_at: datetime
    inclusion_probability: float | None
    queue_policy: str | None
    queue_batch: str | None


@dataclass(frozen=True)
class QueueView:
    id: int
    transcript_id: int
    monitor: str | None
    policy: str
    batch_id: str
    inclusion_probability: float
    lock_owner: str | None
    lock_expires_at: datetime | None
    labelled_at: datetime | None


@dataclass(frozen=True)
class TranscriptDetail:
    id: int
    messages: list[dict[str, str]]
    source: str | None
    model: str | None
    task: str | None
    external_id: str | None
    created_at: datetime
    imported_at: datetime
    metadata: dict[str, Any]
    verdicts: list[VerdictView]
    #: Oldest first: the last one is the label that counts.
    labels: list[LabelView]
    queue_items: list[QueueView]

    @property
    def current_label(self) -> LabelView | None:
        return self.labels[-1] if self.labels else None


def transcript_detail(store: Store, transcript_id: int) -> TranscriptDetail | None:
    T, V, L, Q = schema.Transcript, schema.Verdict, schema.Label, schema.QueueItem
    with store.engine.connect() as conn:
        row = conn.execute(select(T.__table__).where(T.id == transcript_id)).mappings().first()
        if row is None:
            return None
        verdicts = [
            VerdictView(
                r["monitor"], r["monitor_version"], r["score"], r["label"], r["evidence"], r["evidence_message"],
                r["evidence_start"], r["evidence_end"], r["error"], r["created_at"],
            )
            for r in conn.execute(select(V.__table__).where(V.transcript_id == transcript_id).order_by(V.monitor, V.created_at.desc())).mappings()
        ]
        labels = [
            LabelView(
                int(r["id"]), int(r["label"]), r["reviewer"], r["note"], r["created_at"], r["inclusion_probability"],
                r["queue_policy"], r["queue_batch"],
            )
            for r in conn.execute(select(L.__table__).where(L.transcript_id == transcript_id).order_by(L.created_at, L.id)).mappings()
        ]
        queue = [
            QueueView(
                int(r["id"]), int(r["transcript_id"]), r["monitor"], r["policy"], r["batch_id"], float(r["inclusion_probability"]), r["lock_owner"],
                r["lock_expires_at"], r["labelled_at"],
            )
            for r in conn.execute(select(Q.__table__).where(Q.transcript_id == transcript_id).order_by(Q.id)).mappings()
        ]
    messages = [{"role": str(m.get("role", "")), "content": str(m.get("content", ""))} for m in row["messages"]]
    return TranscriptDetail(
        id=int(row["id"]), messages=messages, source=row["source"], model=row["model"], task=row["task"],
        external_id=row["external_id"], created_at=row["created_at"], imported_at=row["imported_at"],
        metadata=dict(row["metadata"] or {}), verdicts=verdicts, labels=labels, queue_items=queue,
    )
