"""Who may use the web app: users, their sessions and API tokens, and the audit log.

Passwords are kept only as argon2id hashes (``argon2-cffi``'s defaults, rehashed on sign-in when
those defaults grow). Session cookies and API tokens are random 256-bit secrets; the database
holds their SHA-256 only, which is enough for secrets of that entropy and costs microseconds per
request (an argon2 hash per API call would not). Everything that changes who can do what —
users, roles, tokens, sign-ins — writes an :class:`~oversight.store.schema.AuditEvent` in the
same transaction as the change.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import Connection, delete, insert, select, update

from oversight.errors import SpecError
from oversight.store import schema
from oversight.store.db import Store

ROLES = schema.ROLES
#: What each role may do, as a rank: a route needing "reviewer" admits admins too.
_RANK = {"viewer": 0, "reviewer": 1, "admin": 2}
MIN_PASSWORD = 10
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,63}$")
TOKEN_PREFIX = "ovt_"

#: argon2id with argon2-cffi's defaults (RFC 9106's low-memory profile: 64 MiB, 3 passes).
_hasher = PasswordHasher()


@functools.cache
def _dummy_hash() -> str:
    """Verified against when a user name is unknown, so a wrong name costs as long as a wrong password."""
    return _hasher.hash(secrets.token_hex(16))


@dataclass(frozen=True)
class UserInfo:
    id: int
    name: str
    role: str
    active: bool
    created_at: datetime

    def can(self, role: str) -> bool:
        """Whether this user has ``role`` or a stronger one."""
        return self.active and _RANK[self.role] >= _RANK[role]


@dataclass(frozen=True)
class SessionInfo:
    user: UserInfo
    csrf_token: str
    expires_at: datetime


@dataclass(frozen=True)
class TokenInfo:
    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None


@dataclass(frozen=True)
class AuditEntry:
    id: int
    created_at: datetime
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]


def check_role(role: str) -> str:
    if role not in ROLES:
        raise SpecError(f"unknown role {role!r}; accepted: {', '.join(ROLES)}")
    return role


def check_name(name: str) -> str:
    if not _NAME.match(name):
        raise SpecError(f"user name {name!r} must be 1–64 letters, digits or _.@- and start with a letter or digit")
    return name


def check_password(password: str) -> str:
    if len(password) < MIN_PASSWORD:
        raise SpecError(f"a password needs at least {MIN_PASSWORD} characters")
    return password


def digest(secret: str) -> str:
    return hashlib.sha256(secret.encode()).hexdigest()


def audit(conn: Connection, actor: str | None, action: str, target: str | None = None, **details: Any) -> None:
    """Record an event inside the caller's transaction (it commits or rolls back with the change)."""
    conn.execute(insert(schema.AuditEvent).values(created_at=schema.utcnow(), actor=actor, action=action, target=target, details=details))


# -- users ------------------------------------------------------------------------------------


def add_user(store: Store, name: str, password: str, role: str, *, actor: str | None = None) -> UserInfo:
    """Create a user; SpecError if the name is taken or a field is invalid."""
    check_name(name)
    check_role(role)
    check_password(password)
    U = schema.User
    with store.engine.begin() as conn:
        if conn.execute(select(U.id).where(U.name == name)).first() is not None:
            raise SpecError(f"user {name!r} already exists; change a role with `oversight users role {name} ROLE`")
        now = schema.utcnow()
        new_id = conn.execute(
            insert(U).values(name=name, password_hash=_hasher.hash(password), role=role, active=True, created_at=now).returning(U.id)
        ).scalar_one()
        audit(conn, actor, "user.create", name, role=role)
    return UserInfo(int(new_id), name, role, True, now)


def get_user(store: Store, name: str) -> UserInfo | None:
    with store.engine.connect() as conn:
        row = conn.execute(select(schema.User).where(schema.User.name == name)).mappings().first()
    return None if row is None else _user(row)


def list_users(store: Store) -> list[UserInfo]:
    with store.engine.connect() as conn:
        return [_user(r) for r in conn.execute(select(schema.User).order_by(schema.User.name)).mappings()]


def count_users(store: Store) -> int:
    with store.engine.connect() as conn:
        return len(conn.execute(select(schema.User.id).limit(1)).all())


def set_role(store: Store, name: str, role: str, *, actor: str | None = None) -> UserInfo:
    """Change a user's role (audited with the old and new role)."""
    check_role(role)
    U = schema.User
    with store.engine.begin() as conn:
        row = conn.execute(select(U).where(U.name == name)).mappings().first()
        if row is None:
            raise SpecError(f"no user {name!r}")
        if row["role"] != role:
            if row["role"] == "admin" and _other_admins(conn, name) == 0:
                raise SpecError(f"{name} is the last admin; make another user admin first")
            conn.execute(update(U).where(U.id == row["id"]).values(role=role))
            audit(conn, actor, "user.role", name, old=row["role"], new=role)
    return UserInfo(int(row["id"]), name, role, bool(row["active"]), row["created_at"])


