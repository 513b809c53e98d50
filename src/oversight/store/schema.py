"""The store's tables, as typed SQLAlchemy 2 models (the one place that says what is persisted).

The same models run on SQLite (the default, one file in the user's data dir) and PostgreSQL.
Migrations in ``store/migrations/versions`` create exactly these tables; a test compares the two
so they cannot drift. Sizes are chosen for millions of transcripts: every column a dashboard or a
queue filters or sorts by has an index, and verdicts are indexed by (monitor, version, score) so
"the highest-scoring transcripts of monitor M" is an index range scan.

Times are stored as UTC. SQLite has no time zone type, so :class:`UTCDateTime` gives back aware
datetimes on both databases and code never compares naive with aware times.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, cast

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    DateTime,
    Dialect,
    Float,
    ForeignKey,
    Index,
    Integer,
    SmallInteger,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship

#: 64-bit ids on PostgreSQL; SQLite needs INTEGER for its rowid alias (and it is 64-bit anyway).
BigId = BigInteger().with_variant(Integer(), "sqlite")
#: JSONB on PostgreSQL (indexable, compact), JSON text on SQLite.
JSONDoc = JSON().with_variant(postgresql.JSONB(), "postgresql")

NAME = 255  # model, task, monitor, reviewer, policy names
SHORT = 64  # versions, batch ids, labels


class UTCDateTime(TypeDecorator[datetime]):
    """A timestamp stored in UTC and always read back time-zone aware."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else as_utc(value)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def utcnow() -> datetime:
    return datetime.now(UTC)


def as_utc(value: datetime) -> datetime:
    """A naive time is taken to be UTC already (what most log formats mean)."""
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    type_annotation_map: dict[Any, Any] = {datetime: UTCDateTime()}  # noqa: RUF012


class Transcript(Base):
    """One conversation; ``content_hash`` makes imports idempotent (see store.transcripts)."""

    __tablename__ = "transcripts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    content_hash: Mapped[str] = mapped_column(String(64))
    #: ``[{"role": …, "content": …}, …]``
    messages: Mapped[list[dict[str, str]]] = mapped_column(JSONDoc)
    source: Mapped[str | None] = mapped_column(String(1024))
    model: Mapped[str | None] = mapped_column(String(NAME))
    task: Mapped[str | None] = mapped_column(String(NAME))
    external_id: Mapped[str | None] = mapped_column(String(NAME))
    #: When the conversation happened, if the source says; else when it was imported.
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    imported_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: ``metadata`` is reserved by SQLAlchemy's declarative base, hence the attribute name.
    meta: Mapped[dict[str, Any]] = mapped_column("metadata", JSONDoc, default=dict)

    verdicts: Mapped[list[Verdict]] = relationship(back_populates="transcript", passive_deletes=True)
    labels: Mapped[list[Label]] = relationship(back_populates="transcript", passive_deletes=True)

    __table_args__ = (
        UniqueConstraint("content_hash", name="uq_transcripts_content_hash"),
        Index("ix_transcripts_source", "source"),
        Index("ix_transcripts_model", "model"),
        Index("ix_transcripts_task", "task"),
        Index("ix_transcripts_external_id", "external_id"),
        Index("ix_transcripts_created_at", "created_at"),
    )


