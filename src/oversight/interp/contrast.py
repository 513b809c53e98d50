"""Labelled statements and their contrast pairs: what probes and CCS are trained on.

A :class:`Statement` is a text with a label (1 true, 0 false) and a ``group``: statements of one
group (the same country, the same pair of numbers, the same question) always land in the same
split, so a probe cannot score well by remembering an entity it saw in training.

Where statements come from:

* :func:`generate_facts` — true and false facts built from templates and small tables written
  for this project (capitals, sums, number and animal-size comparisons). Every group yields one
  true and one false statement, so the set is balanced and the entity alone says nothing.
* :func:`load_truthfulqa` — TruthfulQA's CSV through the project's loader: each question gives
  ``"Q: …\\nA: <best answer>"`` (true) and ``"Q: …\\nA: <an incorrect answer>"`` (false).
* :func:`load_persona` — an Anthropic persona file: the statement, labelled 1 when saying
  "Yes" to it matches the behaviour (the statement expresses the persona).
* :func:`load_statements` — any JSONL or CSV with ``text`` and ``label`` (and optional
  ``group``); :func:`load_any` picks the reader from the file's fields.

A :class:`ContrastTemplate` turns a statement into the prompt a supervised probe reads (the
template up to the answer) and into the contrast pair ``x+`` / ``x-`` that CCS reads (the template
completed with the "true" and the "false" answer).
"""

from __future__ import annotations

import hashlib
import random
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from oversight.errors import DataError, SpecError
from oversight.evals.formats import Row, first_record_keys, iter_records, require_file
from oversight.evals.formats import truthfulqa as tqa

DEFAULT_TEMPLATE = "{text}\nQuestion: Is this true? Answer: {answer}"
DEFAULT_ANSWERS = ("Yes", "No")
FACT_KINDS = ("capitals", "sums", "numbers", "animals")
_TRUE_WORDS = {"1": 1, "true": 1, "yes": 1, "0": 0, "false": 0, "no": 0}


@dataclass(frozen=True)
class Statement:
    text: str
    label: int  # 1 true, 0 false
    group: str  # statements sharing a group stay in one split
    source: str = ""  # "file:line" or the generator that made it


@dataclass(frozen=True)
class Dataset:
    name: str
    statements: list[Statement]

    @property
    def texts(self) -> list[str]:
        return [s.text for s in self.statements]

    @property
    def labels(self) -> list[int]:
        return [s.label for s in self.statements]

    def __len__(self) -> int:
        return len(self.statements)


@dataclass(frozen=True)
class Split:
    """Indices into a dataset. ``fit`` ∪ ``validation`` = ``train``; ``test`` shares no group with them."""

    fit: list[int]
    validation: list[int]
    test: list[int]

    @property
    def train(self) -> list[int]:
        return sorted(self.fit + self.validation)

    def to_dict(self) -> dict[str, int]:
        return {"fit": len(self.fit), "validation": len(self.validation), "test": len(self.test)}


# -- contrast template ------------------------------------------------------------------------


@dataclass(frozen=True)
class ContrastTemplate:
    """``format`` holds ``{text}`` and, for contrast pairs, ``{answer}``; ``answers`` is
    (the answer meaning "true", the answer meaning "false")."""

    format: str = DEFAULT_TEMPLATE
    answers: tuple[str, str] = DEFAULT_ANSWERS

    def __post_init__(self) -> None:
        fields = set(re.findall(r"\{(\w*)\}", self.format))
        if "text" not in fields:
            raise SpecError(f"the template must contain {{text}}: {self.format!r}")
        if fields - {"text", "answer"}:
            raise SpecError(f"the template may only use {{text}} and {{answer}}, found {sorted(fields)}: {self.format!r}")
        if self.format.count("{answer}") > 1:
            raise SpecError(f"the template may contain {{answer}} once: {self.format!r}")
        if len(self.answers) != 2 or not all(a.strip() for a in self.answers) or self.answers[0] == self.answers[1]:
            raise SpecError(f"answers must be two different non-empty strings (true, false), got {self.answers!r}")

    @property
    def has_answer(self) -> bool:
        return "{answer}" in self.format

    def _render(self, text: str, answer: str) -> str:
        # str.replace, not str.format: statements may contain braces.
        return self.format.replace("{text}", text).replace("{answer}", answer)

    def prompt(self, text: str) -> str:
        """What a supervised probe reads: the template up to the answer, trailing space removed."""
        if not self.has_answer:
            return self._render(text, "")
        return self.format.split("{answer}")[0].replace("{text}", text).rstrip()

    def continuation(self, answer: str) -> str:
        """What follows :meth:`prompt` for an answer, so prompt + continuation is the full text."""
        head, tail = self.format.split("{answer}")
        spacing = head[len(head.rstrip()) :]
        return spacing + answer + tail.replace("{text}", "")

    def pair(self, text: str) -> tuple[str, str]:
        """(x+, x-): the statement completed with the "true" and with the "false" answer."""
        if not self.has_answer:
            raise SpecError(f"contrast pairs need {{answer}} in the template: {self.format!r}")
        return self._render(text, self.answers[0]), self._render(text, self.answers[1])

    def to_dict(self) -> dict[str, object]:
        return {"format": self.format, "answers": list(self.answers)}