def set_active(store: Store, name: str, active: bool, *, actor: str | None = None) -> None:
    """Disable (or re-enable) a user; disabling also ends their sessions."""
    U = schema.User
    with store.engine.begin() as conn:
        row = conn.execute(select(U).where(U.name == name)).mappings().first()
        if row is None:
            raise SpecError(f"no user {name!r}")
        if not active and row["role"] == "admin" and _other_admins(conn, name) == 0:
            raise SpecError(f"{name} is the last admin; make another user admin first")
        conn.execute(update(U).where(U.id == row["id"]).values(active=active))
        if not active:
            conn.execute(delete(schema.WebSession).where(schema.WebSession.user_id == row["id"]))
        audit(conn, actor, "user.enable" if active else "user.disable", name)


def set_password(store: Store, name: str, password: str, *, actor: str | None = None) -> None:
    """A new password; every session of the user ends."""
    check_password(password)
    U = schema.User
    with store.engine.begin() as conn:
        user_id = conn.execute(select(U.id).where(U.name == name)).scalar_one_or_none()
        if user_id is None:
            raise SpecError(f"no user {name!r}")
        conn.execute(update(U).where(U.id == user_id).values(password_hash=_hasher.hash(password)))
        conn.execute(delete(schema.WebSession).where(schema.WebSession.user_id == user_id))
        audit(conn, actor, "user.password", name)


def authenticate(store: Store, name: str, password: str) -> UserInfo | None:
    """The active user with this name and password, else None (and a failed sign-in is audited)."""
    U = schema.User
    with store.engine.begin() as conn:
        row = conn.execute(select(U).where(U.name == name)).mappings().first()
        stored = row["password_hash"] if row is not None else _dummy_hash()
        try:
            ok = _hasher.verify(stored, password) and row is not None and bool(row["active"])
        except (VerificationError, InvalidHashError):
            ok = False
        if not ok or row is None:
            audit(conn, None, "login.failed", name[:255])
            return None
        if _hasher.check_needs_rehash(stored):
            conn.execute(update(U).where(U.id == row["id"]).values(password_hash=_hasher.hash(password)))
        audit(conn, name, "login", name)
        return _user(row)


def _other_admins(conn: Connection, name: str) -> int:
    U = schema.User
    return len(conn.execute(select(U.id).where(U.role == "admin", U.active.is_(True), U.name != name)).all())


def _user(row: Any) -> UserInfo:
    return UserInfo(int(row["id"]), str(row["name"]), str(row["role"]), bool(row["active"]), row["created_at"])


# -- sessions ---------------------------------------------------------------------------------


def create_session(store: Store, user: UserInfo, *, lifetime: timedelta) -> tuple[str, SessionInfo]:
    """A new session for ``user``: returns the cookie value (shown once) and the session."""
    token = secrets.token_urlsafe(32)
    csrf = secrets.token_urlsafe(32)
    now = schema.utcnow()
    expires = now + lifetime
    S = schema.WebSession
    with store.engine.begin() as conn:
        conn.execute(delete(S).where(S.expires_at < now))  # sweep: keeps the table small
        conn.execute(
            insert(S).values(token_hash=digest(token), user_id=user.id, csrf_token=csrf, created_at=now, last_seen_at=now, expires_at=expires)
        )
    return token, SessionInfo(user, csrf, expires)


def session_user(store: Store, token: str, *, idle_timeout: timedelta) -> SessionInfo | None:
    """The session of a cookie, if it exists, has not expired and was used within ``idle_timeout``.

    ``last_seen_at`` is written at most once a minute, so reading pages does not write on
    every request.
    """
    S, U = schema.WebSession, schema.User
    now = schema.utcnow()
    stmt = (
        select(S.id, S.csrf_token, S.expires_at, S.last_seen_at, U.id.label("uid"), U.name, U.role, U.active, U.created_at)
        .join(U, U.id == S.user_id)
        .where(S.token_hash == digest(token))
    )
    with store.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None or not row["active"] or row["expires_at"] <= now or row["last_seen_at"] + idle_timeout <= now:
        return None
    if now - row["last_seen_at"] > timedelta(minutes=1):
        with store.engine.begin() as conn:
            conn.execute(update(S).where(S.id == row["id"]).values(last_seen_at=now))
    user = UserInfo(int(row["uid"]), str(row["name"]), str(row["role"]), True, row["created_at"])
    return SessionInfo(user, str(row["csrf_token"]), row["expires_at"])


