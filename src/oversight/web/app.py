"""The oversight web app: ``create_app(store, settings)`` gives a FastAPI application.

    from oversight.store import open_store
    from oversight.web import WebSettings, create_app

    app = create_app(open_store("sqlite:///oversight.db"), WebSettings(runs_dir=Path("runs")))
    uvicorn.run(app, host="127.0.0.1", port=8000)     # what `oversight web` does

Routes: pages (``pages``, ``pages_admin``), the JSON API under ``/api`` (``api``, schema at
``/api/openapi.json``), static files under ``/static``. Errors a user can act on
(:class:`~oversight.errors.OversightError`) answer 400, unknown things 404, a queue item
someone else holds 409; the API answers JSON, pages a page.
"""

from __future__ import annotations

from fastapi import Depends, FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException

from oversight import __version__
from oversight.errors import OversightError
from oversight.store.claims import ClaimError
from oversight.store.db import Store
from oversight.web import api, pages, pages_admin
from oversight.web.auth import LoginRequired, csrf_guard, is_api
from oversight.web.cache import StoreCache
from oversight.web.context import STATIC, AppContext, make_templates, render, static_versions
from oversight.web.security import SecurityHeaders
from oversight.web.settings import WebSettings


def create_app(store: Store, settings: WebSettings | None = None) -> FastAPI:
    settings = settings or WebSettings()
    app = FastAPI(
        title="oversight",
        version=__version__,
        description="Review queue, transcripts, monitor verdicts, fault-rate estimates and eval runs.",
        openapi_url="/api/openapi.json",
        docs_url=None,
        redoc_url=None,
        dependencies=[Depends(csrf_guard)],
    )
    app.state.ctx = AppContext(
        store=store,
        settings=settings,
        cache=StoreCache(store, rebuild_every=settings.rebuild_every.total_seconds(), sync_limit=settings.estimate_sync_limit),
        templates=make_templates(),
        static_versions=static_versions(),
    )
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")
    app.include_router(api.router)
    app.include_router(pages.router)
    app.include_router(pages_admin.router)
    _error_handlers(app)
    return app


def _error_handlers(app: FastAPI) -> None:
    def answer(request: Request, status: int, message: str, **extra: object) -> Response:
        if is_api(request):
            return JSONResponse({"detail": message, **extra}, status_code=status, headers=_auth_header(status))
        ctx: AppContext = request.app.state.ctx
        html = render(ctx, "error.html", request, status=status, message=message)
        return HTMLResponse(html, status_code=status)

    @app.exception_handler(LoginRequired)
    async def login_required(request: Request, exc: LoginRequired) -> Response:
        from urllib.parse import quote

        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse(f"/login?next={quote(target, safe='/')}", status_code=303)

    @app.exception_handler(ClaimError)
    async def claim_error(request: Request, exc: ClaimError) -> Response:
        return answer(request, 409, str(exc), reason=exc.reason)

    @app.exception_handler(LookupError)
    async def not_found(request: Request, exc: LookupError) -> Response:
        return answer(request, 404, str(exc.args[0]) if exc.args else "not found")

    @app.exception_handler(OversightError)
    async def user_error(request: Request, exc: OversightError) -> Response:
        return answer(request, 400, str(exc))

    # FastAPI's HTTPException subclasses Starlette's: this one handler serves both.
    @app.exception_handler(StarletteHTTPException)
    async def http_error(request: Request, exc: StarletteHTTPException) -> Response:
        response = answer(request, exc.status_code, str(exc.detail))
        for key, value in (exc.headers or {}).items():
            response.headers[key] = value
        return response

    @app.exception_handler(RequestValidationError)
    async def invalid(request: Request, exc: RequestValidationError) -> Response:
        errors = exc.errors()
        first = errors[0] if errors else {}
        where = ".".join(str(p) for p in first.get("loc", ()))
        message = f"{where}: {first.get('msg', 'invalid request')}" if where else "invalid request"
        if is_api(request):
            return JSONResponse({"detail": message, "errors": _plain(errors)}, status_code=422)
        return answer(request, 422, message)



def _auth_header(status: int) -> dict[str, str]:
    return {"WWW-Authenticate": "Bearer"} if status == 401 else {}


def _plain(errors: object) -> object:
    """Validation errors as JSON-safe data (they may hold exceptions and bytes)."""
    import json

    return json.loads(json.dumps(errors, default=str))