def parse_answers(value: str) -> tuple[str, str]:
    """``"Yes,No"`` -> ("Yes", "No")."""
    parts = [p.strip() for p in value.split(",")]
    if len(parts) != 2:
        raise SpecError(f"answers are two comma-separated words, true first (e.g. 'Yes,No'), got {value!r}")
    return parts[0], parts[1]


# -- splits ------------------------------------------------------------------------------------


def split_by_group(
    statements: Sequence[Statement], *, test_fraction: float = 0.3, validation_fraction: float = 0.25, seed: int = 0
) -> Split:
    """Split whole groups: ``test_fraction`` of the groups to test, then ``validation_fraction``
    of the remaining groups to validation (used to choose a layer), the rest to fit."""
    if not 0 < test_fraction < 1 or not 0 <= validation_fraction < 1:
        raise SpecError(f"fractions must be in (0, 1): test={test_fraction}, validation={validation_fraction}")
    groups = sorted({s.group for s in statements}, key=lambda g: _hash(f"{seed}:{g}"))
    n_test = max(1, round(len(groups) * test_fraction))
    test_groups = set(groups[:n_test])
    rest = groups[n_test:]
    val_groups = set(rest[: round(len(rest) * validation_fraction)])
    split = Split(fit=[], validation=[], test=[])
    for i, s in enumerate(statements):
        (split.test if s.group in test_groups else split.validation if s.group in val_groups else split.fit).append(i)
    for name, part in (("fit", split.fit), ("test", split.test)):
        labels = {statements[i].label for i in part}
        if labels != {0, 1}:
            raise DataError(
                f"the {name} split holds only label(s) {sorted(labels)} ({len(groups)} groups in all); "
                "use more statements, with both true (1) and false (0) ones"
            )
    return split


