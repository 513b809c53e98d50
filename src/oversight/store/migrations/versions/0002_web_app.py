"""Web app: users, sessions, API tokens, an audit log, queue locks, evidence messages, search
and a covering index of monitor populations.

Revision ID: 0002
Revises: 0001
Create Date: 2025-01-02

Search is dialect-specific DDL that SQLAlchemy's models cannot describe (see
``schema.SEARCH_OBJECTS``):

* SQLite: a contentless FTS5 table (only the index is stored, not a second copy of the text)
  whose rowid is the transcript id, kept current by triggers, so transcripts added by any
  writer (importers, other processes) are searchable at once. The text indexed is every
  message's content, joined by newlines; the delete trigger rebuilds the same text, which
  FTS5's ``delete`` command needs for a contentless table.
* PostgreSQL: a GIN index over ``jsonb_to_tsvector`` of the message contents. Queries use the
  same expression (``store.search``), so the planner matches it to the index.

Both stem English words (FTS5's ``porter`` tokenizer, PostgreSQL's ``english`` configuration),
so a search for "refuse" finds "refused" on either database.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

#: The text FTS5 indexes for one row of ``transcripts`` (``{row}`` is NEW or OLD).
_SQLITE_TEXT = "(SELECT group_concat(json_extract(value, '$.content'), char(10)) FROM json_each({row}.messages))"
#: Must stay identical to ``store.search.PG_VECTOR``.
_PG_VECTOR = "jsonb_to_tsvector('english'::regconfig, jsonb_path_query_array(messages, '$[*].content'::jsonpath), '[\"string\"]'::jsonb)"


def _id() -> sa.types.TypeEngine[int]:
    return sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _json() -> sa.types.TypeEngine[Any]:
    return sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def _time() -> sa.DateTime:
    return sa.DateTime(timezone=True)


def _user_fk() -> sa.Column[int]:
    return sa.Column("user_id", _id(), sa.ForeignKey("users.id", ondelete="CASCADE"), nullable=False)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("password_hash", sa.String(255), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("active", sa.Boolean(), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.UniqueConstraint("name", name="uq_users_name"),
        sa.CheckConstraint("role IN ('admin', 'reviewer', 'viewer')", name="ck_users_role"),
    )
    op.create_table(
        "web_sessions",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("token_hash", sa.String(64), nullable=False),
        _user_fk(),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("last_seen_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=False),
        sa.UniqueConstraint("token_hash", name="uq_web_sessions_token_hash"),
    )
    op.create_index("ix_web_sessions_user_id", "web_sessions", ["user_id"])
    op.create_index("ix_web_sessions_expires_at", "web_sessions", ["expires_at"])
    op.create_table(
        "api_tokens",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        _user_fk(),
        sa.Column("name", sa.String(255), nullable=False),
        sa.Column("token_hash", sa.String(64), nullable=False),
        sa.Column("prefix", sa.String(16), nullable=False),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("expires_at", _time(), nullable=True),
        sa.Column("last_used_at", _time(), nullable=True),
        sa.Column("revoked_at", _time(), nullable=True),
        sa.UniqueConstraint("token_hash", name="uq_api_tokens_token_hash"),
    )
    op.create_index("ix_api_tokens_user_id", "api_tokens", ["user_id"])
    op.create_table(
        "audit_log",
        sa.Column("id", _id(), primary_key=True, autoincrement=True),
        sa.Column("created_at", _time(), nullable=False),
        sa.Column("actor", sa.String(255), nullable=True),
        sa.Column("action", sa.String(64), nullable=False),
        sa.Column("target", sa.String(255), nullable=True),
        sa.Column("details", _json(), nullable=False),
    )
    op.create_index("ix_audit_log_created_at", "audit_log", ["created_at"])
    op.create_index("ix_audit_log_action_created", "audit_log", ["action", "created_at"])

    op.add_column("verdicts", sa.Column("evidence_message", sa.Integer(), nullable=True))
    op.create_index("ix_verdicts_population", "verdicts", ["monitor", "monitor_version", "transcript_id", "score", "label"])
    op.add_column("queue_items", sa.Column("labelled_at", _time(), nullable=True))
    op.create_index("ix_queue_items_monitor_policy", "queue_items", ["monitor", "policy"])
    op.create_table(
        "queue_skips",
        sa.Column("queue_item_id", _id(), sa.ForeignKey("queue_items.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("reviewer", sa.String(255), primary_key=True),
        sa.Column("created_at", _time(), nullable=False),
    )

    if op.get_bind().dialect.name == "sqlite":
        _sqlite_search()
    else:
        op.execute(f"CREATE INDEX ix_transcripts_search ON transcripts USING gin ({_PG_VECTOR})")


def _sqlite_search() -> None:
    new, old = _SQLITE_TEXT.format(row="NEW"), _SQLITE_TEXT.format(row="OLD")
    op.execute(
        "CREATE VIRTUAL TABLE transcripts_fts USING fts5("
        "body, content='', tokenize='porter unicode61 remove_diacritics 2')"
    )
    add = f"INSERT INTO transcripts_fts(rowid, body) VALUES (NEW.id, {new});"
    drop = f"INSERT INTO transcripts_fts(transcripts_fts, rowid, body) VALUES ('delete', OLD.id, {old});"
    op.execute(f"CREATE TRIGGER transcripts_fts_insert AFTER INSERT ON transcripts BEGIN {add} END")
    op.execute(f"CREATE TRIGGER transcripts_fts_delete AFTER DELETE ON transcripts BEGIN {drop} END")
    op.execute(f"CREATE TRIGGER transcripts_fts_update AFTER UPDATE OF messages ON transcripts BEGIN {drop} {add} END")
    op.execute(f"INSERT INTO transcripts_fts(rowid, body) SELECT t.id, {_SQLITE_TEXT.format(row='t')} FROM transcripts AS t")


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS transcripts_fts_{trigger}")
        op.execute("DROP TABLE IF EXISTS transcripts_fts")
    else:
        op.execute("DROP INDEX IF EXISTS ix_transcripts_search")
    op.drop_table("queue_skips")
    op.drop_index("ix_queue_items_monitor_policy", table_name="queue_items")
    with op.batch_alter_table("queue_items") as batch:
        batch.drop_column("labelled_at")
    op.drop_index("ix_verdicts_population", table_name="verdicts")
    with op.batch_alter_table("verdicts") as batch:
        batch.drop_column("evidence_message")
    for table in ("audit_log", "api_tokens", "web_sessions", "users"):
        op.drop_table(table)
