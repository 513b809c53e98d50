"""Run a monitor over the store: every transcript without a verdict from it gets one.

    with open_store(url) as store:
        report = run_monitor(store, build_monitor("refusal"))

Work is found by an anti-join (transcripts with no verdict for this monitor *and version*),
read in id order and scored in batches; each batch's verdicts commit in one transaction. So a
run that is interrupted loses at most one batch, and running it again scores only what is
left: a second run over a finished store scores nothing. A new monitor version re-scores
everything, since its verdicts are different judgements.

Failures are per transcript (:func:`~oversight.monitors.base.run_safely`): a transcript the
monitor raises on gets a verdict with ``score`` NULL and the ``error`` text, and is not
retried by later runs (delete its verdict to retry it).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass
from typing import Any, cast

from sqlalchemy import Table, exists, func, select

from oversight.monitors.base import Monitor, Verdict, run_safely
from oversight.store import Store, schema

#: Called after each committed batch with (transcripts done in this run, transcripts to do).
RunProgress = Callable[[int, int], None]


@dataclass(frozen=True)
class MonitorRunReport:
    """What one :func:`run_monitor` call did."""

    monitor: str
    version: str
    #: Transcripts given a verdict with a score in this run.
    scored: int
    #: Transcripts given an error verdict in this run (the monitor raised on them).
    errors: int
    #: Transcripts that already had a verdict from this monitor version (not re-scored).
    skipped: int
    seconds: float
    #: Transcripts scored (with or without error) per second of this run.
    per_second: float

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def run_monitor(
    store: Store,
    monitor: Monitor,
    *,
    batch_size: int = 64,
    progress: RunProgress | None = None,
    presets: Mapping[int, Verdict] | None = None,
) -> MonitorRunReport:
    """Score every transcript that has no verdict for ``(monitor.info.name, monitor.info.version)``.

    ``presets`` are verdicts already made for some transcripts (the out-of-fold scores of a
    monitor's own training examples, :mod:`oversight.monitors.store_training`): they are
    stored as they are, first, and those transcripts are not scored again.
    """
    if batch_size < 1:
        raise ValueError(f"batch_size must be >= 1, got {batch_size}")
    name, version = monitor.info.name, monitor.info.version
    started = time.perf_counter()
    T, V = schema.Transcript, schema.Verdict
    scored = errors = done = 0
    if presets:
        rows = [_row(t, name, version, v) for t, v in presets.items()]
        for start in range(0, len(rows), 1000):
            for row in _insert_verdicts(store, rows[start : start + 1000]):
                if row["score"] is None:
                    errors += 1
                else:
                    scored += 1
    has_verdict = exists().where(V.transcript_id == T.id, V.monitor == name, V.monitor_version == version)
    with store.engine.connect() as conn:
        todo = int(conn.execute(select(func.count()).select_from(T).where(~has_verdict)).scalar_one())
        total = int(conn.execute(select(func.count()).select_from(T)).scalar_one())
    skipped = total - todo - scored - errors
    last = 0
    while True:
        stmt = select(T.id).where(T.id > last, ~has_verdict).order_by(T.id).limit(batch_size)
        with store.engine.connect() as conn:
            ids = [int(i) for i in conn.execute(stmt).scalars()]
        if not ids:
            break
        last = ids[-1]
        found = store.get_transcripts(ids)
        batch = [found[i] for i in ids if i in found]  # a row deleted meanwhile is simply gone
        verdicts = run_safely(monitor, batch, chunk_size=batch_size)
        rows = [_row(t.id, name, version, v) for t, v in zip(batch, verdicts, strict=True) if t.id is not None]
        inserted = _insert_verdicts(store, rows)
        for row in inserted:
            if row["score"] is None:
                errors += 1
            else:
                scored += 1
        skipped += len(rows) - len(inserted)  # scored by a concurrent run meanwhile
        done += len(batch)
        if progress is not None:
            progress(done, todo)
    seconds = time.perf_counter() - started
    return MonitorRunReport(
        monitor=name,
        version=version,
        scored=scored,
        errors=errors,
        skipped=skipped,
        seconds=seconds,
        per_second=(scored + errors) / seconds if seconds > 0 else 0.0,
    )


def _row(transcript_id: int, name: str, version: str, v: Verdict) -> dict[str, Any]:
    failed = v.error is not None or v.score is None or math.isnan(v.score)
    span = v.span
    return {
        "transcript_id": transcript_id,
        "monitor": name,
        "monitor_version": version,
        "score": None if failed else float(v.score),
        "label": None if failed else str(v.label),
        "evidence": v.evidence or None,
        "evidence_message": int(span[0]) if span is not None else None,
        "evidence_start": int(span[1]) if span is not None else None,
        "evidence_end": int(span[2]) if span is not None else None,
        "error": (v.error or "monitor returned no score") if failed else None,
        "created_at": schema.utcnow(),
    }


def _insert_verdicts(store: Store, rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Insert in one transaction; rows whose (transcript, monitor, version) is already stored
    (a concurrent run got there first) are left alone. Returns the rows inserted."""
    if not rows:
        return []
    table = cast(Table, schema.Verdict.__table__)
    if store.dialect == "postgresql":
        from sqlalchemy.dialects.postgresql import insert as pg_insert

        stmt: Any = pg_insert(table)
    else:
        from sqlalchemy.dialects.sqlite import insert as sqlite_insert

        stmt = sqlite_insert(table)
    stmt = stmt.on_conflict_do_nothing(index_elements=["transcript_id", "monitor", "monitor_version"])
    stmt = stmt.returning(table.c.transcript_id)
    with store.transaction() as session:
        new = {int(i) for i in session.execute(stmt, rows).scalars()}
    return [r for r in rows if r["transcript_id"] in new]
