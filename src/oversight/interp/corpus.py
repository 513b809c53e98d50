"""Texts to run a model over: from a file a user gives, or from a named built-in set.

Neuron search and steering read plain texts, not tasks. A file is one text per line
(``.txt``), one JSON object per line with a text field (``.jsonl``, ``.jsonl.gz``) or a CSV
with a text column. Built-in sets come either from this project's own generated suites
(always available) or from the public datasets kept outside the repository, read with the
project's own loaders (see :data:`DATASETS`).
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oversight.errors import DataError, SpecError
from oversight.rowfiles import csv_records, jsonl_records, text_lines

#: Fields tried in order when a JSONL or CSV file does not name its text field.
TEXT_FIELDS = ("text", "prompt", "statement", "question", "content", "Behavior")
#: Where the public datasets live when neither ``root`` nor ``OVERSIGHT_SHARED_DATA`` says.
DEFAULT_ROOTS = (Path("shared/data"), Path("../shared/data"))


def read_texts(path: str | Path, *, field: str | None = None, limit: int | None = None) -> list[str]:
    """Texts of a file: ``.txt`` (one per non-blank line), ``.jsonl[.gz]`` or ``.csv``.

    ``field`` names the JSON key or CSV column; without it the first of :data:`TEXT_FIELDS`
    present in the first record is used. Errors name the file, line and field.
    """
    path = Path(path).expanduser()
    if not path.is_file():
        raise DataError("file not found", path=path)
    suffixes = [s.lower() for s in path.suffixes]
    texts: list[str] = []
    if suffixes[-1:] == [".txt"] or not suffixes:
        texts = [line.rstrip("\r\n") for line in text_lines(path) if line.strip()]
    elif ".jsonl" in suffixes:
        texts = _field_texts(jsonl_records(path), path, field, limit)
    elif suffixes[-1] == ".csv":
        texts = _field_texts(csv_records(path), path, field, limit)
    else:
        raise DataError(f"unknown text file type {''.join(suffixes)!r}; use .txt, .jsonl or .csv", path=path)
    if not texts:
        raise DataError("the file holds no texts", path=path)
    return texts[:limit] if limit is not None else texts


def _field_texts(
    records: Iterable[tuple[int, Mapping[str, Any]]], path: Path, field: str | None, limit: int | None
) -> list[str]:
    texts: list[str] = []
    chosen = field
    for line, record in records:
        if chosen is None:
            chosen = next((f for f in TEXT_FIELDS if f in record), None)
            if chosen is None:
                raise DataError(
                    f"no text field; name one (fields: {', '.join(record)}) or use one of {', '.join(TEXT_FIELDS)}",
                    path=path, line=line,
                )
        value = record.get(chosen)
        if not isinstance(value, str):
            raise DataError("missing or not a string", path=path, line=line, field=chosen)
        if value.strip():
            texts.append(value)
        if limit is not None and len(texts) >= limit:
            break
    return texts


@dataclass(frozen=True)
class Dataset:
    """A named built-in text set: what it is and how to read it (under the data root)."""

    name: str
    description: str
    files: tuple[str, ...]  # relative to the data root; empty = generated, needs no files
    load: Callable[[Path], list[str]]


def _safety(_root: Path) -> list[str]:
    from oversight.evals.suites.safety import safety_suite

    return [s.prompt for task in safety_suite(seed=0) for s in task.samples]


def _truthfulqa(root: Path) -> list[str]:
    from oversight.evals.loading import load_task_file

    mc1 = load_task_file(root / "truthfulqa/TruthfulQA.csv")[0]
    return [s.prompt + s.choices[s.target] for s in mc1.samples if isinstance(s.target, int)]


def _moderation(root: Path) -> list[str]:
    from oversight.monitors.labelled import load_labelled_set

    data = load_labelled_set(root / "openai_moderation_eval/samples-1680.jsonl.gz")
    return [t.messages[0].content for t in data.transcripts]


def _refusal(root: Path) -> list[str]:
    from oversight.monitors.labelled import load_labelled_set

    data = load_labelled_set(root / "pyrit_scorer_evals/refusal_scorer_eval.csv")
    return ["\n".join(f"{m.role.capitalize()}: {m.content}" for m in t.messages) for t in data.transcripts]


def _harmbench(root: Path) -> list[str]:
    from oversight.evals.loading import load_task_file

    return [s.prompt for s in load_task_file(root / "harmbench_advbench/harmbench_behaviors_text_all.csv")[0].samples]


PERSONA_FILES = (
    "desire-for-acquiring-power", "no-shut-down", "okay-with-deceiving-a-user-to-help-them",
    "willingness-to-manipulate-overseers-to-think-it-is-HHH",
)


def _persona(root: Path) -> list[str]:
    from oversight.evals.loading import load_task_file

    texts: list[str] = []
    for name in PERSONA_FILES:
        for task in load_task_file(root / f"anthropic_model_written_evals/persona/{name}.jsonl"):
            texts += [s.prompt for s in task.samples]
    return texts


DATASETS: dict[str, Dataset] = {
    d.name: d
    for d in (
        Dataset("safety", "prompts of the built-in safety suite (generated; needs no files)", (), _safety),
        Dataset("truthfulqa", "TruthfulQA questions with their best answer", ("truthfulqa/TruthfulQA.csv",), _truthfulqa),
        Dataset("moderation", "OpenAI moderation eval prompts (real user text, some of it hostile)",
                ("openai_moderation_eval/samples-1680.jsonl.gz",), _moderation),
        Dataset("refusal", "PyRIT refusal-scorer conversations (user + assistant)",
                ("pyrit_scorer_evals/refusal_scorer_eval.csv",), _refusal),
        Dataset("harmbench", "HarmBench harmful behaviour requests", ("harmbench_advbench/harmbench_behaviors_text_all.csv",), _harmbench),
        Dataset("persona", "Anthropic persona statements (four model-written eval files)",
                tuple(f"anthropic_model_written_evals/persona/{n}.jsonl" for n in PERSONA_FILES), _persona),
    )
}


def data_root(root: str | Path | None = None) -> Path:
    """The public datasets' folder: ``root``, ``$OVERSIGHT_SHARED_DATA``, or ./shared/data, ../shared/data."""
    if root is not None:
        return Path(root).expanduser()
    if env := os.environ.get("OVERSIGHT_SHARED_DATA"):
        return Path(env).expanduser()
    return next((p for p in DEFAULT_ROOTS if p.is_dir()), DEFAULT_ROOTS[0])


def load_dataset(name: str, *, root: str | Path | None = None, limit: int | None = None) -> list[str]:
    """Texts of a built-in set (see :data:`DATASETS`); a clear error for unknown names or missing files."""
    if name not in DATASETS:
        listed = "; ".join(f"{d.name}: {d.description}" for d in DATASETS.values())
        raise SpecError(f"unknown dataset {name!r}; built-in sets are: {listed}")
    dataset = DATASETS[name]
    base = data_root(root)
    missing = [f for f in dataset.files if not (base / f).is_file()]
    if missing:
        raise DataError(
            f"dataset {name!r} needs {', '.join(missing)} under the data root {base} "
            "(set OVERSIGHT_SHARED_DATA or pass the root)",
            path=base / missing[0],
        )
    texts = [t for t in dataset.load(base) if t.strip()]
    return texts[:limit] if limit is not None else texts
