from __future__ import annotations

import math
from collections.abc import Sequence

import pytest
from monitor_helpers import FixedMonitor, chat

from oversight.monitors.base import Verdict
from oversight.monitors.embedding import NotFittedError
from oversight.monitors.ensemble import EnsembleMonitor
from oversight.transcripts import TranscriptLike

BATCH = [chat(i, f"t{i}") for i in range(3)]


def members() -> list[FixedMonitor]:
    a = FixedMonitor("a", {0: 0.2, 1: 0.9, 2: 0.4}, crash=[2])
    b = FixedMonitor("b", {0: 0.4, 1: 0.1, 2: 0.3})
    return [a, b]


def test_mean_and_max_skip_a_member_that_failed() -> None:
    mean = EnsembleMonitor(members(), "mean").score(BATCH)
    assert [v.score for v in mean] == pytest.approx([0.3, 0.5, 0.3])
    assert "a=error" in mean[2].evidence
    top = EnsembleMonitor(members(), "max").score(BATCH)
    assert [v.score for v in top] == pytest.approx([0.4, 0.9, 0.3]) and top[1].label == 1
    assert top[1].evidence.endswith("a: a says 0.9")
    weighted = EnsembleMonitor(members(), "mean", weights=[3, 1]).score(BATCH[:1])
    assert weighted[0].score == pytest.approx((3 * 0.2 + 0.4) / 4)


def test_every_member_failing_is_an_error() -> None:
    broken = [FixedMonitor("x", {}, crash=[0]), FixedMonitor("y", {}, crash=[0])]
    v = EnsembleMonitor(broken, "max").score(BATCH[:1])[0]
    assert not v.ok and "x: RuntimeError: boom on 0" in (v.error or "")


class Trainable(FixedMonitor):
    """Learns nothing, but counts fits (a stand-in for the embedding monitor)."""

    def __init__(self, *args: object, **kwargs: object) -> None:
        super().__init__(*args, **kwargs)  # type: ignore[arg-type]
        self.fits = 0

    @property
    def is_fitted(self) -> bool:
        return self.fits > 0

    def fit(self, transcripts: Sequence[TranscriptLike], labels: Sequence[int]) -> Trainable:
        self.fits += 1
        return self

    def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
        return super().score(batch)


def test_stack_learns_which_member_to_trust() -> None:
    n = 40
    labels = [i % 2 for i in range(n)]
    good = Trainable("good", {i: 0.8 if labels[i] else 0.2 for i in range(n)})
    noise = FixedMonitor("noise", {i: (i * 7 % 10) / 10 for i in range(n)})
    batch = [chat(i, "x") for i in range(n)]
    ensemble = EnsembleMonitor([good, noise], "stack", folds=4)
    assert not ensemble.is_fitted
    with pytest.raises(NotFittedError):
        ensemble.score(batch)
    ensemble.fit(batch, labels)
    assert ensemble.is_fitted and good.fits == 4 + 1  # cross-fitted, then refitted on all
    assert ensemble.coef is not None and ensemble.coef[0] > abs(ensemble.coef[1])
    verdicts = ensemble.score(batch)
    assert [v.label for v in verdicts] == labels
    assert all(0 <= v.score <= 1 and not math.isnan(v.score) for v in verdicts)
    assert ensemble.info.cost == "free" and "stack" in ensemble.info.version


def test_members_by_name_and_options() -> None:
    ensemble = EnsembleMonitor("rules, refusal", "max", member_options={"refusal": {"threshold": 0.9}})
    assert [m.info.name for m in ensemble.members] == ["rules", "refusal"]
    t = chat(0, "email me at a@b.org", "I can't help with that.")
    v = ensemble.score([t])[0]
    assert v.label == 1 and v.span is not None
    with pytest.raises(ValueError, match="method"):
        EnsembleMonitor("rules", "vote")  # type: ignore[arg-type]
