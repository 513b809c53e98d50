"""The JSON API's request and response bodies (pydantic at the HTTP boundary; the OpenAPI
schema is generated from these)."""

from __future__ import annotations

import math
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from oversight.review.estimates import BatchStatus
from oversight.stats.estimate import RateEstimate
from oversight.store.accounts import AuditEntry, TokenInfo, UserInfo
from oversight.store.browse import (
    LabelView,
    ListedTranscript,
    QueueView,
    TranscriptDetail,
    VerdictView,
)
from oversight.store.claims import LabelWritten, QueueEntry, QueueStatus
from oversight.web.cache import MonitorSummary

MAX_NOTE = 4000


def _finite(value: float | None) -> float | None:
    return None if value is None or not math.isfinite(value) else value


class Out(BaseModel):
    model_config = ConfigDict(from_attributes=True)


class UserOut(Out):
    name: str
    role: str
    active: bool
    created_at: datetime

    @classmethod
    def of(cls, u: UserInfo) -> UserOut:
        return cls(name=u.name, role=u.role, active=u.active, created_at=u.created_at)


class EstimateOut(Out):
    rate: float
    ci_low: float
    ci_high: float
    n_labelled: int
    n_total: int
    method: str
    confidence: float

    @classmethod
    def of(cls, e: RateEstimate | None) -> EstimateOut | None:
        if e is None:
            return None
        return cls(rate=e.rate, ci_low=e.ci_low, ci_high=e.ci_high, n_labelled=e.n_labelled, n_total=e.n_total, method=e.method, confidence=e.confidence)


class BatchOut(Out):
    batch_id: str
    policy: str
    created_at: datetime
    items: int
    labelled: int
    used: bool = Field(description="whether the estimate uses this batch (it must be fully labelled)")
    reason: str | None

    @classmethod
    def of(cls, b: BatchStatus) -> BatchOut:
        return cls(**{k: getattr(b, k) for k in cls.model_fields})


class MonitorOut(Out):
    monitor: str
    version: str
    latest: bool = Field(description="whether this is the monitor's latest version (the one the queue and lists use)")
    n_verdicts: int
    n_scored: int
    n_errors: int
    n_flagged: int = Field(description="verdicts labelled 1 (fault) by the monitor itself")
    flagged_rate: float | None
    mean_score: float | None
    n_labelled: int = Field(description="scored transcripts with a human label")
    n_faults_labelled: int
    estimate: EstimateOut | None
    estimate_error: str | None
    estimate_updating: bool = Field(description="a newer estimate (with the latest labels) is being computed; ask again shortly")
    batches: list[BatchOut] = Field(description="the monitor's review-queue batches, oldest first")
    notes: list[str]

    @classmethod
    def of(cls, s: MonitorSummary) -> MonitorOut:
        c = s.counts
        return cls(
            monitor=c.monitor, version=c.version, latest=s.latest, n_verdicts=c.n_verdicts, n_scored=c.n_scored,
            n_errors=c.n_errors, n_flagged=c.n_flagged, flagged_rate=c.flagged_rate, mean_score=c.mean_score,
            n_labelled=s.n_labelled, n_faults_labelled=s.n_faults_labelled, estimate=EstimateOut.of(s.estimate),
            estimate_error=s.estimate_error, estimate_updating=s.updating, batches=[BatchOut.of(b) for b in s.batches], notes=list(s.notes),
        )


class LabelOut(Out):
    id: int
    label: int
    reviewer: str
    note: str | None
    created_at: datetime
    inclusion_probability: float | None
    queue_policy: str | None
    queue_batch: str | None

    @classmethod
    def of(cls, v: LabelView) -> LabelOut:
        return cls(**{k: getattr(v, k) for k in cls.model_fields})


class RecentLabelOut(LabelOut):
    transcript_id: int


class DashboardOut(Out):
    transcripts: int
    labels: int
    labelled_transcripts: int
    monitors: list[MonitorOut]
    recent_labels: list[RecentLabelOut]


class CalibrationBinOut(Out):
    low: float
    high: float
    n: int
    mean_score: float
    fault_rate: float
    rate_low: float
    rate_high: float


class CalibrationOut(Out):
    monitor: str
    version: str
    n_labelled: int
    auroc: float | None
    auroc_low: float | None
    auroc_high: float | None
    ece: float | None
    bins: list[CalibrationBinOut]


class VerdictOut(Out):
    monitor: str
    version: str
    score: float | None
    label: str | None
    evidence: str | None
    evidence_message: int | None
    evidence_start: int | None
    evidence_end: int | None
    error: str | None
    created_at: datetime

    @classmethod
    def of(cls, v: VerdictView) -> VerdictOut:
        return cls(**{k: getattr(v, k) for k in cls.model_fields})


class MessageOut(Out):
    role: str
    content: str


class QueueViewOut(Out):
    id: int
    transcript_id: int
    monitor: str | None
    policy: str
    batch_id: str
    inclusion_probability: float
    lock_owner: str | None
    lock_expires_at: datetime | None
    labelled_at: datetime | None

    @classmethod
    def of(cls, v: QueueView | QueueEntry) -> QueueViewOut:
        return cls(**{k: getattr(v, k) for k in cls.model_fields})