def _hash(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


# -- generated facts ----------------------------------------------------------------------------

# A small table written for this project: country -> capital.
CAPITALS: dict[str, str] = {
    "France": "Paris", "Italy": "Rome", "Spain": "Madrid", "Germany": "Berlin", "Portugal": "Lisbon",
    "Austria": "Vienna", "Poland": "Warsaw", "Greece": "Athens", "Sweden": "Stockholm", "Norway": "Oslo",
    "Finland": "Helsinki", "Denmark": "Copenhagen", "Ireland": "Dublin", "Hungary": "Budapest",
    "Czechia": "Prague", "Belgium": "Brussels", "Netherlands": "Amsterdam", "Russia": "Moscow",
    "Ukraine": "Kyiv", "Turkey": "Ankara", "Egypt": "Cairo", "Kenya": "Nairobi", "Nigeria": "Abuja",
    "Ghana": "Accra", "Ethiopia": "Addis Ababa", "Morocco": "Rabat", "Senegal": "Dakar",
    "Japan": "Tokyo", "China": "Beijing", "India": "New Delhi", "Thailand": "Bangkok",
    "Vietnam": "Hanoi", "Indonesia": "Jakarta", "Philippines": "Manila", "South Korea": "Seoul",
    "Iran": "Tehran", "Iraq": "Baghdad", "Saudi Arabia": "Riyadh", "Israel": "Jerusalem",
    "Pakistan": "Islamabad", "Bangladesh": "Dhaka", "Nepal": "Kathmandu", "Australia": "Canberra",
    "New Zealand": "Wellington", "Canada": "Ottawa", "Mexico": "Mexico City", "Cuba": "Havana",
    "Peru": "Lima", "Chile": "Santiago", "Argentina": "Buenos Aires", "Colombia": "Bogotá",
    "Venezuela": "Caracas", "Brazil": "Brasília", "Ecuador": "Quito", "Uruguay": "Montevideo",
    "Iceland": "Reykjavik", "Romania": "Bucharest", "Bulgaria": "Sofia", "Serbia": "Belgrade",
    "Croatia": "Zagreb",
}

# Animals from small to large (typical adult body mass), written for this project.
ANIMALS_BY_SIZE: tuple[str, ...] = (
    "an ant", "a bee", "a mouse", "a sparrow", "a rat", "a rabbit", "a cat", "a fox", "a dog",
    "a sheep", "a pig", "a lion", "a horse", "a giraffe", "a hippo", "an elephant", "a blue whale",
)


def generate_facts(n: int = 400, *, seed: int = 0, kinds: Sequence[str] = FACT_KINDS) -> Dataset:
    """``n`` statements (``n // 2`` groups, each one true and one false), kinds taken in turn."""
    unknown = [k for k in kinds if k not in FACT_KINDS]
    if unknown or not kinds:
        raise SpecError(f"unknown fact kind(s) {unknown}; choose from {', '.join(FACT_KINDS)}")
    if n < 4 or n % 2:
        raise SpecError(f"n must be an even number >= 4 (one true and one false per group), got {n}")
    rng = random.Random(seed)
    pools = {kind: _fact_groups(kind, rng) for kind in kinds}
    statements: list[Statement] = []
    turn = 0
    while len(statements) < n:
        if not any(pools.values()):
            raise SpecError(f"the fact tables hold only {len(statements) // 2} groups; ask for n <= {len(statements)}")
        kind = kinds[turn % len(kinds)]
        turn += 1
        if pools[kind]:
            group, true_text, false_text = pools[kind].pop()
            statements += [
                Statement(true_text, 1, f"{kind}:{group}", f"facts/{kind}"),
                Statement(false_text, 0, f"{kind}:{group}", f"facts/{kind}"),
            ]
    return Dataset(f"facts(n={n}, seed={seed})", statements)


def _fact_groups(kind: str, rng: random.Random) -> list[tuple[str, str, str]]:
    """(group, true statement, false statement), shuffled; popped from the end."""
    out: list[tuple[str, str, str]] = []
    if kind == "capitals":
        countries = sorted(CAPITALS)
        for country in countries:
            wrong = rng.choice([CAPITALS[c] for c in countries if c != country])
            out.append((country, f"The capital of {country} is {CAPITALS[country]}.", f"The capital of {country} is {wrong}."))
    elif kind == "sums":
        for a in range(2, 40):
            for b in range(2, 40):
                if a <= b:
                    total = a + b
                    off = total + rng.choice([-10, -2, -1, 1, 2, 10])
                    out.append((f"{a}+{b}", f"{a} + {b} = {total}.", f"{a} + {b} = {off}."))
    elif kind == "numbers":
        for a in range(1, 60):
            for b in range(a + 1, 60):
                word = rng.choice(["larger", "smaller"])
                true, false = (f"{b} is {word} than {a}.", f"{a} is {word} than {b}.")
                if word == "smaller":
                    true, false = false, true
                out.append((f"{a}<{b}", true, false))
    elif kind == "animals":
        for i, small in enumerate(ANIMALS_BY_SIZE):
            for large in ANIMALS_BY_SIZE[i + 3 :]:  # far enough apart to be unambiguous
                word = rng.choice(["larger", "smaller"])
                big_first = f"{_cap(large)} is {word} than {small}."
                small_first = f"{_cap(small)} is {word} than {large}."
                true, false = (big_first, small_first) if word == "larger" else (small_first, big_first)
                out.append((f"{small}<{large}", true, false))
    rng.shuffle(out)
    return out


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


# -- files ------------------------------------------------------------------------------------


def load_statements(path: Path) -> Dataset:
    """JSONL or CSV with ``text`` and ``label`` (1/0, true/false, yes/no) and an optional ``group``
    (default: the text itself, so repeated texts share a split)."""
    require_file(path)
    statements = []
    for row in iter_records(path):
        text = row.text("text")
        statements.append(Statement(text, _label(row), str(row.data.get("group") or text), f"{path.name}:{row.line}"))
    if not statements:
        raise DataError("the file holds no statements", path=path)
    return Dataset(path.name, statements)


def _label(row: Row) -> int:
    value = row.get("label")
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int | float) and value in (0, 1):
        return int(value)
    if isinstance(value, str) and value.strip().lower() in _TRUE_WORDS:
        return _TRUE_WORDS[value.strip().lower()]
    raise row.error(f"expected 1 (true) or 0 (false), got {value!r}", "label")