def end_session(store: Store, token: str) -> None:
    with store.engine.begin() as conn:
        conn.execute(delete(schema.WebSession).where(schema.WebSession.token_hash == digest(token)))


# -- API tokens -------------------------------------------------------------------------------


def create_token(store: Store, user_name: str, name: str, *, expires_in: timedelta | None = None, actor: str | None = None) -> tuple[str, TokenInfo]:
    """A new API token for ``user_name``; the secret is returned once and never stored."""
    U, A = schema.User, schema.ApiToken
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    now = schema.utcnow()
    expires = None if expires_in is None else now + expires_in
    label = (name or "token")[:255]
    with store.engine.begin() as conn:
        user_id = conn.execute(select(U.id).where(U.name == user_name)).scalar_one_or_none()
        if user_id is None:
            raise SpecError(f"no user {user_name!r}; add one with `oversight users add {user_name} --role reviewer`")
        token_id = conn.execute(
            insert(A)
            .values(user_id=user_id, name=label, token_hash=digest(secret), prefix=secret[:12], created_at=now, expires_at=expires)
            .returning(A.id)
        ).scalar_one()
        audit(conn, actor, "token.create", user_name, token=label, prefix=secret[:12])
    return secret, TokenInfo(int(token_id), user_name, label, secret[:12], now, expires, None, None)


def token_user(store: Store, secret: str) -> UserInfo | None:
    """The active user of a valid (known, unrevoked, unexpired) token."""
    A, U = schema.ApiToken, schema.User
    now = schema.utcnow()
    stmt = (
        select(A.id, A.expires_at, A.revoked_at, A.last_used_at, U.id.label("uid"), U.name, U.role, U.active, U.created_at)
        .join(U, U.id == A.user_id)
        .where(A.token_hash == digest(secret))
    )
    with store.engine.connect() as conn:
        row = conn.execute(stmt).mappings().first()
    if row is None or not row["active"] or row["revoked_at"] is not None:
        return None
    if row["expires_at"] is not None and row["expires_at"] <= now:
        return None
    if row["last_used_at"] is None or now - row["last_used_at"] > timedelta(minutes=1):
        with store.engine.begin() as conn:
            conn.execute(update(A).where(A.id == row["id"]).values(last_used_at=now))
    return UserInfo(int(row["uid"]), str(row["name"]), str(row["role"]), True, row["created_at"])


def list_tokens(store: Store, user_name: str | None = None) -> list[TokenInfo]:
    A, U = schema.ApiToken, schema.User
    stmt = select(A, U.name.label("user_name")).join(U, U.id == A.user_id).order_by(A.id)
    if user_name is not None:
        stmt = stmt.where(U.name == user_name)
    with store.engine.connect() as conn:
        return [
            TokenInfo(int(r["id"]), str(r["user_name"]), str(r["name"]), str(r["prefix"]), r["created_at"], r["expires_at"], r["last_used_at"], r["revoked_at"])
            for r in conn.execute(stmt).mappings()
        ]


def revoke_token(store: Store, token_id: int, *, actor: str | None = None, owner: str | None = None) -> None:
    """Revoke a token; with ``owner``, only if it belongs to that user (SpecError otherwise)."""
    A, U = schema.ApiToken, schema.User
    with store.engine.begin() as conn:
        row = conn.execute(select(A.id, A.name, U.name.label("user")).join(U, U.id == A.user_id).where(A.id == token_id)).mappings().first()
        if row is None or (owner is not None and row["user"] != owner):
            raise SpecError(f"no API token {token_id}")
        conn.execute(update(A).where(A.id == token_id, A.revoked_at.is_(None)).values(revoked_at=schema.utcnow()))
        audit(conn, actor, "token.revoke", str(row["user"]), token=row["name"])


# -- the audit log ----------------------------------------------------------------------------


def audit_events(store: Store, *, limit: int = 200, before_id: int | None = None, action: str | None = None) -> list[AuditEntry]:
    """Newest first, keyset-paged by id."""
    E = schema.AuditEvent
    stmt = select(E).order_by(E.id.desc()).limit(limit)
    if before_id is not None:
        stmt = stmt.where(E.id < before_id)
    if action:
        stmt = stmt.where(E.action == action)
    with store.engine.connect() as conn:
        return [
            AuditEntry(int(r["id"]), r["created_at"], r["actor"], str(r["action"]), r["target"], dict(r["details"] or {}))
            for r in conn.execute(stmt).mappings()
        ]
