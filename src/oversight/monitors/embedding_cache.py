"""MiniLM embeddings kept on disk, so a text is embedded once per machine.

The embedding monitor re-scores every transcript whenever it is retrained (a new training
set is a new monitor version), and the review queue's ``diverse`` policy clusters the
embeddings of every candidate: both would otherwise re-run the encoder over the whole store
each time. The cache is one SQLite file per encoder (named by the weights' fingerprint, so
vectors of another encoder can never be read back) in the user's cache dir, keyed by the
SHA-256 of the exact text embedded, holding each vector as 384 float32 bytes (1.5 kB a text).
Deleting the file only costs time.
"""

from __future__ import annotations

import hashlib
import sqlite3
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from oversight.errors import OversightError

#: Texts per encoder call and per cache transaction.
CHUNK = 256
#: Called with (texts done, texts in all).
EmbedProgress = Callable[[int, int], None]


def text_key(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


class EmbeddingCache:
    """Vectors of one encoder by text hash; a context manager closing the connection."""

    def __init__(self, path: Path, fingerprint: str, dim: int) -> None:
        self.path, self.fingerprint, self.dim = path, fingerprint, dim
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self._db = sqlite3.connect(path, timeout=60)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("CREATE TABLE IF NOT EXISTS vectors (key TEXT PRIMARY KEY, vector BLOB NOT NULL)")
            self._db.execute("CREATE TABLE IF NOT EXISTS meta (name TEXT PRIMARY KEY, value TEXT NOT NULL)")
            self._db.execute("INSERT OR IGNORE INTO meta VALUES ('fingerprint', ?)", (fingerprint,))
            stored = self._db.execute("SELECT value FROM meta WHERE name = 'fingerprint'").fetchone()[0]
            self._db.commit()
        except sqlite3.Error as e:
            raise OversightError(f"cannot use the embedding cache {path}: {e}; delete the file to start afresh") from None
        if stored != fingerprint:
            self._db.close()
            raise OversightError(f"the embedding cache {path} belongs to encoder {stored}, not {fingerprint}; delete it")

    def get(self, keys: Sequence[str]) -> dict[str, NDArray[np.float32]]:
        found: dict[str, NDArray[np.float32]] = {}
        for start in range(0, len(keys), 500):  # well under SQLite's bound-parameter limit
            part = list(keys[start : start + 500])
            marks = ",".join("?" * len(part))
            for key, blob in self._db.execute(f"SELECT key, vector FROM vectors WHERE key IN ({marks})", part):
                vector = np.frombuffer(blob, dtype=np.float32)
                if vector.size == self.dim:  # a torn or foreign row is re-embedded
                    found[key] = vector
        return found

    def put(self, vectors: dict[str, NDArray[np.float32]]) -> None:
        rows = [(k, np.ascontiguousarray(v, dtype=np.float32).tobytes()) for k, v in vectors.items()]
        with self._db:
            self._db.executemany("INSERT OR REPLACE INTO vectors VALUES (?, ?)", rows)

    def __len__(self) -> int:
        return int(self._db.execute("SELECT count(*) FROM vectors").fetchone()[0])

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> EmbeddingCache:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def open_cache(fingerprint: str, dim: int, directory: Path | None = None) -> EmbeddingCache:
    """The cache file of the encoder with this fingerprint, in ``directory`` (default: the
    user's cache dir)."""
    from oversight.paths import cache_dir

    name = fingerprint.removeprefix("sha256:")[:16]
    return EmbeddingCache((directory or cache_dir()) / "embeddings" / f"minilm-{name}.sqlite", fingerprint, dim)


def embed_with_cache(
    texts: Sequence[str],
    embed: Callable[[list[str]], NDArray[np.float32]],
    cache: EmbeddingCache | None,
    *,
    progress: EmbedProgress | None = None,
) -> NDArray[np.float32]:
    """One row per text (at least one): read from the cache, the rest embedded in chunks
    and stored.

    Each chunk is stored as soon as it is embedded, so an interrupted run keeps its work.
    Identical texts are embedded once.
    """
    keys = [text_key(t) for t in texts]
    vectors = cache.get(list(dict.fromkeys(keys))) if cache is not None else {}
    todo = list(dict.fromkeys(k for k in keys if k not in vectors))
    text_of = dict(zip(keys, texts, strict=True))
    done = len(texts) - sum(1 for k in keys if k not in vectors)
    if progress is not None:
        progress(done, len(texts))
    counts: dict[str, int] = {}
    for k in keys:
        if k not in vectors:
            counts[k] = counts.get(k, 0) + 1
    for start in range(0, len(todo), CHUNK):
        part = todo[start : start + CHUNK]
        new = dict(zip(part, embed([text_of[k] for k in part]), strict=True))
        if cache is not None:
            cache.put(new)
        vectors.update(new)
        done += sum(counts[k] for k in part)
        if progress is not None:
            progress(done, len(texts))
    return np.stack([vectors[k] for k in keys]).astype(np.float32, copy=False)