def load_truthfulqa(path: Path, *, seed: int = 0, limit: int | None = None) -> Dataset:
    """Per question, the best answer (true) and one incorrect answer chosen with ``seed`` (false)."""
    rng = random.Random(seed)
    mc1 = next(t for t in tqa.load(require_file(path)) if t.name.endswith("_mc1"))
    statements: list[Statement] = []
    for sample in mc1.samples[:limit]:
        line = sample.metadata.get("line")
        where = f"{path.name}:{line}"
        best = sample.choices[0]
        wrong = rng.choice(sample.choices[1:])
        statements += [
            Statement(sample.prompt + best, 1, f"q{sample.doc_id}", where),
            Statement(sample.prompt + wrong, 0, f"q{sample.doc_id}", where),
        ]
    return Dataset(f"truthfulqa({path.name})", statements)


def load_persona(path: Path, *, limit: int | None = None) -> Dataset:
    """Anthropic persona statements; label 1 when answering "Yes" matches the behaviour."""
    statements = []
    for row in iter_records(require_file(path)):
        answer = row.text("answer_matching_behavior").strip().lower()
        if answer not in ("yes", "no"):
            raise row.error(f"expected ' Yes' or ' No', got {answer!r}", "answer_matching_behavior")
        text = row.text("statement")
        statements.append(Statement(text, int(answer == "yes"), text, f"{path.name}:{row.line}"))
        if limit is not None and len(statements) >= limit:
            break
    if not statements:
        raise DataError("the file holds no statements", path=path)
    return Dataset(f"persona({path.stem})", statements)


def load_any(path: Path, *, seed: int = 0, limit: int | None = None) -> Dataset:
    """A data file by its fields: TruthfulQA CSV, persona JSONL, or ``text`` + ``label``."""
    keys = first_record_keys(require_file(path))
    if tqa.looks_like(keys):
        return load_truthfulqa(path, seed=seed, limit=limit)
    if {"statement", "answer_matching_behavior"} <= keys:
        return load_persona(path, limit=limit)
    if {"text", "label"} <= keys:
        dataset = load_statements(path)
        return Dataset(dataset.name, dataset.statements[:limit]) if limit else dataset
    raise DataError(
        f"cannot tell what this file holds (fields: {', '.join(sorted(keys))}); expected 'text' and "
        "'label' (1 true, 0 false), a TruthfulQA CSV, or an Anthropic persona JSONL",
        path=path,
        field="text",
    )


def subsample(dataset: Dataset, n: int, *, seed: int = 0) -> Dataset:
    """At most ``n`` statements, taken as whole groups in a seeded order (keeps the balance of
    datasets built from true/false pairs)."""
    if len(dataset) <= n:
        return dataset
    by_group: dict[str, list[Statement]] = {}
    for s in dataset.statements:
        by_group.setdefault(s.group, []).append(s)
    order = sorted(by_group, key=lambda g: _hash(f"sub{seed}:{g}"))
    kept: list[Statement] = []
    for group in order:
        if len(kept) + len(by_group[group]) > n:
            continue
        kept += by_group[group]
    return Dataset(f"{dataset.name}[:{len(kept)}]", kept)
