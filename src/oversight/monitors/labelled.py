"""Labelled transcript sets for judging monitors: public human-labelled files and our own JSONL.

Every loader returns transcripts and labels with the monitors' convention,
**1 = what the monitor should flag**:

``openai_moderation``
    OpenAI's moderation eval (``samples-1680.jsonl.gz``): one user message per ``prompt``;
    label 1 when any category key (S, H, V, HR, SH, S3, H2, V2) is 1. A missing key means
    that category was not annotated. ``unknown="negative"`` (the default) reads an item with
    no positive key as 0 even when some keys are missing: that is how the release counts its
    522 positives out of 1,680 and how Llama Guard reports on it, so figures stay comparable.
    ``unknown="drop"`` keeps only items whose label is certain (a positive key, or all eight
    keys present) and says how many it dropped.
``pyrit_refusal``
    PyRIT's refusal-scorer set (``refusal_scorer_eval.csv``): user + assistant message;
    label 1 when ``score_value`` is TRUE (the reply refuses).
``truthfulqa_finetune``
    TruthfulQA's GPT-judge training file (``finetune_truth.jsonl``): the ``Q:`` line becomes
    the user message, the ``A:`` line the assistant reply; label 1 when the human label
    (``completion``) is `` no`` (the answer is not true).
``jsonl``
    Our own format, one object per line: ``{"messages": [{"role", "content"}, …],
    "label": 0 | 1, "id": optional}`` or ``{"prompt", "response", "label"}``.

Errors name the file, the line and the field (:class:`~oversight.errors.DataError`).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from oversight.errors import DataError
from oversight.rowfiles import csv_records, first_line, jsonl_records
from oversight.transcripts import Message, Transcript

Format = Literal["openai_moderation", "pyrit_refusal", "truthfulqa_finetune", "jsonl"]
Unknown = Literal["negative", "drop"]
MODERATION_KEYS = ("S", "H", "V", "HR", "SH", "S3", "H2", "V2")
PYRIT_COLUMNS = ("user_message", "assistant_message", "score_value")


@dataclass(frozen=True)
class LabelledSet:
    """Transcripts with 0/1 labels and what a 1 means there."""

    name: str
    format: Format
    path: str
    #: What label 1 means in this set, in words.
    positive: str
    transcripts: list[Transcript]
    labels: list[int]
    #: Items left out (``unknown="drop"``), with the reason.
    dropped: int = 0
    notes: str = ""
    extra: dict[str, Any] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.labels)


def load_labelled(path: str | Path, *, unknown: Unknown = "negative") -> tuple[list[Transcript], list[int]]:
    """``(transcripts, labels)`` from any supported file (the format is detected)."""
    data = load_labelled_set(path, unknown=unknown)
    return data.transcripts, data.labels


def load_labelled_set(path: str | Path, *, unknown: Unknown = "negative") -> LabelledSet:
    path = Path(path)
    if not path.is_file():
        raise DataError("no such file", path=path)
    fmt = detect_format(path)
    if fmt == "openai_moderation":
        return _moderation(path, unknown)
    if fmt == "pyrit_refusal":
        return _pyrit_refusal(path)
    if fmt == "truthfulqa_finetune":
        return _truthfulqa(path)
    return _generic(path)


def detect_format(path: str | Path) -> Format:
    """Which loader reads ``path``, from its first record."""
    path = Path(path)
    first = first_line(path)
    if not first:
        raise DataError("the file is empty", path=path)
    if first.lstrip().startswith("{"):
        try:
            record = json.loads(first)
        except json.JSONDecodeError as exc:
            raise DataError(f"invalid JSON: {exc.msg}", path=path, line=1) from None
        if not isinstance(record, dict):
            raise DataError("each line must be a JSON object", path=path, line=1)
        if "prompt" in record and any(k in record for k in MODERATION_KEYS):
            return "openai_moderation"
        if "prompt" in record and "completion" in record:
            return "truthfulqa_finetune"
        if "label" in record:
            return "jsonl"
        raise DataError(
            "unrecognised JSONL record; expected the OpenAI moderation eval (prompt + S/H/V/... keys), "
            "TruthfulQA finetune (prompt + completion) or {messages|prompt+response, label}",
            path=path, line=1,
        )
    header = next(csv.reader([first]))
    if set(PYRIT_COLUMNS) <= {h.strip() for h in header}:
        return "pyrit_refusal"
    raise DataError(
        "unrecognised file: not JSONL, and not a CSV with user_message, assistant_message, score_value",
        path=path, line=1,
    )


# --------------------------------------------------------------------- loaders
def _moderation(path: Path, unknown: Unknown) -> LabelledSet:
    transcripts, labels, dropped = [], [], 0
    for line_no, record in jsonl_records(path):
        prompt = _field(record, "prompt", str, path, line_no)
        values = {}
        for key in MODERATION_KEYS:
            if key in record:
                value = record[key]
                if value not in (0, 1) or isinstance(value, bool):
                    raise DataError(f"expected 0 or 1, got {value!r}", path=path, line=line_no, field=key)
                values[key] = int(value)
        positive = any(values.values())
        if unknown == "drop" and not positive and len(values) < len(MODERATION_KEYS):
            dropped += 1
            continue
        categories = sorted(k for k, v in values.items() if v)
        transcripts.append(Transcript(
            id=line_no, messages=(Message("user", prompt),),
            metadata={"source": str(path), "line": line_no, "categories": categories,
                      "missing": sorted(set(MODERATION_KEYS) - set(values))},
        ))
        labels.append(int(positive))
    notes = (
        "a missing category key is read as not flagged" if unknown == "negative"
        else f"{dropped} items with no positive key and some keys missing were dropped"
    )
    return LabelledSet("openai_moderation", "openai_moderation", str(path),
                       "the text violates at least one moderation category (human label)",
                       transcripts, labels, dropped=dropped, notes=notes)


@dataclass(frozen=True)
class PyritRow:
    """One item of a PyRIT true/false scorer evaluation (e.g. ``refusal_scorer_eval.csv``)."""

    line: int
    #: The unnamed first column (PyRIT's row index) when there is one, else the line.
    key: str | int
    user: str
    assistant: str
    #: ``score_value`` TRUE (for the refusal set: the reply refuses).
    label: bool


def iter_pyrit_rows(path: str | Path) -> Iterator[PyritRow]:
    """The items of a PyRIT scorer evaluation CSV (``user_message``, ``assistant_message``,
    ``score_value`` TRUE/FALSE), in file order."""
    path = Path(path)
    for line, row in csv_records(path, required=PYRIT_COLUMNS):
        user = _csv_field(row, "user_message", path, line)
        reply = _csv_field(row, "assistant_message", path, line)
        raw = _csv_field(row, "score_value", path, line).strip().upper()
        if raw not in ("TRUE", "FALSE"):
            raise DataError(f"expected TRUE or FALSE, got {raw!r}", path=path, line=line, field="score_value")
        yield PyritRow(line, (row.get("") or "").strip() or line, user, reply, raw == "TRUE")


def _pyrit_refusal(path: Path) -> LabelledSet:
    transcripts, labels = [], []
    for row in iter_pyrit_rows(path):
        transcripts.append(Transcript(
            id=row.key, messages=(Message("user", row.user), Message("assistant", row.assistant)),
            metadata={"source": str(path), "line": row.line},
        ))
        labels.append(int(row.label))
    return LabelledSet("pyrit_refusal", "pyrit_refusal", str(path),
                       "the assistant's reply is a refusal (human label)", transcripts, labels)


def _truthfulqa(path: Path) -> LabelledSet:
    transcripts, labels = [], []
    for line_no, record in jsonl_records(path):
        prompt = _field(record, "prompt", str, path, line_no)
        completion = _field(record, "completion", str, path, line_no).strip().lower()
        if completion not in ("yes", "no"):
            raise DataError(f"expected ' yes' or ' no', got {completion!r}", path=path, line=line_no, field="completion")
        body = prompt.removesuffix("True:").rstrip("\n")
        question, sep, answer = body.partition("\nA:")
        if not sep or not question.startswith("Q:"):
            raise DataError("expected 'Q: …\\nA: …\\nTrue:'", path=path, line=line_no, field="prompt")
        transcripts.append(Transcript(
            id=line_no,
            messages=(Message("user", question.removeprefix("Q:").strip()), Message("assistant", answer.strip())),
            metadata={"source": str(path), "line": line_no},
        ))
        labels.append(int(completion == "no"))
    return LabelledSet("truthfulqa_finetune", "truthfulqa_finetune", str(path),
                       "the assistant's answer is not true (human label)", transcripts, labels)


def _generic(path: Path) -> LabelledSet:
    transcripts, labels = [], []
    for line_no, record in jsonl_records(path):
        label = record.get("label")
        if label not in (0, 1) or isinstance(label, bool):
            raise DataError(f"expected 0 or 1, got {label!r}", path=path, line=line_no, field="label")
        if "messages" in record:
            raw = record["messages"]
            if not isinstance(raw, list) or not raw:
                raise DataError("expected a non-empty list of {role, content}", path=path, line=line_no, field="messages")
            messages = []
            for k, m in enumerate(raw):
                if not (isinstance(m, dict) and isinstance(m.get("role"), str) and isinstance(m.get("content"), str)):
                    raise DataError("expected {role: str, content: str}", path=path, line=line_no, field=f"messages[{k}]")
                messages.append(Message(m["role"], m["content"]))
        else:
            messages = [Message("user", _field(record, "prompt", str, path, line_no)),
                        Message("assistant", _field(record, "response", str, path, line_no))]
        transcripts.append(Transcript(id=record.get("id", line_no), messages=tuple(messages),
                                      metadata={"source": str(path), "line": line_no}))
        labels.append(int(label))
    return LabelledSet(path.name, "jsonl", str(path), "label 1 as given in the file", transcripts, labels)


# --------------------------------------------------------------------- helpers
def _field(record: dict[str, Any], name: str, kind: type, path: Path, line: int) -> Any:
    if name not in record:
        raise DataError("missing", path=path, line=line, field=name)
    value = record[name]
    if not isinstance(value, kind):
        raise DataError(f"expected {kind.__name__}, got {type(value).__name__}", path=path, line=line, field=name)
    return value


def _csv_field(row: dict[str, str], name: str, path: Path, line: int) -> str:
    value = row.get(name)
    if value is None:
        raise DataError("missing", path=path, line=line, field=name)
    return value
