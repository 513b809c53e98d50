"""What every route needs: the store, the settings, the aggregate cache and the templates.

One :class:`AppContext` per app, on ``app.state``; nothing lives at module level. Templates are
rendered by a Jinja2 environment with autoescaping on for every template and ``StrictUndefined``
(a typo in a template fails a test instead of rendering an empty string). Model output only
ever reaches a page as escaped text; no filter here marks anything safe.
"""

from __future__ import annotations

import hashlib
import math
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

import jinja2
from fastapi import Request

from oversight.store.db import Store
from oversight.web.cache import StoreCache
from oversight.web.settings import WebSettings

HERE = Path(__file__).parent
STATIC = HERE / "static"


@dataclass
class AppContext:
    store: Store
    settings: WebSettings
    cache: StoreCache
    templates: jinja2.Environment
    #: Content hashes of the static files, appended to their URLs so browsers never run stale JS.
    static_versions: dict[str, str]


def context(request: Request) -> AppContext:
    ctx: AppContext = request.app.state.ctx
    return ctx


def make_templates() -> jinja2.Environment:
    env = jinja2.Environment(
        loader=jinja2.FileSystemLoader(HERE / "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.filters.update(pct=_pct, num=_num, when=_when, score=_score)
    return env


def static_versions() -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()[:10] for p in STATIC.iterdir() if p.is_file()}


def _pct(value: float | None, digits: int = 1) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{100 * value:.{digits}f}%"


def _num(value: float | None, digits: int = 3) -> str:
    return "–" if value is None or (isinstance(value, float) and math.isnan(value)) else f"{value:.{digits}f}"


def _score(value: float | None) -> str:
    return "error" if value is None else f"{value:.2f}"


def _when(value: datetime | None) -> str:
    return "–" if value is None else value.strftime("%Y-%m-%d %H:%M:%S UTC")


def render(ctx: AppContext, template: str, request: Request, **values: Any) -> str:
    """A page, with what the layout needs (the user, the CSRF token, static URLs)."""
    principal = getattr(request.state, "principal", None)
    base = {
        "user": principal.user if principal is not None else None,
        "csrf_token": principal.csrf_token if principal is not None else None,
        "static": lambda name: f"/static/{name}?v={ctx.static_versions.get(name, '0')}",
        "path": request.url.path,
    }
    return ctx.templates.get_template(template).render(**base, **values)
