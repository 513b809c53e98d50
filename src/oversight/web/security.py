"""Headers and checks that keep untrusted model output inert and requests genuine.

* Every response carries a strict Content-Security-Policy: scripts and styles only from this
  origin's ``/static`` files (no inline script or style, no ``eval``), no plugins, no framing,
  forms that post only here. Even if text from a transcript ever reached the page as markup,
  a ``<script>`` or ``onerror=`` in it could not run. Eval reports (whole HTML documents with
  their own inline styles) and SVG plots get a policy of their own: styles allowed, scripts
  never, and reports are sandboxed.
* CSRF: each session has a random token; every state-changing request authenticated by the
  session cookie must echo it, in the ``csrf_token`` form field or the ``X-CSRF-Token`` header
  (compared in constant time). Requests with ``Authorization: Bearer`` carry no ambient
  credential and need none. The sign-in form, which has no session yet, uses a double-submit
  cookie. Cookies are ``HttpOnly`` and ``SameSite=Lax`` on top.
"""

from __future__ import annotations

import hmac
import secrets

from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.requests import Request
from starlette.responses import Response

SESSION_COOKIE = "oversight_session"
LOGIN_CSRF_COOKIE = "oversight_login_csrf"
CSRF_FIELD = "csrf_token"
CSRF_HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS"})

PAGE_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'"
)
#: Eval reports are self-contained documents with inline styles and inline SVG.
REPORT_POLICY = "default-src 'none'; style-src 'unsafe-inline'; img-src data:; frame-ancestors 'none'; base-uri 'none'; form-action 'none'; sandbox"
#: matplotlib's SVG uses style attributes; shown through <img>, where no script can run anyway.
SVG_POLICY = "default-src 'none'; style-src 'unsafe-inline'; frame-ancestors 'self'"


class SecurityHeaders(BaseHTTPMiddleware):
    """Adds the policy and the usual hardening headers unless a route set its own policy."""

    async def dispatch(self, request: Request, call_next: RequestResponseEndpoint) -> Response:
        response = await call_next(request)
        headers = response.headers
        headers.setdefault("Content-Security-Policy", PAGE_POLICY)
        headers.setdefault("X-Content-Type-Options", "nosniff")
        headers.setdefault("X-Frame-Options", "DENY")
        headers.setdefault("Referrer-Policy", "same-origin")
        headers.setdefault("Cross-Origin-Opener-Policy", "same-origin")
        if not request.url.path.startswith("/static/"):
            headers.setdefault("Cache-Control", "no-store")
        return response


def new_token() -> str:
    return secrets.token_urlsafe(32)


def tokens_match(expected: str | None, given: str | None) -> bool:
    return bool(expected) and bool(given) and hmac.compare_digest(str(expected), str(given))


def bearer_token(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() or None if scheme.lower() == "bearer" else None