class Verdict(Base):
    """A monitor's judgement of a transcript; one per (transcript, monitor, version).

    ``score`` is None only when the monitor crashed, and then ``error`` says why. Evidence is
    the quoted text and, when the monitor can point at it, its character span.
    """

    __tablename__ = "verdicts"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transcript_id: Mapped[int] = mapped_column(BigId, ForeignKey("transcripts.id", ondelete="CASCADE"))
    monitor: Mapped[str] = mapped_column(String(NAME))
    monitor_version: Mapped[str] = mapped_column(String(SHORT))
    score: Mapped[float | None] = mapped_column(Float)
    label: Mapped[str | None] = mapped_column(String(SHORT))
    evidence: Mapped[str | None] = mapped_column(Text)
    evidence_start: Mapped[int | None] = mapped_column(Integer)
    evidence_end: Mapped[int | None] = mapped_column(Integer)
    #: The message the evidence span is in (a monitor's span is ``(message, start, end)``);
    #: None for verdicts written before revision 0002, whose span the web app places itself.
    evidence_message: Mapped[int | None] = mapped_column(Integer)
    error: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    transcript: Mapped[Transcript] = relationship(back_populates="verdicts")

    __table_args__ = (
        UniqueConstraint("transcript_id", "monitor", "monitor_version", name="uq_verdicts_transcript_monitor_version"),
        CheckConstraint("score IS NULL OR (score >= 0 AND score <= 1)", name="ck_verdicts_score_range"),
        CheckConstraint("score IS NOT NULL OR error IS NOT NULL", name="ck_verdicts_score_or_error"),
        Index("ix_verdicts_monitor_version_score", "monitor", "monitor_version", "score"),
        Index("ix_verdicts_created_at", "created_at"),
        # Covers a monitor's population (ids in order, scores) and its counts, so dashboards
        # read an index, not a million scattered rows (revision 0002).
        Index("ix_verdicts_population", "monitor", "monitor_version", "transcript_id", "score", "label"),
    )


class Label(Base):
    """A human's 0/1 judgement. A history: a new judgement adds a row, the latest one counts.

    ``inclusion_probability``, ``queue_policy`` and ``queue_batch`` record how the review queue
    chose the item, which the fault-rate estimators need to stay unbiased.
    """

    __tablename__ = "labels"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transcript_id: Mapped[int] = mapped_column(BigId, ForeignKey("transcripts.id", ondelete="CASCADE"))
    label: Mapped[int] = mapped_column(SmallInteger)
    reviewer: Mapped[str] = mapped_column(String(NAME))
    note: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    inclusion_probability: Mapped[float | None] = mapped_column(Float)
    queue_policy: Mapped[str | None] = mapped_column(String(NAME))
    queue_batch: Mapped[str | None] = mapped_column(String(SHORT))

    transcript: Mapped[Transcript] = relationship(back_populates="labels")

    __table_args__ = (
        CheckConstraint("label IN (0, 1)", name="ck_labels_label_binary"),
        CheckConstraint(
            "inclusion_probability IS NULL OR (inclusion_probability > 0 AND inclusion_probability <= 1)",
            name="ck_labels_inclusion_probability",
        ),
        Index("ix_labels_transcript_created", "transcript_id", "created_at"),
        Index("ix_labels_reviewer", "reviewer"),
        Index("ix_labels_queue_batch", "queue_batch"),
    )


class QueueItem(Base):
    """A transcript the queue chose for review, with the probability it had of being chosen.

    ``lock_owner``/``lock_expires_at`` let the web app hand one item to one reviewer at a time
    without a lock that outlives a closed browser tab.
    """

    __tablename__ = "queue_items"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    transcript_id: Mapped[int] = mapped_column(BigId, ForeignKey("transcripts.id", ondelete="CASCADE"))
    monitor: Mapped[str | None] = mapped_column(String(NAME))
    policy: Mapped[str] = mapped_column(String(NAME))
    inclusion_probability: Mapped[float] = mapped_column(Float)
    batch_id: Mapped[str] = mapped_column(String(SHORT))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    lock_owner: Mapped[str | None] = mapped_column(String(NAME))
    lock_expires_at: Mapped[datetime | None] = mapped_column()
    #: When a reviewer labelled the item through the web app. Set by the same conditional
    #: UPDATE that checks the lock, so two submissions of one item cannot both add a label.
    labelled_at: Mapped[datetime | None] = mapped_column()

    transcript: Mapped[Transcript] = relationship()

    __table_args__ = (
        UniqueConstraint("batch_id", "transcript_id", name="uq_queue_items_batch_transcript"),
        CheckConstraint(
            "inclusion_probability > 0 AND inclusion_probability <= 1",
            name="ck_queue_items_inclusion_probability",
        ),
        Index("ix_queue_items_transcript_id", "transcript_id"),
        Index("ix_queue_items_policy_created", "policy", "created_at"),
        Index("ix_queue_items_lock_expires_at", "lock_expires_at"),
        Index("ix_queue_items_monitor_policy", "monitor", "policy"),
    )


