"""The JSON API under ``/api``: everything the pages show, for scripts.

Authenticate with ``Authorization: Bearer <token>`` (``oversight users token NAME``) or the
session cookie (then state-changing calls need the ``X-CSRF-Token`` header). The schema is at
``/api/openapi.json``. Errors are ``{"detail": "..."}`` with 400 (bad input), 401, 403, 404 or
409 (the queue item is locked by someone else or already labelled; ``reason`` says which).
"""

from __future__ import annotations

from datetime import timedelta
from typing import Annotated

from fastapi import APIRouter, Depends, Query, Response

from oversight.evals.analysis import compare_runs
from oversight.store import accounts, browse, claims
from oversight.web import reviewing, views
from oversight.web.auth import Principal, requires
from oversight.web.context import AppContext, context
from oversight.web.models import (
    AuditOut,
    CalibrationOut,
    ClaimIn,
    ClaimOut,
    ComparisonOut,
    DashboardOut,
    LabelIn,
    LabelResultOut,
    LabelWrittenOut,
    ListedTranscriptOut,
    MonitorOut,
    NewTokenOut,
    PolicyOut,
    QueueItemOut,
    RoleIn,
    RunOut,
    TokenIn,
    TokenOut,
    TranscriptOut,
    TranscriptPageOut,
    UserIn,
    UserOut,
    finite,
)
from oversight.web.runs import list_runs, run_path

router = APIRouter(prefix="/api")
Ctx = Annotated[AppContext, Depends(context)]
Viewer = Annotated[Principal, Depends(requires("viewer"))]
Reviewer = Annotated[Principal, Depends(requires("reviewer"))]
Admin = Annotated[Principal, Depends(requires("admin"))]


@router.get("/me", tags=["account"])
def me(principal: Viewer) -> UserOut:
    return UserOut.of(principal.user)


@router.get("/dashboard", tags=["estimates"])
def dashboard(ctx: Ctx, _: Viewer) -> DashboardOut:
    """Totals, every monitor version's counts and fault-rate estimate, and the latest labels."""
    return views.dashboard(ctx)


@router.get("/monitors", tags=["estimates"])
def monitors(ctx: Ctx, _: Viewer) -> list[MonitorOut]:
    return [MonitorOut.of(s) for s in ctx.cache.summaries()]


@router.get("/monitors/{monitor}/estimate", tags=["estimates"])
def estimate(ctx: Ctx, _: Viewer, monitor: str, version: str | None = None) -> MonitorOut:
    """The fault rate of every transcript the monitor scored, with its confidence interval."""
    return views.monitor_estimate(ctx, monitor, version)


@router.get("/monitors/{monitor}/calibration", tags=["estimates"])
def calibration(ctx: Ctx, _: Viewer, monitor: str, version: str | None = None) -> CalibrationOut:
    """Monitor score against human labels, in score bins (over the labelled transcripts)."""
    return views.calibration(ctx, monitor, version)[0]


@router.get("/transcripts", tags=["transcripts"])
def transcripts(
    ctx: Ctx,
    _: Viewer,
    source: str | None = None,
    model: str | None = None,
    task: str | None = None,
    monitor: str | None = None,
    score_min: Annotated[float | None, Query(ge=0, le=1)] = None,
    score_max: Annotated[float | None, Query(ge=0, le=1)] = None,
    label: Annotated[str | None, Query(description="fault | fine | labelled | unlabelled")] = None,
    q: Annotated[str | None, Query(description='full-text search: words, "phrases", -excluded', max_length=500)] = None,
    sort: Annotated[str | None, Query(description="newest | score (needs monitor)")] = None,
    cursor: str | None = None,
    limit: Annotated[int, Query(ge=1, le=browse.MAX_PAGE)] = 50,
) -> TranscriptPageOut:
    """One page of transcripts, newest first or by a monitor's score; follow ``next_cursor``."""
    query = views.transcript_query(ctx, source=source, model=model, task=task, monitor=monitor, score_min=score_min, score_max=score_max, label=label, q=q, sort=sort)
    page = browse.list_transcripts(ctx.store, query, versions=ctx.cache.versions(), cursor=cursor, limit=limit)
    return TranscriptPageOut(items=[ListedTranscriptOut.of(t) for t in page.items], next_cursor=page.next_cursor)


@router.get("/transcripts/{transcript_id}", tags=["transcripts"])
def transcript(ctx: Ctx, _: Viewer, transcript_id: int) -> TranscriptOut:
    """A transcript with its messages, every verdict, its label history and queue items."""
    return views.transcript(ctx, transcript_id)


@router.post("/transcripts/{transcript_id}/labels", tags=["labels"])
def relabel(ctx: Ctx, principal: Reviewer, transcript_id: int, body: LabelIn) -> LabelResultOut:
    """Correct the label of a transcript labelled before (it keeps the inclusion probability
    of the label it supersedes); a new transcript is labelled through the queue."""
    written = claims.relabel(ctx.store, transcript_id, principal.user.name, body.label, body.note)
    return LabelResultOut(label=LabelWrittenOut.of(written), estimate=None)


@router.get("/queue/policies", tags=["queue"])
def policies(_: Viewer) -> list[PolicyOut]:
    return [
        PolicyOut(name=c.policy.name, design=c.policy.design, summary=c.policy.summary, available=c.available, reason=c.reason, note=c.note)
        for c in reviewing.policy_choices()
    ]


