"""Latency of the web app's transcript list and dashboard over a store of 1,000,000 transcripts.

Builds (or reuses) a store of synthetic conversations with verdicts from two monitors, labels a
few hundred of them through the real review queue (claims, batches, labels), then times pages
and API calls through the real app with an in-process HTTP client (FastAPI's TestClient: the
whole ASGI stack, sessions, templates, JSON; no network), signed in through the real form.

    .venv/bin/python benchmarks/web_latency.py                       # SQLite, 1M rows (built once, ~3 min)
    .venv/bin/python benchmarks/web_latency.py --n 100000 --db /tmp/web100k.db
    .venv/bin/python benchmarks/web_latency.py --postgres postgresql://user@host/db --n 200000

Target: p95 under 300 ms for the list with filters and search, and for the dashboard. The
machine is shared, so figures are noisy; each scenario runs ``--repeat`` times with parameters
drawn at random (different models, words, score ranges), after one warm-up request.

What the store holds: ``--n`` transcripts (a user question and an assistant reply drawn from a
Zipf-distributed vocabulary of 4,000 words, so some words are in half the transcripts and
others in a handful; 10% refusals), 5 models, 20 tasks, 10 sources; verdicts of monitors
``refusal`` (scores near 0 or 1) and ``judge`` (noisy, AUROC about 0.85 against a hidden fault
label); and ``--labels`` labels made through the queue with the hidden labels as the answers.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import random
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
from fastapi.testclient import TestClient
from sqlalchemy import func, select

from oversight.store import Store, accounts, claims, open_store, schema
from oversight.store.transcripts import HASH_VERSION
from oversight.web import WebSettings, create_app, reviewing

DEFAULT_DB = Path(__file__).parent / "out" / "web_1m.db"
MODELS = [f"model-{c}" for c in "abcde"]
TASKS = [f"task-{i:02d}" for i in range(20)]
SOURCES = [f"traffic/shard-{i}.jsonl" for i in range(10)]
REFUSAL = "I'm sorry, but I can't help with that request."
PASSWORD = "benchmark password"
CHUNK = 20_000


# -- the synthetic store ------------------------------------------------------------------------


def vocabulary(rng: random.Random, size: int = 4000) -> list[str]:
    onsets, vowels, codas = ["b", "c", "d", "f", "g", "h", "k", "l", "m", "n", "p", "r", "s", "t", "v", "w", "z", "br", "st", "tr", "pl", "gr"], ["a", "e", "i", "o", "u", "ai", "ou", "ea"], ["", "n", "r", "s", "t", "m", "ck", "nd"]
    words: set[str] = set()
    while len(words) < size:
        words.add("".join(rng.choice(onsets) + rng.choice(vowels) + rng.choice(codas) for _ in range(rng.choice((1, 2, 2, 3)))))
    return sorted(words)


def rows(n: int, seed: int) -> Iterator[tuple[dict[str, Any], int, float, float]]:
    """(transcript row, hidden fault label, refusal score, judge score) for n transcripts,
    drawn a chunk at a time with numpy (a row at a time costs more than the inserts)."""
    rng = np.random.default_rng(seed)
    vocab = np.array(vocabulary(random.Random(seed)))
    start = datetime(2025, 1, 1, tzinfo=UTC)
    for offset in range(0, n, CHUNK):
        m = min(CHUNK, n - offset)
        refuse = rng.random(m) < 0.10
        q_len, a_len = rng.integers(8, 20, m), rng.integers(15, 40, m)
        words = vocab[np.minimum(rng.zipf(1.15, int(q_len.sum() + a_len.sum())), len(vocab)) - 1].tolist()
        models, tasks = rng.integers(len(MODELS), size=m), rng.integers(len(TASKS), size=m)
        fault = rng.random(m) < np.where(refuse, 0.5, 0.04)
        refusal = np.clip(np.where(refuse, rng.normal(0.93, 0.04, m), rng.beta(0.3, 12, m)), 0, 1)
        judge = 1 / (1 + np.exp(-(rng.normal(np.where(fault, 1.5, -1.5), 1.4) - 1.0)))
        at = 0
        for k in range(m):
            i = offset + k
            question = " ".join(words[at : at + q_len[k]])
            at += q_len[k]
            answer = REFUSAL if refuse[k] else " ".join(words[at : at + a_len[k]]).capitalize() + "."
            at += a_len[k]
            model = MODELS[models[k]]
            # The ticket number keeps every conversation distinct (the store deduplicates).
            messages = [{"role": "user", "content": f"{question}? (ticket {i})"}, {"role": "assistant", "content": answer}]
            canonical = json.dumps([HASH_VERSION, model, [[msg["role"], msg["content"]] for msg in messages]], ensure_ascii=False, separators=(",", ":"))
            yield (
                {
                    "content_hash": hashlib.sha256(canonical.encode()).hexdigest(),
                    "messages": json.dumps(messages, ensure_ascii=False, separators=(",", ":")),
                    "source": SOURCES[i % len(SOURCES)],
                    "model": model,
                    "task": TASKS[tasks[k]],
                    "external_id": f"conv-{i}",
                    "created_at": start + timedelta(seconds=30 * i),
                    "metadata": "{}",
                },
                int(fault[k]),
                float(refusal[k]),
                float(judge[k]),
            )


def build(store: Store, n: int, seed: int) -> np.ndarray[Any, np.dtype[np.int8]]:
    """Insert n transcripts and their verdicts in bulk; returns the hidden labels by id."""
    if store.dialect != "sqlite":
        return _build_postgres(store, n, seed)
    hidden = np.zeros(n + 1, dtype=np.int8)
    now = _sqlite_time(datetime.now(UTC))
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        # A 512 MB page cache for the build: six indexes on random keys (the content hash) and
        # the full-text index thrash SQLite's default 2 MB cache once the file outgrows it.
        cur.execute("PRAGMA cache_size = -524288")
        # Bulk load: the secondary indexes are dropped and re-created from the migration's own
        # definitions afterwards (building an index by sorting beats a million random inserts).
        # The unique indexes and the full-text triggers stay: rows go in as an import's would.
        indexes = cur.execute(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' AND tbl_name IN ('transcripts', 'verdicts') AND sql IS NOT NULL"
        ).fetchall()
        for name, _ in indexes:
            cur.execute(f"DROP INDEX {name}")
        batch: list[tuple[Any, ...]] = []
        verdicts: list[tuple[Any, ...]] = []
        started = time.perf_counter()
        for i, (row, fault, refusal, judge) in enumerate(rows(n, seed), start=1):
            hidden[i] = fault
            batch.append((i, row["content_hash"], row["messages"], row["source"], row["model"], row["task"], row["external_id"], _sqlite_time(row["created_at"]), now, row["metadata"]))
            verdicts.append((i, "refusal", "1", refusal, "1" if refusal >= 0.5 else "0", "refusal cue" if refusal >= 0.5 else None, now))
            verdicts.append((i, "judge", "1", judge, "1" if judge >= 0.5 else "0", None, now))
            if len(batch) == CHUNK or i == n:
                cur.executemany("INSERT INTO transcripts (id, content_hash, messages, source, model, task, external_id, created_at, imported_at, metadata) VALUES (?,?,?,?,?,?,?,?,?,?)", batch)
                cur.executemany("INSERT INTO verdicts (transcript_id, monitor, monitor_version, score, label, evidence, created_at) VALUES (?,?,?,?,?,?,?)", verdicts)
                raw.commit()
                batch, verdicts = [], []
                rate = i / (time.perf_counter() - started)
                print(f"\r  inserted {i:,} / {n:,} transcripts ({rate:,.0f}/s)", end="", file=sys.stderr, flush=True)
        print(file=sys.stderr)
        for name, sql in indexes:
            print(f"  indexing: {name}", file=sys.stderr)
            cur.execute(sql)
        cur.execute("ANALYZE")
        raw.commit()
    finally:
        raw.close()
    return hidden


def _sqlite_time(when: datetime) -> str:
    """How SQLAlchemy stores a UTC time in SQLite (naive, microseconds)."""
    return when.astimezone(UTC).replace(tzinfo=None).strftime("%Y-%m-%d %H:%M:%S.%f")


def hidden_labels(n: int, seed: int) -> np.ndarray[Any, np.dtype[np.int8]]:
    hidden = np.zeros(n + 1, dtype=np.int8)
    for i, (_, fault, _, _) in enumerate(rows(n, seed), start=1):
        hidden[i] = fault
    return hidden


def _build_postgres(store: Store, n: int, seed: int) -> np.ndarray[Any, np.dtype[np.int8]]:
    hidden = np.zeros(n + 1, dtype=np.int8)
    now = datetime.now(UTC)
    raw = store.engine.raw_connection()
    try:
        cur = raw.cursor()
        # As for SQLite: secondary indexes (the full-text GIN index among them) are dropped for
        # the load and re-created from their own definitions; constraint indexes stay.
        cur.execute(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = current_schema() AND i.tablename IN ('transcripts', 'verdicts') "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        )
        indexes = cur.fetchall()
        for name, _ in indexes:
            cur.execute(f'DROP INDEX "{name}"')
        started = time.perf_counter()
        with cur.copy("COPY transcripts (id, content_hash, messages, source, model, task, external_id, created_at, imported_at, metadata) FROM STDIN") as copy:
            for i, (row, fault, _, _) in enumerate(rows(n, seed), start=1):
                hidden[i] = fault
                copy.write_row((i, row["content_hash"], row["messages"], row["source"], row["model"], row["task"], row["external_id"], row["created_at"], now, row["metadata"]))
                if i % CHUNK == 0:
                    print(f"\r  copied {i:,} / {n:,} transcripts ({i / (time.perf_counter() - started):,.0f}/s)", end="", file=sys.stderr, flush=True)
        with cur.copy("COPY verdicts (transcript_id, monitor, monitor_version, score, label, evidence, created_at) FROM STDIN") as copy:
            for i, (_, _, refusal, judge) in enumerate(rows(n, seed), start=1):
                copy.write_row((i, "refusal", "1", refusal, "1" if refusal >= 0.5 else "0", "refusal cue" if refusal >= 0.5 else None, now))
                copy.write_row((i, "judge", "1", judge, "1" if judge >= 0.5 else "0", None, now))
        print(file=sys.stderr)
        cur.execute("SELECT setval(pg_get_serial_sequence('transcripts', 'id'), %s)", (n,))
        cur.execute("SET maintenance_work_mem = '512MB'")
        for name, definition in indexes:
            print(f"  indexing: {name}", file=sys.stderr)
            cur.execute(definition)
        raw.commit()
        driver = raw.driver_connection  # VACUUM runs outside a transaction; it sets the visibility map for index-only scans
        driver.autocommit = True
        for table in ("transcripts", "verdicts"):
            driver.execute(f"VACUUM ANALYZE {table}")
        driver.autocommit = False
    finally:
        raw.close()
    return hidden


def label_through_the_queue(store: Store, hidden: np.ndarray[Any, np.dtype[np.int8]], n_labels: int) -> None:
    """Label like a reviewer would: claim from the active queue, answer with the hidden label."""
    if accounts.get_user(store, "bench") is None:
        accounts.add_user(store, "bench", PASSWORD, "admin")
    ctx = create_app(store, WebSettings(batch_size=100)).state.ctx
    for k in range(n_labels):
        entry = reviewing.claim(ctx, "bench", "judge", "active")
        assert entry is not None
        claims.submit_label(store, entry.id, "bench", int(hidden[entry.transcript_id]), None)
        if (k + 1) % 25 == 0 or k + 1 == n_labels:
            print(f"\r  labelled {k + 1} / {n_labels}", end="", file=sys.stderr, flush=True)
    print(file=sys.stderr)


# -- timing ---------------------------------------------------------------------------------------


def sign_in(client: TestClient) -> None:
    import re

    page = client.get("/login")
    token = re.search(r'name="csrf_token" value="([^"]+)"', page.text)
    assert token is not None
    response = client.post("/login", data={"name": "bench", "password": PASSWORD, "csrf_token": token.group(1)}, follow_redirects=False)
    assert response.status_code == 303, response.text


def timed(client: TestClient, path: str) -> tuple[float, Any]:
    started = time.perf_counter()
    response = client.get(path)
    elapsed = time.perf_counter() - started
    assert response.status_code == 200, f"{path}: {response.status_code} {response.text[:300]}"
    return elapsed, response


def _rows_shown(response: Any) -> int:
    """Transcripts on the page (list rows, or messages of a transcript page)."""
    url = str(response.url)
    if "/api/transcripts" in url:
        return len(response.json()["items"])
    if "/transcripts/" in url:
        return response.text.count('class="message ')
    if "/transcripts" in url:
        return max(response.text.count("<tr>") - 1, 0)  # less the header row
    return 0


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, max(0, math.ceil(q * len(ordered)) - 1))]


def scenarios(rng: random.Random, common: list[str], rare: list[str], deep_cursor: str) -> dict[str, Callable[[], str]]:
    def pick(xs: list[str]) -> str:
        return rng.choice(xs)

    return {
        "list: newest, no filter": lambda: "/transcripts",
        "list: model": lambda: f"/transcripts?model={pick(MODELS)}",
        "list: model + task": lambda: f"/transcripts?model={pick(MODELS)}&task={pick(TASKS)}",
        "list: source + unlabelled": lambda: f"/transcripts?source={pick(SOURCES)}&label=unlabelled",
        "list: label = fault": lambda: "/transcripts?label=fault",
        "list: score ≥ s, by score": lambda: f"/transcripts?monitor=judge&score_min={rng.uniform(0.5, 0.99):.3f}&sort=score",
        "list: score range + model": lambda: f"/transcripts?monitor=refusal&score_min={rng.uniform(0.2, 0.8):.2f}&score_max=1&model={pick(MODELS)}",
        "list: page 20 (cursor)": lambda: f"/transcripts?model=model-a&cursor={deep_cursor}",
        "search: common word": lambda: f"/transcripts?q={pick(common)}",
        "search: rare word": lambda: f"/transcripts?q={pick(rare)}",
        "search: two words + model": lambda: f"/transcripts?q={pick(common)}+{pick(common)}&model={pick(MODELS)}",
        "search: phrase": lambda: "/transcripts?q=%22can%27t+help%22",
        "search + score range": lambda: f"/transcripts?q={pick(common)}&monitor=judge&score_min=0.8&sort=score",
        "api: /api/transcripts, model": lambda: f"/api/transcripts?model={pick(MODELS)}&limit=50",
        "transcript page": lambda: f"/transcripts/{rng.randint(1, 1_000)}",
        "dashboard (page)": lambda: "/",
        "dashboard (api)": lambda: "/api/dashboard",
    }


def word_frequencies(store: Store, sample: int = 2000) -> tuple[list[str], list[str]]:
    """Common and rare words of the store's messages, from a sample of transcripts."""
    counts: dict[str, int] = {}
    with store.engine.connect() as conn:
        for (messages,) in conn.execute(select(schema.Transcript.messages).limit(sample)):
            for word in set(" ".join(m["content"] for m in messages).lower().replace("?", " ").replace(".", " ").split()):
                counts[word] = counts.get(word, 0) + 1
    ranked = sorted(counts, key=lambda w: -counts[w])
    return ranked[5:25], [w for w in ranked if counts[w] == 2][:40]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--db", type=Path, default=DEFAULT_DB, help="SQLite file, built if missing or smaller than --n")
    parser.add_argument("--postgres", help="a PostgreSQL URL instead of SQLite (its tables must be empty or already built)")
    parser.add_argument("--n", type=int, default=1_000_000, help="transcripts in the store")
    parser.add_argument("--labels", type=int, default=300, help="labels made through the review queue")
    parser.add_argument("--repeat", type=int, default=40, help="requests per scenario")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()

    url = args.postgres or f"sqlite:///{args.db}"
    args.db.parent.mkdir(parents=True, exist_ok=True)
    store = open_store(url)
    have = store.count_transcripts()
    if have not in (0, args.n):
        sys.exit(f"{store.url} holds {have:,} transcripts, not {args.n:,}: pass another --db (or an empty database)")
    hidden = None
    if have == 0:
        print(f"building {args.n:,} transcripts with verdicts in {store.url}", file=sys.stderr)
        started = time.perf_counter()
        hidden = build(store, args.n, args.seed)
        print(f"  built in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    with store.engine.connect() as conn:
        n_labels = conn.execute(select(func.count()).select_from(schema.Label)).scalar_one()
    if n_labels < args.labels:
        if hidden is None:
            print("  re-deriving the hidden labels", file=sys.stderr)
            hidden = hidden_labels(args.n, args.seed)
        print(f"labelling {args.labels - n_labels} transcripts through the queue", file=sys.stderr)
        label_through_the_queue(store, hidden, args.labels - n_labels)
        n_labels = args.labels

    rng = random.Random(args.seed)
    common, rare = word_frequencies(store)
    app = create_app(store, WebSettings())
    client = TestClient(app)
    sign_in(client)
    started = time.perf_counter()
    timed(client, "/")
    cold = time.perf_counter() - started
    cursor = None
    for _ in range(19):  # the cursor of page 20 of one model's transcripts
        page = client.get("/api/transcripts", params={"model": "model-a", "limit": 50, **({"cursor": cursor} if cursor else {})}).json()
        cursor = page["next_cursor"]

    print(f"\n{store.url}: {store.count_transcripts():,} transcripts, {n_labels} labels; "
          f"first dashboard (cold cache: reads every monitor's scores) {1000 * cold:.0f} ms\n")
    print(f"{'scenario':<30} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8} {'shown':>6}")
    worst = 0.0
    for name, make in scenarios(rng, common, rare, str(cursor)).items():
        timed(client, make())  # warm-up
        times, sizes = [], []
        for _ in range(args.repeat):
            elapsed, response = timed(client, make())
            times.append(elapsed)
            sizes.append(_rows_shown(response))
        p95 = percentile(times, 0.95)
        worst = max(worst, p95)
        print(f"{name:<30} {1000 * statistics.median(times):>8.1f} {1000 * p95:>8.1f} {1000 * max(times):>8.1f} {round(statistics.median(sizes)):>6}")

    # The dashboard right after a label: estimates over 1M scores are recomputed in the
    # background (the page shows the previous one, marked as updating); how long until the
    # new one is current is the second figure.
    ctx = app.state.ctx
    hidden = hidden if hidden is not None else hidden_labels(args.n, args.seed)
    after, current = [], []
    for _ in range(8):
        entry = reviewing.claim(ctx, "bench", "judge", "active")
        assert entry is not None
        claims.submit_label(store, entry.id, "bench", int(hidden[entry.transcript_id]), None)
        started = time.perf_counter()
        after.append(timed(client, "/")[0])
        ctx.cache.wait_idle()
        current.append(time.perf_counter() - started)
    print(f"{'dashboard right after a label':<30} {1000 * statistics.median(after):>8.1f} {1000 * percentile(after, 0.95):>8.1f} {1000 * max(after):>8.1f}")
    print(f"{'  … until its estimate is new':<30} {1000 * statistics.median(current):>8.1f} {1000 * percentile(current, 0.95):>8.1f} {1000 * max(current):>8.1f}")
    print(f"\nworst p95 of the scenarios above: {1000 * worst:.0f} ms (target 300 ms)")
    store.close()


if __name__ == "__main__":
    main()