class QueueSkip(Base):
    """A reviewer passed on a queue item: it is not offered to them again, but stays open
    for the others (a batch abandoned half-way would bias the estimate)."""

    __tablename__ = "queue_skips"

    queue_item_id: Mapped[int] = mapped_column(BigId, ForeignKey("queue_items.id", ondelete="CASCADE"), primary_key=True)
    reviewer: Mapped[str] = mapped_column(String(NAME), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)


#: Roles of web-app users, from most to least powerful: admins manage users, reviewers label,
#: viewers read.
ROLES = ("admin", "reviewer", "viewer")


class User(Base):
    """A person who signs in to the web app. Only an argon2 hash of the password is kept."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    name: Mapped[str] = mapped_column(String(NAME))
    password_hash: Mapped[str] = mapped_column(String(255))
    role: Mapped[str] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    __table_args__ = (
        UniqueConstraint("name", name="uq_users_name"),
        CheckConstraint("role IN ('admin', 'reviewer', 'viewer')", name="ck_users_role"),
    )


class WebSession(Base):
    """A signed-in browser. The cookie holds a random token; only its SHA-256 is stored, so a
    copy of the database cannot be used to sign in."""

    __tablename__ = "web_sessions"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    token_hash: Mapped[str] = mapped_column(String(64))
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    #: The synchronizer token every form and state-changing fetch of this session must carry.
    csrf_token: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    last_seen_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: Hard end of the session, however active it is.
    expires_at: Mapped[datetime] = mapped_column()

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
        Index("ix_web_sessions_user_id", "user_id"),
        Index("ix_web_sessions_expires_at", "expires_at"),
    )


class ApiToken(Base):
    """A bearer token for scripts, acting as its user. Only its SHA-256 is stored."""

    __tablename__ = "api_tokens"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    user_id: Mapped[int] = mapped_column(BigId, ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(NAME))
    token_hash: Mapped[str] = mapped_column(String(64))
    #: The first characters of the token, to tell tokens apart in listings.
    prefix: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    expires_at: Mapped[datetime | None] = mapped_column()
    last_used_at: Mapped[datetime | None] = mapped_column()
    revoked_at: Mapped[datetime | None] = mapped_column()

    __table_args__ = (
        UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
        Index("ix_api_tokens_user_id", "user_id"),
    )


class AuditEvent(Base):
    """Who did what and when: labels, sign-ins, users, roles and tokens. Append-only."""

    __tablename__ = "audit_log"

    id: Mapped[int] = mapped_column(BigId, primary_key=True, autoincrement=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    #: The user who acted; None for the command line run by whoever holds the database.
    actor: Mapped[str | None] = mapped_column(String(NAME))
    action: Mapped[str] = mapped_column(String(SHORT))
    target: Mapped[str | None] = mapped_column(String(NAME))
    details: Mapped[dict[str, Any]] = mapped_column(JSONDoc, default=dict)

    __table_args__ = (
        Index("ix_audit_log_created_at", "created_at"),
        Index("ix_audit_log_action_created", "action", "created_at"),
    )


#: Full-text search lives outside the models because SQLAlchemy cannot describe it: an FTS5
#: virtual table (and the shadow tables FTS5 makes) kept current by triggers on SQLite, a GIN
#: index over an expression on PostgreSQL. Migration 0002 creates them; autogenerate and the
#: schema test skip these names through :func:`include_name`.
SEARCH_TABLE = "transcripts_fts"
SEARCH_INDEX = "ix_transcripts_search"
SEARCH_OBJECTS = frozenset(
    {SEARCH_TABLE, SEARCH_INDEX, *(f"{SEARCH_TABLE}_{shadow}" for shadow in ("data", "idx", "docsize", "config", "content"))}
)


def include_name(name: str | None, type_: str, parent_names: Any) -> bool:
    """Alembic ``include_name`` hook: compare everything but the search objects."""
    return name not in SEARCH_OBJECTS


#: The Core tables, for bulk statements that bypass the ORM.
TRANSCRIPTS = cast(Table, Transcript.__table__)
#: Every table, for helpers and tests that must touch them all.
TABLES: tuple[Table, ...] = tuple(cast(Table, m.__table__) for m in (Transcript, Verdict, Label, QueueItem))
