"""JSONL and CSV files read record by record, each record with the line it starts on.

Label files, labelled evaluation sets and scorer evaluations are written by people and
tools we do not control, so every problem is a :class:`~oversight.errors.DataError` naming
the file and the 1-based line where the bad record starts (a quoted CSV field may span
lines). Files are read as bytes and decoded a line at a time, so a stray Latin-1 byte is
reported at its own line rather than somewhere in a decoded block; ``.gz`` files are read
through gzip. Nothing is held in memory beyond one record.
"""

from __future__ import annotations

import csv
import gzip
import json
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import IO, Any

from oversight.errors import DataError

#: A required CSV column, or a tuple of names any one of which will do.
Column = str | tuple[str, ...]


def text_lines(path: Path) -> Iterator[str]:
    """The file's lines as text (UTF-8, a BOM on the first line dropped)."""
    try:
        # Closed by the ``with`` below; opened first so an unreadable file fails here.
        raw: IO[bytes] = gzip.open(path, "rb") if path.suffix == ".gz" else path.open("rb")  # type: ignore[assignment]  # noqa: SIM115
    except OSError as e:
        raise DataError(f"cannot read the file: {e.strerror or e}", path=path) from None
    with raw:
        line = 0
        try:
            for line, data in enumerate(raw, start=1):
                try:
                    yield data.decode("utf-8-sig" if line == 1 else "utf-8")
                except UnicodeDecodeError:
                    raise DataError("not UTF-8 text", path=path, line=line) from None
        except (OSError, EOFError) as e:  # a truncated or corrupt .gz
            raise DataError(f"cannot read the file: {e}", path=path, line=line + 1) from None


def first_line(path: Path) -> str:
    """The first non-blank line, or "" for an empty file."""
    return next((text for text in text_lines(path) if text.strip()), "")


def jsonl_records(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """``(line, object)`` for each non-blank line; anything but a JSON object is an error."""
    for line, text in enumerate(text_lines(path), start=1):
        if not text.strip():
            continue
        try:
            value = json.loads(text)
        except json.JSONDecodeError as e:
            raise DataError(f"invalid JSON: {e.msg}", path=path, line=line) from None
        if not isinstance(value, dict):
            raise DataError("each line must be a JSON object", path=path, line=line)
        yield line, value


def csv_records(path: Path, *, required: Sequence[Column] = ()) -> Iterator[tuple[int, dict[str, str]]]:
    """``(line, row)`` for each non-blank data row, keyed by the (stripped) header names.

    The header must name each ``required`` column (a tuple: one of its names) and no column
    twice; a row with more fields than the header is an error, a shorter one lacks the keys
    of its missing fields.
    """
    reader = csv.reader(text_lines(path))
    header: list[str] | None = None
    start = 1
    try:
        for cells in reader:
            line, start = start, reader.line_num + 1
            if not any(c.strip() for c in cells):
                continue
            if header is None:
                header = _header(cells, path, line, required)
                continue
            if len(cells) > len(header):
                raise DataError(f"{len(cells)} fields but the header names {len(header)}", path=path, line=line)
            yield line, dict(zip(header, cells, strict=False))
    except csv.Error as e:
        raise DataError(f"not valid CSV: {e}", path=path, line=start) from None
    if header is None:
        raise DataError("empty file: expected a header row", path=path, line=1)


def _header(cells: list[str], path: Path, line: int, required: Sequence[Column]) -> list[str]:
    header = [c.strip() for c in cells]
    seen: set[str] = set()
    for name in header:
        if name and name in seen:
            raise DataError(f"column {name!r} appears twice", path=path, line=line, field=name)
        seen.add(name)
    missing = [
        names[0]
        for names in ((c,) if isinstance(c, str) else c for c in required)
        if not seen.intersection(names)
    ]
    if missing:
        raise DataError(
            f"the header has no {missing[0]!r} column (missing columns: {', '.join(missing)})",
            path=path, line=line, field=missing[0],
        )
    return header
