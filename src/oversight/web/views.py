"""What the pages and the JSON API both show, built once: the API returns these models and
the pages render them, so the two can never disagree."""

from __future__ import annotations

import math

from sqlalchemy import select

from oversight.errors import SpecError
from oversight.store import browse, claims, schema
from oversight.store.browse import LabelFilter, Sort, TranscriptQuery
from oversight.store.claims import QueueEntry
from oversight.web.context import AppContext
from oversight.web.models import (
    CalibrationBinOut,
    CalibrationOut,
    DashboardOut,
    MonitorOut,
    QueueItemOut,
    QueueStatusOut,
    QueueViewOut,
    RecentLabelOut,
    TranscriptOut,
)

RECENT_LABELS = 12


def dashboard(ctx: AppContext) -> DashboardOut:
    summaries = ctx.cache.summaries()
    labels = ctx.cache.labels()
    L = schema.Label
    with ctx.store.engine.connect() as conn:
        recent = conn.execute(select(L.__table__).order_by(L.id.desc()).limit(RECENT_LABELS)).mappings().all()
    return DashboardOut(
        transcripts=ctx.cache.transcript_count(),
        labels=labels.token[0],
        labelled_transcripts=len(labels),
        monitors=[MonitorOut.of(s) for s in summaries],
        recent_labels=[RecentLabelOut(**{k: r[k] for k in RecentLabelOut.model_fields}) for r in recent],
    )


def monitor_estimate(ctx: AppContext, monitor: str, version: str | None = None) -> MonitorOut:
    version = version or ctx.cache.versions().get(monitor)
    summary = ctx.cache.summary(monitor, version) if version else None
    if summary is None:
        raise SpecError(f"no verdicts from monitor {monitor!r}" + (f" version {version!r}" if version else ""))
    return MonitorOut.of(summary)


def calibration(ctx: AppContext, monitor: str, version: str | None = None) -> tuple[CalibrationOut, str]:
    """The calibration figures and the SVG plot."""
    version = version or ctx.cache.versions().get(monitor)
    if version is None:
        raise SpecError(f"no verdicts from monitor {monitor!r}")
    cal = ctx.cache.calibration(monitor, version)
    q = cal.quality

    def finite(x: float | None) -> float | None:
        return None if x is None or not math.isfinite(x) else x

    out = CalibrationOut(
        monitor=monitor,
        version=version,
        n_labelled=cal.n_labelled,
        auroc=finite(q.auroc.value) if q else None,
        auroc_low=finite(q.auroc.low) if q else None,
        auroc_high=finite(q.auroc.high) if q else None,
        ece=finite(q.ece) if q else None,
        bins=[CalibrationBinOut(**{k: getattr(b, k) for k in CalibrationBinOut.model_fields}) for b in (q.calibration if q else ())],
    )
    return out, cal.svg


def transcript_query(
    ctx: AppContext,
    *,
    source: str | None = None,
    model: str | None = None,
    task: str | None = None,
    monitor: str | None = None,
    score_min: float | None = None,
    score_max: float | None = None,
    label: str | None = None,
    q: str | None = None,
    sort: str | None = None,
) -> TranscriptQuery:
    """A checked query from request parameters (empty strings mean "no filter")."""
    monitor = monitor or None
    version = ctx.cache.versions().get(monitor) if monitor else None
    if monitor and version is None:
        raise SpecError(f"no verdicts from monitor {monitor!r}")
    if label and label not in browse.LABEL_FILTERS:
        raise SpecError(f"unknown label filter {label!r}; accepted: {', '.join(browse.LABEL_FILTERS)}")
    chosen_sort = sort or ("score" if monitor and (score_min is not None or score_max is not None) else "newest")
    if chosen_sort not in ("newest", "score"):
        raise SpecError(f"unknown sort {sort!r}; accepted: newest, score")
    query = TranscriptQuery(
        source=source or None, model=model or None, task=task or None, monitor=monitor, version=version,
        score_min=score_min, score_max=score_max, label=_label(label), search=q or None, sort=_sort(chosen_sort),
    )
    return query.checked()


def _label(value: str | None) -> LabelFilter | None:
    for f in browse.LABEL_FILTERS:
        if value == f:
            return f
    return None


def _sort(value: str) -> Sort:
    return "score" if value == "score" else "newest"


def transcript(ctx: AppContext, transcript_id: int) -> TranscriptOut:
    detail = browse.transcript_detail(ctx.store, transcript_id)
    if detail is None:
        raise LookupError(f"no transcript {transcript_id}")
    return TranscriptOut.of(detail)


def monitor_now(ctx: AppContext, monitor: str | None) -> MonitorOut | None:
    """The monitor's latest version with its estimate, or None (no such monitor)."""
    version = ctx.cache.versions().get(monitor) if monitor else None
    summary = ctx.cache.summary(monitor, version) if monitor and version else None
    return MonitorOut.of(summary) if summary else None


def queue_item(ctx: AppContext, entry: QueueEntry, reviewer: str) -> QueueItemOut:
    detail = transcript(ctx, entry.transcript_id)
    monitor = monitor_now(ctx, entry.monitor)
    status = claims.status(ctx.store, entry.monitor or "", entry.policy, reviewer)
    return QueueItemOut(
        item=QueueViewOut.of(entry), transcript=detail, status=QueueStatusOut.of(status),
        estimate=monitor.estimate if monitor else None, monitor=monitor,
    )