class TranscriptOut(Out):
    id: int
    messages: list[MessageOut]
    source: str | None
    model: str | None
    task: str | None
    external_id: str | None
    created_at: datetime
    imported_at: datetime
    metadata: dict[str, Any]
    verdicts: list[VerdictOut]
    labels: list[LabelOut] = Field(description="oldest first; the last one is the label that counts")
    queue_items: list[QueueViewOut]

    @classmethod
    def of(cls, d: TranscriptDetail) -> TranscriptOut:
        return cls(
            id=d.id, messages=[MessageOut(**m) for m in d.messages], source=d.source, model=d.model, task=d.task,
            external_id=d.external_id, created_at=d.created_at, imported_at=d.imported_at, metadata=d.metadata,
            verdicts=[VerdictOut.of(v) for v in d.verdicts], labels=[LabelOut.of(v) for v in d.labels],
            queue_items=[QueueViewOut.of(q) for q in d.queue_items],
        )


class ListedTranscriptOut(Out):
    id: int
    created_at: datetime
    source: str | None
    model: str | None
    task: str | None
    n_messages: int
    preview: str
    scores: dict[str, float | None]
    label: int | None
    labelled_by: str | None

    @classmethod
    def of(cls, t: ListedTranscript) -> ListedTranscriptOut:
        return cls(**{k: getattr(t, k) for k in cls.model_fields})


class TranscriptPageOut(Out):
    items: list[ListedTranscriptOut]
    next_cursor: str | None = Field(description="pass as ?cursor= for the next page; null on the last page")


class PolicyOut(Out):
    name: str
    design: str
    summary: str
    available: bool
    reason: str | None
    note: str | None


class ClaimIn(BaseModel):
    monitor: str
    policy: str


class QueueStatusOut(Out):
    open: int
    locked: int
    labelled: int
    skipped_by_me: int
    batches: int

    @classmethod
    def of(cls, s: QueueStatus) -> QueueStatusOut:
        return cls(**{k: getattr(s, k) for k in cls.model_fields})


class QueueItemOut(Out):
    item: QueueViewOut
    transcript: TranscriptOut
    status: QueueStatusOut
    estimate: EstimateOut | None
    monitor: MonitorOut | None = Field(description="the queue's monitor: counts, estimate and batch progress")


class ClaimOut(Out):
    item: QueueItemOut | None = Field(description="null when the queue has nothing left for you")


class LabelIn(BaseModel):
    label: Literal[0, 1] = Field(description="1 = fault, 0 = fine")
    note: str | None = Field(None, max_length=MAX_NOTE)


class LabelWrittenOut(Out):
    label_id: int
    transcript_id: int
    label: int
    reviewer: str
    created_at: datetime
    inclusion_probability: float | None
    queue_policy: str | None
    queue_batch: str | None

    @classmethod
    def of(cls, w: LabelWritten) -> LabelWrittenOut:
        return cls(**{k: getattr(w, k) for k in cls.model_fields})


class LabelResultOut(Out):
    label: LabelWrittenOut
    estimate: EstimateOut | None = Field(description="the monitor's fault-rate estimate now (a batch enters it once fully labelled)")
    monitor: MonitorOut | None = None


class RunMetricOut(Out):
    task: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int


class RunOut(Out):
    name: str
    model: str | None
    tasks: list[str]
    created: str | None
    finished: bool
    metrics: list[RunMetricOut]
    error: str | None


class ComparisonOut(Out):
    task: str
    metric: str
    higher_is_better: bool
    mean_a: float | None
    mean_b: float | None
    diff: float | None
    ci_low: float | None
    ci_high: float | None
    p_value: float | None
    n: int
    n_only_a: int
    n_only_b: int
    same_task_hash: bool


class UserIn(BaseModel):
    name: str = Field(min_length=1, max_length=64)
    password: str = Field(min_length=1, max_length=1024)
    role: Literal["admin", "reviewer", "viewer"]


class RoleIn(BaseModel):
    role: Literal["admin", "reviewer", "viewer"]


class TokenIn(BaseModel):
    name: str = Field("api", min_length=1, max_length=255)
    expires_days: int | None = Field(None, ge=1, le=3650)


class TokenOut(Out):
    id: int
    user: str
    name: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    last_used_at: datetime | None
    revoked_at: datetime | None

    @classmethod
    def of(cls, t: TokenInfo) -> TokenOut:
        return cls(**{k: getattr(t, k) for k in cls.model_fields})


class NewTokenOut(Out):
    token: str = Field(description="the secret, shown once")
    info: TokenOut


class AuditOut(Out):
    id: int
    created_at: datetime
    actor: str | None
    action: str
    target: str | None
    details: dict[str, Any]

    @classmethod
    def of(cls, e: AuditEntry) -> AuditOut:
        return cls(**{k: getattr(e, k) for k in cls.model_fields})


def finite(value: float | None) -> float | None:
    return _finite(value)
