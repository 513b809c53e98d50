"""What the web app keeps in the store: accounts, queue claims, full-text search, migration 0002."""

from __future__ import annotations

import threading
from datetime import timedelta
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import delete, select, update

from oversight.errors import SpecError
from oversight.review.estimates import estimate_from_store
from oversight.store import Message, Store, Transcript, accounts, claims, open_store, schema
from oversight.store.browse import TranscriptQuery, VerdictView, list_transcripts
from oversight.store.db import _alembic_config, upgrade
from oversight.store.search import parse_query
from oversight.web import WebSettings, create_app, reviewing
from oversight.web.cache import StoreCache
from oversight.web.highlight import Span, pieces, spans_of

# -- accounts -----------------------------------------------------------------------------------


def test_passwords_are_stored_as_argon2id_with_the_default_cost(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Once, on SQLite: the hashing does not depend on the database."""
    monkeypatch.undo()  # the production hasher, not the tests' cheap one
    store = open_store(f"sqlite:///{tmp_path / 'a.db'}")
    accounts.add_user(store, "ana", "a long enough password", "reviewer")
    with store.engine.connect() as conn:
        stored = conn.execute(select(schema.User.password_hash)).scalar_one()
    assert stored.startswith("$argon2id$") and "m=65536,t=3" in stored and "a long enough" not in stored
    assert accounts.authenticate(store, "ana", "a long enough password") is not None
    assert accounts.authenticate(store, "ana", "a long enough passwore") is None
    assert accounts.authenticate(store, "nobody", "a long enough password") is None
    store.close()


def test_user_rules(store: Store) -> None:
    accounts.add_user(store, "root", "a long enough password", "admin")
    for bad in (lambda: accounts.add_user(store, "root", "another long password", "viewer"),
                lambda: accounts.add_user(store, "x y", "a long enough password", "viewer"),
                lambda: accounts.add_user(store, "eve", "short", "viewer"),
                lambda: accounts.add_user(store, "eve", "a long enough password", "superuser"),
                lambda: accounts.set_role(store, "root", "viewer"),
                lambda: accounts.set_active(store, "root", False)):
        with pytest.raises(SpecError):
            bad()
    accounts.add_user(store, "ana", "a long enough password", "admin")
    accounts.set_role(store, "root", "viewer", actor="ana")  # another admin exists now
    assert [(e.action, e.target) for e in accounts.audit_events(store)][:2] == [("user.role", "root"), ("user.create", "ana")]


def test_sessions_expire_and_end_with_the_user(store: Store) -> None:
    user = accounts.add_user(store, "ana", "a long enough password", "reviewer")
    token, session = accounts.create_session(store, user, lifetime=timedelta(hours=1))
    assert accounts.session_user(store, token, idle_timeout=timedelta(hours=1)) == session
    with store.engine.begin() as conn:  # an hour and a minute of silence
        conn.execute(update(schema.WebSession).values(last_seen_at=schema.utcnow() - timedelta(minutes=61)))
    assert accounts.session_user(store, token, idle_timeout=timedelta(hours=1)) is None
    short, _ = accounts.create_session(store, user, lifetime=timedelta(seconds=-1))
    assert accounts.session_user(store, short, idle_timeout=timedelta(hours=1)) is None  # past its hard end
    fresh, _ = accounts.create_session(store, user, lifetime=timedelta(hours=1))
    accounts.add_user(store, "root", "a long enough password", "admin")
    accounts.set_active(store, "ana", False, actor="root")
    assert accounts.session_user(store, fresh, idle_timeout=timedelta(hours=1)) is None
    assert accounts.authenticate(store, "ana", "a long enough password") is None


# -- claims -------------------------------------------------------------------------------------


def test_concurrent_reviewers_never_hold_the_same_transcript(seeded: Store, tmp_path: Path) -> None:
    ctx = create_app(seeded, WebSettings(runs_dir=tmp_path, batch_size=10)).state.ctx
    held: dict[int, str] = {}
    guard = threading.Lock()
    problems: list[str] = []
    labelled: list[int] = []

    def review(name: str) -> None:
        try:
            for _ in range(5):
                entry = reviewing.claim(ctx, name, "refusal", "random")
                assert entry is not None
                with guard:
                    if entry.transcript_id in held:
                        problems.append(f"{name} got {entry.transcript_id}, held by {held[entry.transcript_id]}")
                    held[entry.transcript_id] = name
                claims.submit_label(seeded, entry.id, name, 1 if entry.transcript_id % 4 == 0 else 0, None)
                with guard:
                    del held[entry.transcript_id]
                    labelled.append(entry.transcript_id)
        except Exception as e:  # reported below: a thread's failure must fail the test
            problems.append(f"{name}: {e!r}")

    for i in range(6):
        accounts.add_user(seeded, f"r{i}", "a long enough password", "reviewer")
    threads = [threading.Thread(target=review, args=(f"r{i}",)) for i in range(6)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert problems == []
    assert len(labelled) == 30 and len(set(labelled)) == 30
    # Reviewers arriving at a dry queue together added one batch, not one each: 30 labels in
    # batches of 10 need 3, and a 4th only when a reviewer found the 3rd's last items all held.
    result = estimate_from_store(seeded, "refusal")
    assert len(result.batches) in (3, 4)
    assert all(b.used for b in result.batches if b.labelled == b.items)
    assert sum(b.labelled < b.items for b in result.batches) <= 1
    assert result.estimate.n_labelled >= 30 - sum(b.labelled for b in result.batches if not b.used)


def test_a_lapsed_lock_passes_to_the_next_reviewer(seeded: Store, tmp_path: Path) -> None:
    ctx = create_app(seeded, WebSettings(runs_dir=tmp_path, batch_size=10, lock_for=timedelta(minutes=5))).state.ctx
    first = reviewing.claim(ctx, "ana", "refusal", "random")
    assert first is not None and claims.holds(first, "ana")
    assert reviewing.claim(ctx, "ana", "refusal", "random") == claims.get_entry(seeded, first.id)  # the same, lock renewed
    with seeded.engine.begin() as conn:
        conn.execute(update(schema.QueueItem).where(schema.QueueItem.id == first.id).values(lock_expires_at=schema.utcnow() - timedelta(seconds=1)))
    taken = reviewing.claim(ctx, "ben", "refusal", "random")
    assert taken is not None and taken.id == first.id and taken.lock_owner == "ben"
    with pytest.raises(claims.ClaimError) as late:
        claims.submit_label(seeded, first.id, "ana", 1, "too late")
    assert late.value.reason == "locked"
    written = claims.submit_label(seeded, first.id, "ben", 0, "  checked  ")
    assert written.inclusion_probability == pytest.approx(first.inclusion_probability)
    with seeded.engine.connect() as conn:
        row = conn.execute(select(schema.Label)).mappings().one()
    assert (row["reviewer"], row["note"], row["queue_policy"], row["queue_batch"]) == ("ben", "checked", "random", first.batch_id)


def test_a_transcript_in_two_batches_goes_to_one_reviewer(seeded: Store, tmp_path: Path) -> None:
    ctx = create_app(seeded, WebSettings(runs_dir=tmp_path, batch_size=120)).state.ctx
    a = reviewing.claim(ctx, "ana", "refusal", "random")  # a batch of every transcript
    assert a is not None
    b = reviewing.claim(ctx, "ben", "refusal", "most_uncertain")  # another queue: every transcript again
    assert b is not None and b.transcript_id != a.transcript_id
    with seeded.engine.connect() as conn:
        twin = conn.execute(
            select(schema.QueueItem.id).where(schema.QueueItem.transcript_id == a.transcript_id, schema.QueueItem.id != a.id)
        ).scalar_one()
    with pytest.raises(claims.ClaimError):
        claims.submit_label(seeded, twin, "ben", 1, None)  # ana holds its transcript in her batch
    claims.submit_label(seeded, a.id, "ana", 1, None)
    with pytest.raises(claims.ClaimError) as done:  # labelled now: the twin is done too (corrections are relabels)
        claims.submit_label(seeded, twin, "ben", 0, None)
    assert done.value.reason == "already_labelled"


def test_large_populations_update_their_estimate_in_the_background(seeded: Store, tmp_path: Path) -> None:
    ctx = create_app(seeded, WebSettings(runs_dir=tmp_path, batch_size=5, estimate_sync_limit=0)).state.ctx
    version = ctx.cache.versions()["refusal"]
    first = ctx.cache.summary("refusal", version)
    assert first is not None and not first.updating and first.estimate is None  # nothing to show: computed now
    for _ in range(5):
        entry = reviewing.claim(ctx, "ana", "refusal", "random")
        assert entry is not None
        claims.submit_label(seeded, entry.id, "ana", entry.transcript_id % 2, None)
    stale = ctx.cache.summary("refusal", version)
    assert stale is not None and stale.updating and stale.estimate is None and stale.n_labelled == 0  # the previous one, marked
    ctx.cache.wait_idle()
    fresh = ctx.cache.summary("refusal", version)
    assert fresh is not None and not fresh.updating and fresh.estimate is not None and fresh.estimate.n_labelled == 5


def test_the_cache_is_rebuilt_in_the_background_and_then_sees_deletions(seeded: Store) -> None:
    now = [1.0]
    cache = StoreCache(seeded, rebuild_every=100, clock=lambda: now[0])
    assert cache.transcript_count() == 120 and cache.monitor_counts()[0].n_verdicts == 120
    with seeded.engine.begin() as conn:  # a deletion leaves every marker where it was
        conn.execute(delete(schema.Transcript).where(schema.Transcript.id == 7))
    assert cache.transcript_count() == 120  # an increment cannot see it
    now[0] = 500.0
    cache.transcript_count()  # starts the rebuild, answers from the old state meanwhile
    cache.wait_idle()
    assert cache.transcript_count() == 119 and cache.monitor_counts()[0].n_verdicts == 119


# -- search and browsing --------------------------------------------------------------------------


def _chat(text: str) -> Transcript:
    return Transcript(messages=(Message("user", "hi"), Message("assistant", text)), model="m")


def test_the_search_index_follows_inserts_and_deletes(store: Store) -> None:
    ids = store.add_transcripts([_chat("the cat sat on the mat"), _chat("dogs are running"), _chat("nothing here")]).ids
    query = TranscriptQuery(search="run")  # stemmed: "running"
    assert [t.id for t in list_transcripts(store, query, versions={}).items] == [ids[1]]
    with store.engine.begin() as conn:
        conn.execute(delete(schema.Transcript).where(schema.Transcript.id == ids[1]))
    assert list_transcripts(store, query, versions={}).items == []
    assert [t.id for t in list_transcripts(store, TranscriptQuery(search='"sat on" -dog'), versions={}).items] == [ids[0]]


@pytest.mark.parametrize(
    ("raw", "fts5", "websearch"),
    [
        ("cat dog", '"cat" "dog"', "cat dog"),
        ('"a phrase" -bad -"two words"', '("a phrase") NOT "bad" NOT "two words"', '"a phrase" -bad -"two words"'),
        ("NEAR(a b) title:x OR * ^start", '"NEAR a" "b" "title x" "OR" "start"', '"NEAR a" b "title x" "OR" start'),
        ('quote" inside', '"quote" "inside"', "quote inside"),
    ],
)
def test_search_queries_never_reach_the_engine_as_syntax(raw: str, fts5: str, websearch: str) -> None:
    """Every term is quoted for FTS5 (its operators are words then); PostgreSQL's parser
    never raises on odd input, and gets the same terms."""
    q = parse_query(raw)
    assert (q.fts5(), q.websearch()) == (fts5, websearch)


def test_odd_searches_are_refused_or_harmless(store: Store) -> None:
    store.add_transcripts([_chat("NEAR and OR are words here")])
    for raw in ("-only", "!!!", "-"):
        with pytest.raises(SpecError):
            parse_query(raw)
    assert TranscriptQuery(search="   ").checked().search is None
    assert len(list_transcripts(store, TranscriptQuery(search="NEAR OR words"), versions={}).items) == 1


def test_migration_0002_indexes_transcripts_stored_before_it(db_url: str) -> None:
    from oversight.store.db import _engine, normalise_url

    engine = _engine(normalise_url(db_url))
    cfg = _alembic_config()
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, "0001")
    Store(engine).add_transcripts([_chat("an old transcript about volcanoes")])
    upgrade(engine)
    store = Store(engine)
    assert len(list_transcripts(store, TranscriptQuery(search="volcano"), versions={}).items) == 1
    with engine.begin() as conn:  # and it goes back down cleanly
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0001")
    upgrade(engine)
    assert len(list_transcripts(store, TranscriptQuery(search="volcanoes"), versions={}).items) == 1
    engine.dispose()


# -- evidence highlighting ------------------------------------------------------------------------


def _verdict(monitor: str, message: int | None, start: int, end: int) -> VerdictView:
    return VerdictView(monitor, "1", 0.9, "1", "why", message, start, end, None, schema.utcnow())


def test_evidence_spans_split_messages_into_marked_pieces() -> None:
    contents = ["short", "I cannot help with <script>that</script>."]
    spans = spans_of([_verdict("refusal", 1, 2, 8), _verdict("rules", 1, 19, 27), _verdict("bad", 0, 3, 99)], contents)
    assert spans == [Span("refusal", 1, 2, 8, False), Span("rules", 1, 19, 27, False)]
    out = pieces(contents[1], spans)
    assert "".join(p.text for p in out) == contents[1]
    assert [(p.text, p.monitors) for p in out if p.monitors] == [("cannot", ("refusal",)), ("<script>", ("rules",))]
    # Old verdicts without a message index: placed in the last message long enough, marked inferred.
    assert spans_of([_verdict("old", None, 0, 4)], contents) == [Span("old", 1, 0, 4, True)]
