"""A subset of the stored transcripts named by their metadata: ``source=…``, ``model=…``,
``task=…``, ``since=…``, ``until=…`` (what ``oversight estimate --where`` takes).

    subset = TranscriptSubset.parse(["model=gpt-x", "since=2026-11-01"])
    ids = subset_ids(store, subset)   # sorted transcript ids in the subset

Clauses combine with AND; ``since`` is inclusive and ``until`` exclusive, both on the time
the conversation happened (``created_at``), as ISO dates or date-times (naive = UTC).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import numpy as np
from numpy.typing import NDArray
from sqlalchemy import select

from oversight.errors import SpecError
from oversight.store import schema
from oversight.store.db import Store
from oversight.store.schema import as_utc

TEXT_KEYS = ("source", "model", "task")
TIME_KEYS = ("since", "until")


@dataclass(frozen=True)
class TranscriptSubset:
    source: str | None = None
    model: str | None = None
    task: str | None = None
    since: datetime | None = None
    until: datetime | None = None

    @classmethod
    def parse(cls, clauses: Sequence[str]) -> TranscriptSubset:
        """``["key=value", …]``; SpecError naming the clause that cannot be read."""
        values: dict[str, Any] = {}
        accepted = ", ".join(TEXT_KEYS + TIME_KEYS)
        for clause in clauses:
            key, sep, value = clause.partition("=")
            key = key.strip()
            if not sep or not value:
                raise SpecError(f"--where {clause!r}: expected key=value with key one of {accepted}")
            if key not in TEXT_KEYS + TIME_KEYS:
                raise SpecError(f"--where {clause!r}: unknown key {key!r}; accepted: {accepted}")
            if key in values:
                raise SpecError(f"--where {clause!r}: {key} is given twice (clauses combine with AND)")
            if key in TIME_KEYS:
                try:
                    values[key] = as_utc(datetime.fromisoformat(value))
                except ValueError:
                    raise SpecError(f"--where {clause!r}: {value!r} is not an ISO date or date-time (e.g. 2026-11-01)") from None
            else:
                values[key] = value
        subset = cls(**values)
        if subset.since is not None and subset.until is not None and subset.since >= subset.until:
            raise SpecError(f"--where: since {subset.since.isoformat()} is not before until {subset.until.isoformat()}")
        return subset

    @property
    def is_everything(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))

    def describe(self) -> str:
        """``model=gpt-x, since=2026-11-01T00:00:00+00:00``; empty for everything."""
        parts = []
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None:
                parts.append(f"{f.name}={value.isoformat() if isinstance(value, datetime) else value}")
        return ", ".join(parts)


def subset_ids(store: Store, subset: TranscriptSubset) -> NDArray[np.int64]:
    """The ids of the transcripts in ``subset``, ascending."""
    T = schema.Transcript
    stmt = select(T.id).order_by(T.id)
    for column, value in ((T.source, subset.source), (T.model, subset.model), (T.task, subset.task)):
        if value is not None:
            stmt = stmt.where(column == value)
    if subset.since is not None:
        stmt = stmt.where(T.created_at >= subset.since)
    if subset.until is not None:
        stmt = stmt.where(T.created_at < subset.until)
    with store.engine.connect() as conn:
        ids = conn.execute(stmt).scalars().all()
    return np.fromiter(ids, dtype=np.int64, count=len(ids))
