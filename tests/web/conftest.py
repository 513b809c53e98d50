"""Web app tests run on SQLite and on a throwaway PostgreSQL server (the store tests' fixtures)."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher

sys.path.insert(0, str(Path(__file__).parent))

from web_helpers import PASSWORD, seed_store

from oversight.store import Store, accounts, open_store
from oversight.web import WebSettings, create_app
from store.conftest import db_url, pg_server  # noqa: F401  (fixtures: SQLite + PostgreSQL)


@pytest.fixture(autouse=True)
def _quick_argon2(monkeypatch: pytest.MonkeyPatch) -> None:
    """Real argon2id, with cheap parameters: the default (64 MiB, 3 passes) costs ~0.5 s a hash
    on a busy CI machine and the tests hash dozens. test_accounts checks the defaults."""
    monkeypatch.setattr(accounts, "_hasher", PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


@pytest.fixture()
def store(db_url: str) -> Iterator[Store]:  # noqa: F811
    with open_store(db_url) as opened:
        yield opened


@pytest.fixture()
def seeded(store: Store, tmp_path: Path) -> Store:
    """120 imported transcripts scored by the refusal monitor, and one user of each role."""
    seed_store(store, tmp_path, n=120)
    accounts.add_user(store, "root", PASSWORD, "admin")
    accounts.add_user(store, "ana", PASSWORD, "reviewer")
    accounts.add_user(store, "ben", PASSWORD, "reviewer")
    accounts.add_user(store, "vic", PASSWORD, "viewer")
    return store


@pytest.fixture()
def settings(tmp_path: Path) -> WebSettings:
    return WebSettings(runs_dir=tmp_path / "runs", batch_size=10)


@pytest.fixture()
def app(seeded: Store, settings: WebSettings):  # type: ignore[no-untyped-def]
    return create_app(seeded, settings)
