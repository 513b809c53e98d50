"""Files that leave and enter the review queue: queue exports out, human labels in.

A queue export (JSONL or CSV) lists a :class:`~oversight.review.queue.Selection` one item per
row, with how it was chosen (``policy``, ``design``, ``inclusion_probability``, ``batch_id``,
``stratum``), any transcript columns the caller adds, and empty ``label``, ``reviewer`` and
``note`` columns. A reviewer can fill those in and hand the same file back: a label file is
any JSONL/CSV with ``transcript_id`` (or ``id``) and ``label``, and optionally ``reviewer``,
``note``, ``inclusion_probability``, ``batch_id``, ``policy`` and ``design``; other columns
are ignored. Carrying π through the file is what lets the estimates weight each label by
the design that chose it.

Labels are 1 for a fault (what the monitor looks for is there) and 0 for fine; files may
also say ``fault``/``fine`` or ``true``/``false``. Rows whose label is empty are items not
reviewed yet and are skipped. Reading streams the file, and every problem is a DataError
naming the file, the 1-based line where the record starts, and the field.
"""

from __future__ import annotations

import csv
import json
import os
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, ValidationError, field_validator

from oversight.errors import DataError, SpecError
from oversight.review.queue import Selection
from oversight.rowfiles import csv_records, jsonl_records

FileFormat = Literal["jsonl", "csv"]
SUFFIXES: Mapping[str, FileFormat] = {".jsonl": "jsonl", ".ndjson": "jsonl", ".csv": "csv"}

#: Columns of a queue export, in order; the caller's transcript columns follow them.
QUEUE_COLUMNS = (
    "transcript_id",
    "position",
    "policy",
    "design",
    "inclusion_probability",
    "batch_id",
    "stratum",
    "label",
    "reviewer",
    "note",
)

_TRUE = {"1", "fault", "true"}
_FALSE = {"0", "fine", "false"}
LABEL_HELP = "label must be 1/fault/true or 0/fine/false"


def file_format(path: Path, fmt: str | None = None) -> FileFormat:
    """The format named by ``fmt``, else the one the file's suffix implies."""
    if fmt is not None:
        key = fmt.strip().lower()
        if key not in ("jsonl", "csv"):
            raise SpecError(f"unknown label file format {fmt!r}; accepted: jsonl, csv")
        return "jsonl" if key == "jsonl" else "csv"
    suffix = path.suffix.lower()
    if suffix not in SUFFIXES:
        raise SpecError(
            f"{path}: cannot tell the format from the extension {suffix or '(none)'!r}; "
            f"use one of {', '.join(SUFFIXES)} or name the format (jsonl, csv)"
        )
    return SUFFIXES[suffix]


# --------------------------------------------------------------------------- queue export


def queue_rows(
    selection: Selection, extra: Mapping[int, Mapping[str, Any]] | None = None
) -> list[dict[str, Any]]:
    """One dict per chosen item, :data:`QUEUE_COLUMNS` first, then the item's ``extra``."""
    extra = extra or {}
    rows = []
    for item in selection.items:
        row: dict[str, Any] = {
            "transcript_id": item.id,
            "position": item.position,
            "policy": selection.policy,
            "design": selection.design,
            "inclusion_probability": item.inclusion_probability,
            "batch_id": selection.batch_id,
            "stratum": item.stratum,
            "label": None,
            "reviewer": None,
            "note": None,
        }
        for key, value in extra.get(item.id, {}).items():
            if key in row:
                raise ValueError(f"extra column {key!r} clashes with a queue column")
            row[key] = value
        rows.append(row)
    return rows


def write_queue(
    selection: Selection,
    path: str | Path,
    *,
    fmt: str | None = None,
    extra: Mapping[int, Mapping[str, Any]] | None = None,
) -> Path:
    """Write a queue export; ``extra`` maps a transcript id to its text columns.

    The file is written next to its destination and renamed into place, so a reader never
    sees half an export.
    """
    path = Path(path)
    kind = file_format(path, fmt)
    rows = queue_rows(selection, extra)
    tmp = path.with_name(path.name + ".tmp")
    with tmp.open("w", encoding="utf-8", newline="") as f:
        if kind == "jsonl":
            for row in rows:
                f.write(json.dumps(row, ensure_ascii=False) + "\n")
        else:
            columns = list(QUEUE_COLUMNS)
            for row in rows:
                columns.extend(k for k in row if k not in columns)
            writer = csv.DictWriter(f, fieldnames=columns)
            writer.writeheader()
            for row in rows:
                writer.writerow({k: "" if v is None else v for k, v in row.items()})
    os.replace(tmp, path)
    return path


# --------------------------------------------------------------------------- label import


