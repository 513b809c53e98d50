from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from monitor_helpers import FixedMonitor, chat

from oversight.errors import SpecError
from oversight.monitors import ABSTAIN, MONITORS, Verdict, build_monitor, run_safely
from oversight.monitors.base import MonitorInfo
from oversight.monitors.cli_support import list_monitors, parse_options
from oversight.transcripts import Transcript, TranscriptLike


def test_verdicts_check_their_range_and_errors_abstain() -> None:
    with pytest.raises(ValueError, match=r"\[0, 1\]"):
        Verdict(1.5, 1)
    with pytest.raises(ValueError, match="0 or 1"):
        Verdict(0.5, 2)
    failed = Verdict.failed("RuntimeError: x")
    assert math.isnan(failed.score) and failed.label == ABSTAIN and not failed.ok
    assert failed.to_dict() == {"score": None, "label": -1, "evidence": "", "span": None, "error": "RuntimeError: x"}


def test_run_safely_keeps_every_other_verdict_when_one_transcript_crashes() -> None:
    batch = [chat(i, f"message {i}") for i in range(7)]
    monitor = FixedMonitor("stub", {i: i / 10 for i in range(7)}, crash=[3])
    seen: list[int] = []
    verdicts = run_safely(monitor, batch, chunk_size=4, progress=seen.append)
    assert [v.score for v in verdicts if v.ok] == [0.0, 0.1, 0.2, 0.4, 0.5, 0.6]
    assert verdicts[3].error == "RuntimeError: boom on 3" and verdicts[3].label == ABSTAIN
    # Chunk [0..3] raised and was retried one by one; chunk [4..6] ran whole.
    assert monitor.calls == [4, 1, 1, 1, 1, 3]
    assert seen == [4, 3]


def test_run_safely_retries_a_batch_that_returns_the_wrong_number_of_verdicts() -> None:
    class Short(FixedMonitor):
        def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
            out = super().score(batch)
            return out[:1] if len(batch) > 1 else out

    verdicts = run_safely(Short("short", {0: 0.1, 1: 0.9}), [chat(0, "a"), chat(1, "b")])
    assert [v.score for v in verdicts] == [0.1, 0.9]


def test_run_safely_lets_keyboard_interrupt_through() -> None:
    class Stop(FixedMonitor):
        def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        run_safely(Stop("stop", {}), [chat(0, "a")])


def test_registry_lists_the_builtins_and_explains_unknown_names_and_options() -> None:
    infos = list_monitors()
    assert [i.name for i in infos] == ["rules", "refusal", "judge", "embedding", "ensemble", "probe"] == list(MONITORS)
    assert all(isinstance(i, MonitorInfo) and i.cost in ("free", "cheap", "model", "expensive") for i in infos)
    assert all(i.version and i.detects and i.description for i in infos)
    with pytest.raises(SpecError) as err:
        build_monitor("nope")
    for name in MONITORS:
        assert name in str(err.value)
    with pytest.raises(SpecError, match=r"takes no option 'colour'.*threshold"):
        build_monitor("refusal", colour="red")
    assert build_monitor("refusal", threshold=0.3).threshold == 0.3  # type: ignore[attr-defined]


def test_parse_options_types_scalars_and_keeps_strings() -> None:
    options = parse_options(["threshold=0.3", "check_topic=false", "members=rules,refusal", "model=hf:/x/y"])
    assert options == {"threshold": 0.3, "check_topic": False, "members": "rules,refusal", "model": "hf:/x/y"}
    with pytest.raises(SpecError):
        parse_options(["novalue"])


def test_transcripts_hash_without_their_metadata() -> None:
    a = Transcript.from_pairs(1, [("user", "hi")], source="x")
    b = Transcript.from_pairs(1, [("user", "hi")], source="y")
    assert a == b and hash(a) == hash(b)
