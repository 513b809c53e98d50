"""Signing in and out, API tokens, user administration, the audit log, eval runs, API docs."""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from oversight.evals.analysis import compare_runs
from oversight.report.html import build_report
from oversight.store import accounts
from oversight.web.auth import Principal, requires, resolve
from oversight.web.context import AppContext, context, render
from oversight.web.pages import page, see_other
from oversight.web.runs import list_runs, run_path
from oversight.web.security import LOGIN_CSRF_COOKIE, REPORT_POLICY, SESSION_COOKIE, new_token

router = APIRouter(include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Admin = Annotated[Principal, Depends(requires("admin"))]


def _safe_next(target: str | None) -> str:
    """Only a path on this site (never ``//host`` or ``https://…``): no open redirect."""
    if not target or not target.startswith("/") or target.startswith("//") or "\\" in target:
        return "/"
    if any(ord(ch) < 32 or ord(ch) == 127 for ch in target):  # browsers drop tabs: "/\t/x" is "//x"
        return "/"
    return target


def _login_page(ctx: AppContext, request: Request, *, error: str | None = None, next_url: str = "/", status_code: int = 200) -> HTMLResponse:
    token = new_token()
    response = HTMLResponse(render(ctx, "login.html", request, login_csrf=token, error=error, next_url=next_url), status_code=status_code)
    response.set_cookie(LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=ctx.settings.secure_cookies, path="/login")
    return response


@router.get("/login")
async def login_page(request: Request, ctx: Ctx, next: str | None = None) -> Response:
    if await run_in_threadpool(resolve, ctx, request) is not None:
        return see_other(_safe_next(next))
    return _login_page(ctx, request, next_url=_safe_next(next))


@router.post("/login")
def login(
    request: Request, ctx: Ctx, name: Annotated[str, Form(max_length=255)], password: Annotated[str, Form(max_length=1024)], next: Annotated[str, Form()] = "/"
) -> Response:
    user = accounts.authenticate(ctx.store, name, password)
    if user is None:
        return _login_page(ctx, request, error="wrong name or password", next_url=_safe_next(next), status_code=401)
    token, _session = accounts.create_session(ctx.store, user, lifetime=ctx.settings.session_lifetime)
    response = see_other(_safe_next(next))
    response.set_cookie(
        SESSION_COOKIE, token, httponly=True, samesite="lax", secure=ctx.settings.secure_cookies,
        max_age=int(ctx.settings.session_lifetime.total_seconds()), path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, ctx: Ctx, _: Viewer) -> Response:
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        accounts.end_session(ctx.store, cookie)
    response = see_other("/login")
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response


# -- account: API tokens ----------------------------------------------------------------------


@router.get("/account")
def account_page(request: Request, ctx: Ctx, principal: Viewer) -> HTMLResponse:
    tokens = accounts.list_tokens(ctx.store, principal.user.name)
    return page(ctx, request, "account.html", tokens=tokens, new_token=None)


@router.post("/account/tokens")
def create_token(
    request: Request, ctx: Ctx, principal: Viewer, name: Annotated[str, Form(min_length=1, max_length=255)], expires_days: Annotated[int | None, Form(ge=1, le=3650)] = None
) -> HTMLResponse:
    expires = None if expires_days is None else timedelta(days=expires_days)
    secret, _ = accounts.create_token(ctx.store, principal.user.name, name, expires_in=expires, actor=principal.user.name)
    tokens = accounts.list_tokens(ctx.store, principal.user.name)
    return page(ctx, request, "account.html", tokens=tokens, new_token=secret)


@router.post("/account/tokens/{token_id}/revoke")
def revoke_token(ctx: Ctx, principal: Viewer, token_id: int) -> RedirectResponse:
    accounts.revoke_token(ctx.store, token_id, actor=principal.user.name, owner=principal.user.name)
    return see_other("/account")


# -- admin ------------------------------------------------------------------------------------


@router.get("/admin/users")
def users_page(request: Request, ctx: Ctx, _: Admin) -> HTMLResponse:
    return page(ctx, request, "users.html", users=accounts.list_users(ctx.store), roles=accounts.ROLES, tokens=accounts.list_tokens(ctx.store))


@router.post("/admin/users")
def add_user(
    ctx: Ctx, principal: Admin, name: Annotated[str, Form()], password: Annotated[str, Form()], role: Annotated[str, Form()]
) -> RedirectResponse:
    accounts.add_user(ctx.store, name, password, role, actor=principal.user.name)
    return see_other("/admin/users")


@router.post("/admin/users/{name}/role")
def set_role(ctx: Ctx, principal: Admin, name: str, role: Annotated[str, Form()]) -> RedirectResponse:
    accounts.set_role(ctx.store, name, role, actor=principal.user.name)
    return see_other("/admin/users")


@router.post("/admin/users/{name}/active")
def set_active(ctx: Ctx, principal: Admin, name: str, active: Annotated[int, Form()]) -> RedirectResponse:
    accounts.set_active(ctx.store, name, bool(active), actor=principal.user.name)
    return see_other("/admin/users")


@router.get("/admin/audit")
def audit_page(request: Request, ctx: Ctx, _: Admin, before_id: int | None = None, action: str | None = None) -> HTMLResponse:
    events = accounts.audit_events(ctx.store, limit=100, before_id=before_id, action=action or None)
    older = events[-1].id if len(events) == 100 else None
    return page(ctx, request, "audit.html", events=events, older=older, action=action or "")


# -- eval runs --------------------------------------------------------------------------------


@router.get("/runs")
def runs_page(request: Request, ctx: Ctx, _: Viewer) -> HTMLResponse:
    runs = list_runs(ctx.settings.runs_dir)
    return page(ctx, request, "runs.html", runs=runs, runs_dir=str(ctx.settings.runs_dir))


@router.get("/runs/compare")
def compare_page(request: Request, ctx: Ctx, _: Viewer, a: str, b: str) -> HTMLResponse:
    rows = compare_runs(run_path(ctx.settings.runs_dir, a), run_path(ctx.settings.runs_dir, b))
    return page(ctx, request, "compare.html", a=a, b=b, rows=rows)


@router.get("/runs/report")
def report(ctx: Ctx, _: Viewer, run: Annotated[list[str], Query(min_length=1, max_length=8)]) -> Response:
    """The eval report of one run, or of several compared (``?run=a&run=b``): a document of its
    own, shown sandboxed with scripts off."""
    paths = [run_path(ctx.settings.runs_dir, name) for name in run]
    return HTMLResponse(build_report(paths), headers={"Content-Security-Policy": REPORT_POLICY})


# -- API docs ---------------------------------------------------------------------------------


@router.get("/api")
def api_docs(request: Request, ctx: Ctx, _: Viewer) -> HTMLResponse:
    """The API's operations read from its own OpenAPI schema (Swagger UI would need a CDN)."""
    schema: dict[str, Any] = request.app.openapi()
    operations = []
    for path, methods in schema.get("paths", {}).items():
        for method, op in methods.items():
            operations.append({"method": method.upper(), "path": path, "summary": op.get("summary", ""), "description": op.get("description", ""), "tags": op.get("tags", [])})
    return page(ctx, request, "api.html", operations=operations)