@dataclass(frozen=True)
class LabelRecord:
    """One human judgement read from a label file."""

    transcript_id: int
    #: 1 = fault, 0 = fine.
    label: int
    reviewer: str
    note: str | None
    #: π of the design that chose the item, when the file carries it.
    inclusion_probability: float | None
    batch_id: str | None
    policy: str | None
    design: str | None
    #: 1-based line of the file where the record starts.
    line: int


def parse_label(value: object) -> int:
    """1 for fault, 0 for fine, from 0/1, fault/fine, true/false (any case)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str):
        key = value.strip().lower()
        if key in _TRUE:
            return 1
        if key in _FALSE:
            return 0
    raise ValueError(f"{LABEL_HELP}; got {value!r}")


class _LabelRow(BaseModel):
    """The boundary check of one row; converted to a :class:`LabelRecord` at once."""

    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    transcript_id: int = Field(validation_alias=AliasChoices("transcript_id", "id"), ge=0)
    label: int
    reviewer: str = Field(min_length=1, max_length=255)
    note: str | None = None
    inclusion_probability: float | None = Field(default=None, gt=0, le=1)
    batch_id: str | None = Field(default=None, max_length=64)
    policy: str | None = Field(default=None, max_length=255)
    design: str | None = Field(default=None, max_length=64)

    @field_validator("label", mode="before")
    @classmethod
    def _label(cls, value: object) -> int:
        return parse_label(value)


def iter_labels(
    path: str | Path, *, fmt: str | None = None, reviewer: str | None = None
) -> Iterator[LabelRecord]:
    """Stream the labels of a JSONL/CSV file; ``reviewer`` fills rows that name none.

    Rows with an empty label (null or "") are skipped: an export whose review is not finished.
    """
    path = Path(path)
    kind = file_format(path, fmt)
    if not path.is_file():
        raise DataError("no such label file", path=path)
    for line, raw in raw_rows(path, kind):
        record = _record(raw, line, path, reviewer)
        if record is not None:
            yield record


def read_labels(
    path: str | Path, *, fmt: str | None = None, reviewer: str | None = None
) -> list[LabelRecord]:
    """All labels of a file (see :func:`iter_labels`)."""
    return list(iter_labels(path, fmt=fmt, reviewer=reviewer))


@dataclass(frozen=True)
class QueueRow:
    """One item of a queue export, as the interactive labeller walks it."""

    transcript_id: int
    inclusion_probability: float | None
    batch_id: str | None
    policy: str | None
    line: int


class _QueueRowModel(BaseModel):
    model_config = ConfigDict(extra="ignore", str_strip_whitespace=True)

    transcript_id: int = Field(validation_alias=AliasChoices("transcript_id", "id"), ge=0)
    inclusion_probability: float | None = Field(default=None, gt=0, le=1)
    batch_id: str | None = Field(default=None, max_length=64)
    policy: str | None = Field(default=None, max_length=255)


def iter_queue_rows(path: str | Path, *, fmt: str | None = None) -> Iterator[QueueRow]:
    """The items of a queue export (JSONL/CSV) in file order, labelled or not."""
    path = Path(path)
    kind = file_format(path, fmt)
    if not path.is_file():
        raise DataError("no such queue file", path=path)
    rows = jsonl_records(path) if kind == "jsonl" else csv_records(path, required=(("transcript_id", "id"),))
    for line, raw in rows:
        data = {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in raw.items()}
        try:
            row = _QueueRowModel.model_validate(data)
        except ValidationError as e:
            raise _data_error(e, path, line) from None
        yield QueueRow(line=line, **row.model_dump())


def raw_rows(path: Path, kind: FileFormat) -> Iterator[tuple[int, dict[str, Any]]]:
    """Every row of a label file as read, labelled or not, with its line."""
    if kind == "jsonl":
        return jsonl_records(path)
    return csv_records(path, required=("label", ("transcript_id", "id")))


def _record(raw: dict[str, Any], line: int, path: Path, reviewer: str | None) -> LabelRecord | None:
    data = {k: (None if isinstance(v, str) and not v.strip() else v) for k, v in raw.items()}
    if "label" not in data:
        raise DataError(
            "no label (write null for an item not reviewed yet)",
            path=path,
            line=line,
            field="label",
        )
    if data["label"] is None:
        return None
    if data.get("reviewer") is None and reviewer is not None:
        data["reviewer"] = reviewer
    if data.get("reviewer") is None:
        raise DataError(
            "no reviewer: add a reviewer column or pass the reviewer's name",
            path=path,
            line=line,
            field="reviewer",
        )
    try:
        row = _LabelRow.model_validate(data)
    except ValidationError as e:
        raise _data_error(e, path, line) from None
    return LabelRecord(line=line, **row.model_dump())


def _data_error(e: ValidationError, path: Path, line: int) -> DataError:
    """The first problem pydantic found, as a DataError naming file, line and field."""
    err = e.errors()[0]
    field = ".".join(str(p) for p in err["loc"]) or None
    return DataError(str(err["msg"]).removeprefix("Value error, "), path=path, line=line, field=field)
