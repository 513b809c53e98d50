"""The pages reviewers and readers use: dashboard, transcripts, one transcript, the queue.

Server-rendered HTML; forms post back here and are answered with a redirect (post, redirect,
get), so reloading a page never repeats a label. The only script is ``static/app.js``:
keyboard shortcuts and the dashboard's live refresh, both optional.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response

from oversight.errors import SpecError
from oversight.store import browse, claims
from oversight.web import reviewing, views
from oversight.web.auth import Principal, requires
from oversight.web.context import AppContext, context, render
from oversight.web.highlight import highlighted_messages
from oversight.web.models import MAX_NOTE, TranscriptOut
from oversight.web.security import SVG_POLICY

router = APIRouter(include_in_schema=False)
Ctx = Annotated[AppContext, Depends(context)]
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Reviewer = Annotated[Principal, Depends(requires("reviewer"))]


def page(ctx: AppContext, request: Request, template: str, status_code: int = 200, **values: object) -> HTMLResponse:
    return HTMLResponse(render(ctx, template, request, **values), status_code=status_code)


def see_other(url: str) -> RedirectResponse:
    return RedirectResponse(url, status_code=303)


@router.get("/")
def dashboard_page(request: Request, ctx: Ctx, _: Viewer) -> HTMLResponse:
    data = views.dashboard(ctx)
    return page(ctx, request, "dashboard.html", data=data, plot_version=f"{data.labels}")


@router.get("/plots/calibration/{monitor}.svg")
def calibration_plot(ctx: Ctx, _: Viewer, monitor: str, version: str | None = None) -> Response:
    svg = views.calibration(ctx, monitor, version)[1]
    return Response(svg, media_type="image/svg+xml", headers={"Content-Security-Policy": SVG_POLICY, "Cache-Control": "private, max-age=3600"})


@router.get("/transcripts")
def transcripts_page(
    request: Request,
    ctx: Ctx,
    _: Viewer,
    source: str | None = None,
    model: str | None = None,
    task: str | None = None,
    monitor: str | None = None,
    score_min: Annotated[str | None, Query()] = None,
    score_max: Annotated[str | None, Query()] = None,
    label: str | None = None,
    q: str | None = None,
    sort: str | None = None,
    cursor: str | None = None,
) -> HTMLResponse:
    filters = {"source": source or "", "model": model or "", "task": task or "", "monitor": monitor or "", "score_min": score_min or "",
               "score_max": score_max or "", "label": label or "", "q": q or "", "sort": sort or ""}
    error = None
    listing = None
    try:
        query = views.transcript_query(
            ctx, source=source, model=model, task=task, monitor=monitor, score_min=_number(score_min, "score_min"),
            score_max=_number(score_max, "score_max"), label=label, q=q, sort=sort,
        )
        listing = browse.list_transcripts(ctx.store, query, versions=ctx.cache.versions(), cursor=cursor)
    except SpecError as e:
        error = str(e)
    filter_params = {k: v for k, v in filters.items() if v}
    next_params = {**filter_params, "cursor": listing.next_cursor} if listing is not None and listing.next_cursor else None
    return page(
        ctx, request, "transcripts.html", status_code=400 if error else 200, filters=filters, listing=listing, error=error,
        facets=ctx.cache.facets(), versions=ctx.cache.versions(), label_filters=browse.LABEL_FILTERS,
        filter_params=filter_params, next_params=next_params, total=ctx.cache.transcript_count(),
        first_page=cursor is None,
    )


def _number(raw: str | None, name: str) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        return float(raw)
    except ValueError:
        raise SpecError(f"{name} must be a number between 0 and 1, got {raw[:40]!r}") from None


@router.get("/transcripts/{transcript_id}")
def transcript_page(request: Request, ctx: Ctx, principal: Viewer, transcript_id: int) -> HTMLResponse:
    detail = browse.transcript_detail(ctx.store, transcript_id)
    if detail is None:
        raise LookupError(f"no transcript {transcript_id}")
    data = TranscriptOut.of(detail)
    return page(
        ctx, request, "transcript.html", t=data, messages=highlighted_messages(detail.messages, detail.verdicts),
        can_label=principal.user.can("reviewer"), versions=ctx.cache.versions(),
    )


@router.post("/transcripts/{transcript_id}/label")
def relabel_form(
    ctx: Ctx, principal: Reviewer, transcript_id: int, label: Annotated[int, Form()], note: Annotated[str, Form(max_length=MAX_NOTE)] = ""
) -> RedirectResponse:
    claims.relabel(ctx.store, transcript_id, principal.user.name, label, note)
    return see_other(f"/transcripts/{transcript_id}#labels")


# -- the review queue -------------------------------------------------------------------------


@router.get("/queue")
def queue_page(
    request: Request, ctx: Ctx, principal: Reviewer, monitor: str | None = None, policy: str | None = None, empty: int = 0
) -> HTMLResponse:
    versions = ctx.cache.versions()
    chosen_monitor = monitor if monitor in versions else next(iter(versions), None)
    status = None
    if chosen_monitor and policy:
        try:
            _, policy = reviewing.check_queue(ctx, chosen_monitor, policy)
            status = claims.status(ctx.store, chosen_monitor, policy, principal.user.name)
        except SpecError:
            policy = None
    estimate = views.monitor_estimate(ctx, chosen_monitor) if chosen_monitor else None
    return page(
        ctx, request, "queue.html", versions=versions, monitor=chosen_monitor, policy=policy or "active",
        choices=reviewing.policy_choices(), status=status, estimate=estimate, empty=bool(empty),
    )


@router.post("/queue/next")
def queue_next(ctx: Ctx, principal: Reviewer, monitor: Annotated[str, Form()], policy: Annotated[str, Form()]) -> RedirectResponse:
    return _next_item(ctx, principal, monitor, policy)


def _next_item(ctx: AppContext, principal: Principal, monitor: str, policy: str, labelled: int | None = None) -> RedirectResponse:
    entry = reviewing.claim(ctx, principal.user.name, monitor, policy)
    if entry is None:
        return see_other(f"/queue?monitor={_q(monitor)}&policy={_q(policy)}&empty=1")
    return see_other(f"/queue/items/{entry.id}" + (f"?labelled={labelled}" if labelled else ""))


@router.get("/queue/items/{item_id}")
def queue_item_page(request: Request, ctx: Ctx, principal: Reviewer, item_id: int, labelled: int | None = None) -> HTMLResponse:
    entry = claims.get_entry(ctx.store, item_id)
    if entry is None:
        raise LookupError(f"no queue item {item_id}")
    data = views.queue_item(ctx, entry, principal.user.name)
    detail = browse.transcript_detail(ctx.store, entry.transcript_id)
    assert detail is not None
    return page(
        ctx, request, "queue_item.html", entry=entry, data=data, mine=claims.holds(entry, principal.user.name),
        messages=highlighted_messages(detail.messages, detail.verdicts), labelled=labelled, versions=ctx.cache.versions(),
    )


@router.post("/queue/items/{item_id}/label")
def label_form(
    ctx: Ctx,
    principal: Reviewer,
    item_id: int,
    label: Annotated[int, Form()],
    note: Annotated[str, Form(max_length=MAX_NOTE)] = "",
) -> RedirectResponse:
    claims.submit_label(ctx.store, item_id, principal.user.name, label, note)
    entry = claims.get_entry(ctx.store, item_id)
    assert entry is not None
    return _next_item(ctx, principal, entry.monitor or "", entry.policy, labelled=entry.transcript_id)


@router.post("/queue/items/{item_id}/skip")
def skip_form(ctx: Ctx, principal: Reviewer, item_id: int) -> RedirectResponse:
    entry = claims.get_entry(ctx.store, item_id)
    if entry is None:
        raise LookupError(f"no queue item {item_id}")
    claims.skip(ctx.store, item_id, principal.user.name)
    return _next_item(ctx, principal, entry.monitor or "", entry.policy)


def _q(value: str) -> str:
    from urllib.parse import quote

    return quote(value, safe="")