@router.post("/queue/claim", tags=["queue"])
def claim(ctx: Ctx, principal: Reviewer, body: ClaimIn) -> ClaimOut:
    """Your next item of the (monitor, policy) queue, locked to you for a while (the one you
    hold already, if any). ``item`` is null when nothing is left for you."""
    entry = reviewing.claim(ctx, principal.user.name, body.monitor, body.policy)
    return ClaimOut(item=None if entry is None else views.queue_item(ctx, entry, principal.user.name))


@router.get("/queue/items/{item_id}", tags=["queue"])
def queue_item(ctx: Ctx, principal: Viewer, item_id: int) -> QueueItemOut:
    entry = claims.get_entry(ctx.store, item_id)
    if entry is None:
        raise LookupError(f"no queue item {item_id}")
    return views.queue_item(ctx, entry, principal.user.name)


@router.post("/queue/items/{item_id}/label", tags=["queue"])
def label_item(ctx: Ctx, principal: Reviewer, item_id: int, body: LabelIn) -> LabelResultOut:
    """Label an item you hold. Records you, the time and the item's inclusion probability;
    returns the monitor's estimate with the new label."""
    written = claims.submit_label(ctx.store, item_id, principal.user.name, body.label, body.note)
    entry = claims.get_entry(ctx.store, item_id)
    monitor = views.monitor_now(ctx, entry.monitor if entry else None)
    return LabelResultOut(label=LabelWrittenOut.of(written), estimate=monitor.estimate if monitor else None, monitor=monitor)


@router.post("/queue/items/{item_id}/skip", tags=["queue"], status_code=204)
def skip_item(ctx: Ctx, principal: Reviewer, item_id: int) -> Response:
    """Release an item you hold; it is not offered to you again."""
    if claims.get_entry(ctx.store, item_id) is None:
        raise LookupError(f"no queue item {item_id}")
    claims.skip(ctx.store, item_id, principal.user.name)
    return Response(status_code=204)


@router.get("/runs", tags=["runs"])
def runs(ctx: Ctx, _: Viewer) -> list[RunOut]:
    return [RunOut.model_validate(r, from_attributes=True) for r in list_runs(ctx.settings.runs_dir)]


@router.get("/runs/compare", tags=["runs"])
def compare(ctx: Ctx, _: Viewer, a: str, b: str) -> list[ComparisonOut]:
    """Run B against run A, per task and metric, on the items both scored (paired)."""
    rows = compare_runs(run_path(ctx.settings.runs_dir, a), run_path(ctx.settings.runs_dir, b))
    return [
        ComparisonOut(
            task=r.task, metric=r.metric, higher_is_better=r.higher_is_better, mean_a=finite(r.comparison.mean_a),
            mean_b=finite(r.comparison.mean_b), diff=finite(r.comparison.diff), ci_low=finite(r.comparison.ci_low),
            ci_high=finite(r.comparison.ci_high), p_value=finite(r.comparison.p_value), n=r.comparison.n,
            n_only_a=r.n_only_a, n_only_b=r.n_only_b, same_task_hash=r.same_task_hash,
        )
        for r in rows
    ]


@router.get("/users", tags=["admin"])
def users(ctx: Ctx, _: Admin) -> list[UserOut]:
    return [UserOut.of(u) for u in accounts.list_users(ctx.store)]


@router.post("/users", tags=["admin"], status_code=201)
def add_user(ctx: Ctx, principal: Admin, body: UserIn) -> UserOut:
    return UserOut.of(accounts.add_user(ctx.store, body.name, body.password, body.role, actor=principal.user.name))


@router.put("/users/{name}/role", tags=["admin"])
def set_role(ctx: Ctx, principal: Admin, name: str, body: RoleIn) -> UserOut:
    """Change a user's role (audited)."""
    return UserOut.of(accounts.set_role(ctx.store, name, body.role, actor=principal.user.name))


@router.get("/tokens", tags=["account"])
def tokens(ctx: Ctx, principal: Viewer) -> list[TokenOut]:
    return [TokenOut.of(t) for t in accounts.list_tokens(ctx.store, principal.user.name)]


@router.post("/tokens", tags=["account"], status_code=201)
def new_token(ctx: Ctx, principal: Viewer, body: TokenIn) -> NewTokenOut:
    """A new API token acting as you; the secret is in this response only."""
    expires = None if body.expires_days is None else timedelta(days=body.expires_days)
    secret, info = accounts.create_token(ctx.store, principal.user.name, body.name, expires_in=expires, actor=principal.user.name)
    return NewTokenOut(token=secret, info=TokenOut.of(info))


@router.delete("/tokens/{token_id}", tags=["account"], status_code=204)
def revoke_token(ctx: Ctx, principal: Viewer, token_id: int) -> Response:
    owner = None if principal.user.can("admin") else principal.user.name
    accounts.revoke_token(ctx.store, token_id, actor=principal.user.name, owner=owner)
    return Response(status_code=204)


@router.get("/audit", tags=["admin"])
def audit(ctx: Ctx, _: Admin, before_id: int | None = None, action: str | None = None, limit: Annotated[int, Query(ge=1, le=1000)] = 200) -> list[AuditOut]:
    """The audit log, newest first; page with ``before_id`` = the last id you got."""
    return [AuditOut.of(e) for e in accounts.audit_events(ctx.store, limit=limit, before_id=before_id, action=action)]
