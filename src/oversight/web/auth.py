"""Who is asking: the signed-in user of a request, and the checks routes depend on.

A request is authenticated by ``Authorization: Bearer <API token>`` when it carries that
header (and then by nothing else, so a bad token never falls back to a cookie), otherwise by
the session cookie. Routes declare the weakest role they accept (``viewer`` reads,
``reviewer`` labels, ``admin`` manages users); a missing or expired session is 401 for the API
and a redirect to the sign-in page for pages, a role too weak is 403 for both.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

from fastapi import HTTPException, Request
from starlette.concurrency import run_in_threadpool

from oversight.store import accounts
from oversight.store.accounts import UserInfo
from oversight.web.context import AppContext, context
from oversight.web.security import (
    CSRF_FIELD,
    CSRF_HEADER,
    LOGIN_CSRF_COOKIE,
    SAFE_METHODS,
    SESSION_COOKIE,
    bearer_token,
    tokens_match,
)


@dataclass(frozen=True)
class Principal:
    user: UserInfo
    via: Literal["session", "token"]
    #: The session's CSRF token (None for API tokens, which need none).
    csrf_token: str | None


class LoginRequired(Exception):
    """Raised by page routes without a session; the app redirects to the sign-in page."""


def resolve(ctx: AppContext, request: Request) -> Principal | None:
    """The principal of ``request`` (looked up once per request)."""
    if hasattr(request.state, "principal"):
        cached: Principal | None = request.state.principal
        return cached
    principal: Principal | None = None
    token = bearer_token(request)
    if request.headers.get("authorization"):
        user = accounts.token_user(ctx.store, token) if token else None
        principal = Principal(user, "token", None) if user is not None else None
    elif cookie := request.cookies.get(SESSION_COOKIE):
        session = accounts.session_user(ctx.store, cookie, idle_timeout=ctx.settings.idle_timeout)
        principal = Principal(session.user, "session", session.csrf_token) if session is not None else None
    request.state.principal = principal
    return principal


def is_api(request: Request) -> bool:
    return request.url.path.startswith("/api/") or request.url.path == "/api"


def requires(role: str) -> Callable[[Request], Awaitable[Principal]]:
    """A dependency admitting users with ``role`` or a stronger one."""

    async def dependency(request: Request) -> Principal:
        ctx = context(request)
        principal = await run_in_threadpool(resolve, ctx, request)
        if principal is None:
            if is_api(request):
                raise HTTPException(401, "sign in or send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"})
            raise LoginRequired()
        if not principal.user.can(role):
            raise HTTPException(403, f"your role ({principal.user.role}) cannot do this; it needs {role}")
        return principal

    return dependency


async def csrf_guard(request: Request) -> None:
    """App-wide dependency: every state-changing request must prove it came from our page."""
    if request.method in SAFE_METHODS:
        return
    if request.url.path == "/login":
        form = await request.form()
        if not tokens_match(request.cookies.get(LOGIN_CSRF_COOKIE), _str(form.get(CSRF_FIELD))):
            raise HTTPException(403, "the sign-in form expired; reload the page and try again")
        return
    if request.headers.get("authorization"):
        return
    ctx = context(request)
    principal = await run_in_threadpool(resolve, ctx, request)
    if principal is None:
        return  # the route's own check answers 401 / redirects to sign-in
    given = request.headers.get(CSRF_HEADER)
    if given is None and request.headers.get("content-type", "").startswith(("application/x-www-form-urlencoded", "multipart/form-data")):
        given = _str((await request.form()).get(CSRF_FIELD))
    if not tokens_match(principal.csrf_token, given):
        raise HTTPException(403, "missing or wrong CSRF token; reload the page and try again")


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None
