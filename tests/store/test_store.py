"""The store on SQLite and PostgreSQL: migrations, the duplicate rule, queries, constraints."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import inspect, select, text
from sqlalchemy.exc import IntegrityError

from oversight.store import (
    Message,
    Store,
    StoreError,
    Transcript,
    content_hash,
    default_url,
    open_store,
)
from oversight.store.schema import Base, Label, QueueItem, Verdict, include_name
from oversight.store.schema import Transcript as TranscriptRow


def chat(user: str, assistant: str, **fields: object) -> Transcript:
    return Transcript.from_pairs([("user", user), ("assistant", assistant)], **fields)  # type: ignore[arg-type]


# -- migrations ----------------------------------------------------------------------------------


def test_migrations_create_every_table_and_index(store: Store) -> None:
    insp = inspect(store.engine)
    assert {"transcripts", "verdicts", "labels", "queue_items", "alembic_version"} <= set(insp.get_table_names())
    transcript_indexes = {ix["name"] for ix in insp.get_indexes("transcripts")}
    assert {"ix_transcripts_source", "ix_transcripts_model", "ix_transcripts_task", "ix_transcripts_created_at"} <= transcript_indexes
    assert {u["name"] for u in insp.get_unique_constraints("transcripts")} >= {"uq_transcripts_content_hash"}
    assert "ix_verdicts_monitor_version_score" in {ix["name"] for ix in insp.get_indexes("verdicts")}
    assert {u["name"] for u in insp.get_unique_constraints("verdicts")} >= {"uq_verdicts_transcript_monitor_version"}
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar_one() == "0002"


def test_schema_models_match_the_migrations(store: Store) -> None:
    """schema.py and versions/*.py describe the same database (else write a new revision)."""
    with store.engine.connect() as conn:
        # include_name skips the full-text search objects, which are raw DDL (schema.SEARCH_OBJECTS).
        diff = compare_metadata(MigrationContext.configure(conn, opts={"compare_type": True, "include_name": include_name}), Base.metadata)
    assert diff == []


def test_open_twice_is_a_no_op(db_url: str) -> None:
    with open_store(db_url) as first:
        first.add_transcripts([chat("a", "b")])
    with open_store(db_url) as second:
        assert second.counts()["transcripts"] == 1


def test_default_store_lives_in_the_data_dir() -> None:
    from oversight.paths import data_dir

    assert default_url() == f"sqlite:///{data_dir() / 'oversight.db'}"
    with open_store(None) as store:
        assert store.url.endswith("oversight.db")
        assert (data_dir() / "oversight.db").exists()


def test_a_bare_path_is_a_sqlite_file(tmp_path: Path) -> None:
    with open_store(str(tmp_path / "sub" / "x.db")) as store:
        assert store.dialect == "sqlite"
    assert (tmp_path / "sub" / "x.db").exists()


def test_sqlite_pragmas(tmp_path: Path) -> None:
    with open_store(f"sqlite:///{tmp_path / 'p.db'}") as store, store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
        assert conn.execute(text("PRAGMA foreign_keys")).scalar_one() == 1


def test_unusable_urls_say_what_is_wrong(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="unsupported database 'mysql'"):
        open_store("mysql://user@host/db")
    with pytest.raises(StoreError, match="cannot open database"):
        open_store("postgresql://nobody:secret@127.0.0.1:1/nothing")
    with pytest.raises(StoreError) as info:
        open_store("postgresql://nobody:secret@127.0.0.1:1/nothing")
    assert "secret" not in str(info.value)


def test_a_database_from_a_newer_oversight_is_refused(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'new.db'}"
    open_store(url).close()
    with open_store(url, migrate=False) as store, store.engine.begin() as conn:
        conn.execute(text("UPDATE alembic_version SET version_num = '9999'"))
    with pytest.raises(StoreError, match="newer than this oversight knows"):
        open_store(url)


# -- the duplicate rule --------------------------------------------------------------------------


def test_duplicates_are_same_messages_and_model() -> None:
    base = chat("hi", "hello", model="m")
    assert base.content_hash == chat("hi", "hello", model="m", source="other.jsonl", task="t", external_id="9", metadata={"k": 1}).content_hash
    assert base.content_hash == Transcript.from_pairs([("User", "hi"), ("ASSISTANT", "hello")], model="m").content_hash
    assert base.content_hash != chat("hi", "hello", model="other").content_hash
    assert base.content_hash != chat("hi", "hello").content_hash
    assert base.content_hash != chat("hi ", "hello", model="m").content_hash
    assert base.content_hash != Transcript.from_pairs([("assistant", "hi"), ("user", "hello")], model="m").content_hash
    assert content_hash([Message("user", "hi"), Message("assistant", "hello")], "m") == base.content_hash


# -- writes and queries --------------------------------------------------------------------------


def test_add_counts_new_and_duplicate_rows(store: Store) -> None:
    first = store.add_transcripts([chat("a", "1"), chat("b", "2"), chat("a", "1", source="elsewhere")])
    assert len(first.ids) == 2 and first.duplicates == 1
    again = store.add_transcripts([chat("a", "1"), chat("c", "3")])
    assert len(again.ids) == 1 and again.duplicates == 1
    assert store.counts() == {"transcripts": 3, "verdicts": 0, "labels": 0, "queue_items": 0}


def test_iter_in_id_order_by_batches_with_filters(store: Store) -> None:
    when = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
    store.add_transcripts([chat(f"q{i}", f"a{i}", model="m" if i % 2 else "n", task="t", created_at=when) for i in range(25)])
    batches = list(store.iter_transcripts(batch_size=10))
    assert [len(b) for b in batches] == [10, 10, 5]
    ids = [t.id for b in batches for t in b]
    assert ids == sorted(ids) and len(set(ids)) == 25
    first = batches[0][0]
    assert first.messages == (Message("user", "q0"), Message("assistant", "a0"))
    assert first.created_at == when and first.created_at.tzinfo is not None
    odd = [t for b in store.iter_transcripts(batch_size=4, model="m") for t in b]
    assert len(odd) == 12 and {t.model for t in odd} == {"m"}
    assert store.count_transcripts(model="m", task="t") == 12
    resumed = [t.id for b in store.iter_transcripts(after_id=ids[19]) for t in b]
    assert resumed == ids[20:]


def test_get_by_ids_skips_missing(store: Store) -> None:
    ids = store.add_transcripts([chat("x", "y", metadata={"k": [1, "two"]}), chat("z", "w")]).ids
    got = store.get_transcripts([ids[1], 999_999, ids[0]])
    assert set(got) == set(ids)
    assert got[ids[0]].metadata == {"k": [1, "two"]}
    assert got[ids[0]].content_hash == chat("x", "y").content_hash


def test_naive_times_are_read_as_utc(store: Store) -> None:
    [tid] = store.add_transcripts([chat("t", "u", created_at=datetime(2024, 1, 2, 3, 4, 5))]).ids
    assert store.get_transcripts([tid])[tid].created_at == datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)


# -- the tables other parts build on -------------------------------------------------------------


def test_verdicts_labels_and_queue_items(store: Store) -> None:
    [tid] = store.add_transcripts([chat("p", "r")]).ids
    now = datetime.now(UTC)
    with store.transaction() as s:
        s.add(Verdict(transcript_id=tid, monitor="rules", monitor_version="1", score=0.9, label="unsafe",
                      evidence="r", evidence_start=0, evidence_end=1))
        s.add(Verdict(transcript_id=tid, monitor="judge", monitor_version="1", score=None, error="timeout"))
        s.add(Label(transcript_id=tid, label=1, reviewer="ann", inclusion_probability=0.25, queue_policy="uniform", queue_batch="b1"))
        s.add(Label(transcript_id=tid, label=0, reviewer="ann", note="on reflection", created_at=now + timedelta(seconds=1)))
        s.add(QueueItem(transcript_id=tid, monitor="rules", policy="uniform", inclusion_probability=0.25, batch_id="b1",
                        lock_owner="ann", lock_expires_at=now + timedelta(minutes=5)))
    with store.session() as s:
        labels = s.scalars(select(Label).where(Label.transcript_id == tid).order_by(Label.created_at)).all()
        assert [lab.label for lab in labels] == [1, 0]  # a history, not an overwrite
        item = s.scalars(select(QueueItem)).one()
        assert item.lock_expires_at is not None and item.lock_expires_at > now
        assert s.get(TranscriptRow, tid) is not None
        top = s.scalars(select(Verdict).where(Verdict.monitor == "rules").order_by(Verdict.score.desc())).first()
        assert top is not None and top.score == 0.9
    assert store.counts() == {"transcripts": 1, "verdicts": 2, "labels": 2, "queue_items": 1}


@pytest.mark.parametrize(
    "row",
    [
        {"kind": "verdict", "monitor": "rules", "score": 0.5},  # second verdict of rules v1
        {"kind": "verdict", "monitor": "other", "score": 1.5},  # score out of [0, 1]
        {"kind": "verdict", "monitor": "other", "score": None},  # neither score nor error
        {"kind": "label", "label": 2},
        {"kind": "verdict", "monitor": "other", "score": 0.5, "transcript_id": 999_999},  # no such transcript
    ],
    ids=["unique", "range", "score-or-error", "binary-label", "foreign-key"],
)
def test_constraints_hold_on_both_databases(store: Store, row: dict[str, object]) -> None:
    [tid] = store.add_transcripts([chat("p", "r")]).ids
    with store.transaction() as s:
        s.add(Verdict(transcript_id=tid, monitor="rules", monitor_version="1", score=0.1))
    with pytest.raises(IntegrityError), store.transaction() as s:
        target = int(row.get("transcript_id", tid))  # type: ignore[call-overload]
        if row["kind"] == "label":
            s.add(Label(transcript_id=target, label=row["label"], reviewer="ann"))
        else:
            s.add(Verdict(transcript_id=target, monitor=row["monitor"], monitor_version="1", score=row["score"]))


def test_deleting_a_transcript_deletes_its_judgements(store: Store) -> None:
    [tid] = store.add_transcripts([chat("p", "r")]).ids
    with store.transaction() as s:
        s.add(Verdict(transcript_id=tid, monitor="rules", monitor_version="1", score=0.1))
        s.add(Label(transcript_id=tid, label=1, reviewer="ann"))
    with store.engine.begin() as conn:
        conn.execute(text("DELETE FROM transcripts WHERE id = :id"), {"id": tid})
    assert store.counts() == {"transcripts": 0, "verdicts": 0, "labels": 0, "queue_items": 0}
