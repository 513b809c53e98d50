"""What a monitor is: a batch of transcripts in, one verdict per transcript out.

A monitor declares what it is as data (:class:`MonitorInfo`: name, version, what it
detects, what it costs), so the CLI and web app list monitors from the registry instead
of from hand-kept docs. Labels follow one convention everywhere: **1 = fault, 0 = fine**.

Failures are per transcript. :func:`run_safely` is how callers run any monitor: when a
batch raises, it retries the items one by one and records the error on the items that
still fail, so one poisoned transcript never costs the verdicts of the others.
An errored verdict has ``score = NaN`` and ``label = -1`` (:data:`ABSTAIN`): NaN keeps
the score a float that numpy carries along and that no threshold can mistake for "fine",
and -1 is outside {0, 1}, so counting faults with ``label == 1`` or fine with
``label == 0`` never counts it. Evaluation drops errored items and reports how many.
"""

from __future__ import annotations

import importlib
import inspect
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Literal, Protocol, runtime_checkable

from oversight.errors import SpecError
from oversight.transcripts import TranscriptLike

Cost = Literal["free", "cheap", "model", "expensive"]
#: (message index, start, end): character offsets into that message's content.
Span = tuple[int, int, int]
#: The label of a verdict that could not be given (the monitor raised on this transcript).
ABSTAIN = -1
#: Called with the number of transcripts that just finished.
Progress = Callable[[int], None]


@dataclass(frozen=True)
class MonitorInfo:
    """A monitor's declaration, listed by the CLI and stored next to its verdicts.

    ``cost``: ``free`` (pure Python, microseconds), ``cheap`` (a small local encoder),
    ``model`` (a language-model forward pass per transcript), ``expensive`` (paid API
    calls or generation).
    """

    name: str
    version: str
    detects: str
    cost: Cost
    description: str

    def to_dict(self) -> dict[str, str]:
        return asdict(self)


@dataclass(frozen=True)
class Verdict:
    """One monitor's judgement of one transcript.

    ``score`` is in [0, 1] (higher = more likely a fault), ``label`` is 1 (fault) or
    0 (fine), ``evidence`` says why in a line, and ``span`` points at the text it is
    about when the monitor can tell. An errored verdict carries ``error`` instead.
    """

    score: float
    label: int
    evidence: str = ""
    span: Span | None = None
    error: str | None = None

    def __post_init__(self) -> None:
        if self.error is not None:
            return
        if not (0.0 <= self.score <= 1.0):
            raise ValueError(f"a verdict's score must be in [0, 1], got {self.score!r}")
        if self.label not in (0, 1):
            raise ValueError(f"a verdict's label must be 0 or 1, got {self.label!r}")

    @property
    def ok(self) -> bool:
        return self.error is None

    @classmethod
    def failed(cls, error: str) -> Verdict:
        return cls(score=math.nan, label=ABSTAIN, evidence="", span=None, error=error)

    def to_dict(self) -> dict[str, Any]:
        return {
            "score": None if math.isnan(self.score) else self.score,
            "label": self.label,
            "evidence": self.evidence,
            "span": list(self.span) if self.span is not None else None,
            "error": self.error,
        }


@runtime_checkable
class Monitor(Protocol):
    """Anything that turns a batch of transcripts into one verdict each, in order."""

    @property
    def info(self) -> MonitorInfo: ...

    def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]: ...


@runtime_checkable
class Trainable(Protocol):
    """A monitor that learns from labelled transcripts (embedding, stacked ensemble)."""

    @property
    def is_fitted(self) -> bool: ...

    def fit(self, transcripts: Sequence[TranscriptLike], labels: Sequence[int]) -> Any: ...


def label_at(score: float, threshold: float) -> int:
    """The label a score gets: fault at or above the threshold."""
    return int(score >= threshold)


def error_text(exc: BaseException) -> str:
    text = f"{type(exc).__name__}: {exc}"
    return text if len(text) <= 500 else text[:497] + "..."


def run_safely(
    monitor: Monitor,
    batch: Sequence[TranscriptLike],
    *,
    chunk_size: int = 64,
    progress: Progress | None = None,
) -> list[Verdict]:
    """One verdict per transcript, whatever happens inside the monitor.

    Transcripts go to the monitor in chunks (a crash costs at most a chunk's retry); a
    chunk that raises, or returns the wrong number of verdicts, is retried item by item,
    and an item that still raises gets :meth:`Verdict.failed` with the error text.
    ``KeyboardInterrupt`` is not caught: stopping stays possible.
    """
    if chunk_size < 1:
        raise ValueError(f"chunk_size must be >= 1, got {chunk_size}")
    verdicts: list[Verdict] = []
    for start in range(0, len(batch), chunk_size):
        chunk = batch[start : start + chunk_size]
        verdicts += _score_chunk(monitor, chunk)
        if progress is not None:
            progress(len(chunk))
    return verdicts


