"""Stub monitors and transcripts shared by the monitor tests."""

from __future__ import annotations

from collections.abc import Sequence

from oversight.monitors.base import MonitorInfo, Verdict
from oversight.transcripts import Transcript, TranscriptLike


def chat(id: int | str, user: str, assistant: str | None = None) -> Transcript:
    pairs = [("user", user)] + ([("assistant", assistant)] if assistant is not None else [])
    return Transcript.from_pairs(id, pairs)


class FixedMonitor:
    """Scores each transcript by a lookup on its id; raises on ids in ``crash``."""

    def __init__(self, name: str, scores: dict[int | str, float], crash: Sequence[int | str] = ()) -> None:
        self.scores, self.crash = scores, set(crash)
        self.calls: list[int] = []
        self._info = MonitorInfo(name, "0", "test", "free", "stub")

    @property
    def info(self) -> MonitorInfo:
        return self._info

    def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
        self.calls.append(len(batch))
        out = []
        for t in batch:
            tid = t.id  # type: ignore[attr-defined]
            if tid in self.crash:
                raise RuntimeError(f"boom on {tid}")
            s = self.scores[tid]
            out.append(Verdict(s, int(s >= 0.5), f"{self.info.name} says {s}"))
        return out
