"""Cut each message into plain and highlighted pieces for the monitors' evidence spans.

The page renders every piece as escaped text, marking the highlighted ones; nothing here
produces markup. A monitor's span is (message, start, end) in characters of that message's
content. Verdicts stored before the store recorded the message (revision 0002) have only
start and end; their span is placed in the last message long enough to hold it, and the
page says it was inferred.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from dataclasses import dataclass

from oversight.store.browse import VerdictView


@dataclass(frozen=True)
class Piece:
    text: str
    #: Monitors whose evidence covers this piece (empty: plain text).
    monitors: tuple[str, ...] = ()


@dataclass(frozen=True)
class Span:
    monitor: str
    message: int
    start: int
    end: int
    inferred: bool


def spans_of(verdicts: Sequence[VerdictView], contents: Sequence[str]) -> list[Span]:
    out = []
    for v in verdicts:
        if v.evidence_start is None or v.evidence_end is None or v.evidence_end <= v.evidence_start or v.evidence_start < 0:
            continue
        if v.evidence_message is not None:
            if 0 <= v.evidence_message < len(contents) and v.evidence_end <= len(contents[v.evidence_message]):
                out.append(Span(v.monitor, v.evidence_message, v.evidence_start, v.evidence_end, False))
            continue
        fits = [i for i, c in enumerate(contents) if v.evidence_end <= len(c)]
        if fits:
            out.append(Span(v.monitor, fits[-1], v.evidence_start, v.evidence_end, True))
    return out


def pieces(content: str, spans: Sequence[Span]) -> list[Piece]:
    """``content`` split at every span boundary; each piece lists the monitors covering it."""
    if not spans:
        return [Piece(content)]
    cuts = sorted({0, len(content), *(s.start for s in spans), *(s.end for s in spans)})
    out = []
    for a, b in itertools.pairwise(cuts):
        if a == b:
            continue
        covering = tuple(sorted({s.monitor for s in spans if s.start <= a and b <= s.end}))
        out.append(Piece(content[a:b], covering))
    return out


def highlighted_messages(messages: Sequence[dict[str, str]], verdicts: Sequence[VerdictView]) -> list[tuple[dict[str, str], list[Piece], list[Span]]]:
    """Each message with its pieces and the spans placed in it."""
    contents = [m["content"] for m in messages]
    spans = spans_of(verdicts, contents)
    out = []
    for i, m in enumerate(messages):
        mine = [s for s in spans if s.message == i]
        out.append((m, pieces(m["content"], mine), mine))
    return out