def _score_chunk(monitor: Monitor, chunk: Sequence[TranscriptLike]) -> list[Verdict]:
    try:
        out = monitor.score(chunk)
    except Exception as exc:
        if len(chunk) == 1:
            return [Verdict.failed(error_text(exc))]
        return [_score_one(monitor, t) for t in chunk]
    if len(out) == len(chunk) and all(isinstance(v, Verdict) for v in out):
        return list(out)
    if len(chunk) == 1:
        return [_bad_output(monitor, out)]
    return [_score_one(monitor, t) for t in chunk]


def _score_one(monitor: Monitor, transcript: TranscriptLike) -> Verdict:
    try:
        out = monitor.score([transcript])
    except Exception as exc:
        return Verdict.failed(error_text(exc))
    if len(out) != 1 or not isinstance(out[0], Verdict):
        return _bad_output(monitor, out)
    return out[0]


def _bad_output(monitor: Monitor, out: Sequence[object]) -> Verdict:
    kinds = sorted({type(v).__name__ for v in out})
    return Verdict.failed(
        f"monitor {monitor.info.name!r} returned {len(out)} results ({', '.join(kinds) or 'none'}) "
        "for 1 transcript; expected 1 Verdict"
    )


# ------------------------------------------------------------------ registry
MonitorFactory = Callable[..., Monitor]


@dataclass(frozen=True)
class _Lazy:
    """A factory that imports its class on first use (the built-ins import heavy things)."""

    module: str
    attr: str

    def load(self) -> Any:
        return getattr(importlib.import_module(self.module), self.attr)

    @property
    def INFO(self) -> MonitorInfo:  # mirrors the class attribute it forwards
        info: MonitorInfo = self.load().INFO
        return info

    def __call__(self, **options: Any) -> Monitor:
        monitor: Monitor = self.load()(**options)
        return monitor


#: Built-in monitors by name. A factory is called with the monitor's options and has an
#: ``INFO`` attribute (its :class:`MonitorInfo`), so listing never builds a monitor.
MONITORS: dict[str, MonitorFactory] = {
    "rules": _Lazy("oversight.monitors.rules", "RulesMonitor"),
    "refusal": _Lazy("oversight.monitors.refusal", "RefusalMonitor"),
    "judge": _Lazy("oversight.monitors.judge", "JudgeMonitor"),
    "embedding": _Lazy("oversight.monitors.embedding", "EmbeddingMonitor"),
    "ensemble": _Lazy("oversight.monitors.ensemble", "EnsembleMonitor"),
    "probe": _Lazy("oversight.monitors.probe", "ProbeMonitor"),
}


def monitor_info(name: str) -> MonitorInfo:
    """The declared info of a registered monitor, without building it."""
    info: MonitorInfo = _factory(name).INFO  # type: ignore[attr-defined]
    return info


def build_monitor(name: str, **options: Any) -> Monitor:
    """Build a registered monitor; unknown names and options say what is accepted."""
    factory = _factory(name)
    target = factory.load() if isinstance(factory, _Lazy) else factory
    try:
        signature = inspect.signature(target)
    except (TypeError, ValueError):  # builtins without signatures: let the call decide
        signature = None
    if signature is not None:
        params = signature.parameters
        takes_any = any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())
        accepted = [p for p in params if p not in ("self",)]
        unknown = [k for k in options if k not in params]
        if unknown and not takes_any:
            raise SpecError(
                f"monitor {name!r} takes no option {unknown[0]!r}; it takes: "
                + (", ".join(accepted) or "no options")
            )
    return factory(**options)


def _factory(name: str) -> MonitorFactory:
    if name not in MONITORS:
        lines = []
        for known in MONITORS:
            try:
                lines.append(f"  {known:10} {monitor_info(known).detects}")
            except Exception:  # a broken plugin must not hide the others
                lines.append(f"  {known}")
        raise SpecError(f"unknown monitor {name!r}; known monitors:\n" + "\n".join(lines))
    return MONITORS[name]
