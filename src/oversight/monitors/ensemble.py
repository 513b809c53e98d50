"""The ensemble monitor: several monitors' scores combined into one verdict.

``mean`` averages the members' scores (optionally weighted), ``max`` flags when any member
is sure, and ``stack`` learns the combination: a logistic regression on the members'
scores, fitted on labelled transcripts. Stacking fits on *out-of-fold* member scores
(trainable members are cross-fitted first, then refitted on everything), because a member
scored on its own training data looks better than it is and the stack would over-trust it.

A member that errors on a transcript is left out of that transcript's combination (for
``stack``, its score is replaced by its mean training score); the verdict errors only
when every member did.
"""

from __future__ import annotations

import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any, Literal

import numpy as np

from oversight.monitors.base import (
    Monitor,
    MonitorInfo,
    Trainable,
    Verdict,
    build_monitor,
    label_at,
    run_safely,
)
from oversight.transcripts import TranscriptLike

Method = Literal["mean", "max", "stack"]
_COST_ORDER = ("free", "cheap", "model", "expensive")


class EnsembleMonitor:
    """Combine ``members`` (monitors or registered names) by ``mean``, ``max`` or ``stack``.

    ``members`` may be a comma-separated string (``"rules,refusal"``) as the CLI passes it;
    ``member_options`` maps a member name to the options it is built with.
    """

    INFO = MonitorInfo(
        name="ensemble",
        version="1",
        detects="what its members detect, combined (by default: rules or the model judge)",
        cost="model",
        description="Combines member monitors' scores by mean, max, or a logistic regression "
        "stacked on labelled data.",
    )

    def __init__(
        self,
        members: Sequence[Monitor | str] | str = ("rules", "judge"),
        method: Method = "max",
        *,
        weights: Sequence[float] | None = None,
        threshold: float = 0.5,
        member_options: Mapping[str, Mapping[str, Any]] | None = None,
        folds: int = 5,
        seed: int = 0,
    ) -> None:
        if method not in ("mean", "max", "stack"):
            raise ValueError(f"method must be 'mean', 'max' or 'stack', got {method!r}")
        if isinstance(members, str):
            members = [m.strip() for m in members.split(",") if m.strip()]
        if not members:
            raise ValueError("an ensemble needs at least one member")
        options = member_options or {}
        self.members: list[Monitor] = [
            build_monitor(m, **dict(options.get(m, {}))) if isinstance(m, str) else m for m in members
        ]
        names = [m.info.name for m in self.members]
        if "ensemble" in names:
            raise ValueError("an ensemble cannot contain the default ensemble (it would recurse)")
        if weights is not None and len(weights) != len(self.members):
            raise ValueError(f"{len(weights)} weights for {len(self.members)} members")
        self.weights = np.asarray(weights if weights is not None else [1.0] * len(self.members), dtype=float)
        self.method: Method = method
        self.threshold = threshold
        self.folds = folds
        self.seed = seed
        self.coef: np.ndarray | None = None
        self.intercept = 0.0
        self.fill = np.full(len(self.members), 0.5)

    @property
    def info(self) -> MonitorInfo:
        infos = [m.info for m in self.members]
        cost = max((i.cost for i in infos), key=_COST_ORDER.index)
        names = ", ".join(f"{i.name}@{i.version}" for i in infos)
        # The combination is a new judgement whenever a member's version or the stacked
        # weights change (a retrained embedding member, say): the version says so.
        parts = [names, self.method, repr(self.weights.tolist())]
        if self.coef is not None:
            parts.append(repr([*self.coef.tolist(), self.intercept]))
        digest = hashlib.sha256("|".join(parts).encode()).hexdigest()[:8]
        return MonitorInfo(
            name=self.INFO.name, version=f"{self.INFO.version}+{self.method}.{digest}",
            detects="; ".join(dict.fromkeys(i.detects for i in infos)), cost=cost,
            description=f"{self.method} of {names}",
        )

    @property
    def is_fitted(self) -> bool:
        members_ready = all(m.is_fitted for m in self.members if isinstance(m, Trainable))
        return members_ready and (self.method != "stack" or self.coef is not None)

    # -- training ------------------------------------------------------------
    def fit(self, transcripts: Sequence[TranscriptLike], labels: Sequence[int]) -> EnsembleMonitor:
        """Train trainable members; for ``stack``, also the combining regression."""
        from sklearn.linear_model import LogisticRegression

        from oversight.monitors.evaluate import cross_fitted_verdicts

        y = [int(v) for v in labels]
        columns = []
        for member in self.members:
            if isinstance(member, Trainable):
                if self.method == "stack":
                    oof = cross_fitted_verdicts(member, transcripts, y, folds=self.folds, seed=self.seed)
                    columns.append([v.score for v in oof])
                member.fit(transcripts, y)
            elif self.method == "stack":
                columns.append([v.score for v in run_safely(member, transcripts)])
        if self.method == "stack":
            x = np.array(columns, dtype=float).T
            self.fill = np.array([np.nanmean(c) if np.isfinite(c).any() else 0.5 for c in x.T])
            x = np.where(np.isnan(x), self.fill, x)
            model = LogisticRegression(max_iter=2000).fit(x, np.asarray(y))
            self.coef, self.intercept = model.coef_[0].astype(float), float(model.intercept_[0])
        return self

    # -- scoring -------------------------------------------------------------
    def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
        if self.method == "stack" and self.coef is None:
            from oversight.monitors.embedding import NotFittedError

            raise NotFittedError("a stacked ensemble must be fitted on labelled transcripts first")
        table = [run_safely(m, batch) for m in self.members]
        return [self._combine([col[i] for col in table]) for i in range(len(batch))]

    def _combine(self, verdicts: list[Verdict]) -> Verdict:
        scores = np.array([v.score for v in verdicts], dtype=float)
        ok = ~np.isnan(scores)
        if not ok.any():
            errors = "; ".join(f"{m.info.name}: {v.error}" for m, v in zip(self.members, verdicts, strict=True))
            return Verdict.failed(f"every member failed ({errors})")
        if self.method == "mean":
            score = float(np.average(scores[ok], weights=self.weights[ok]))
            lead = int(np.nanargmax(np.where(ok, scores * self.weights, np.nan)))
        elif self.method == "max":
            score = float(np.nanmax(scores))
            lead = int(np.nanargmax(scores))
        else:
            assert self.coef is not None
            x = np.where(ok, scores, self.fill)
            score = float(1.0 / (1.0 + math.exp(-(x @ self.coef + self.intercept))))
            lead = int(np.argmax(x * self.coef))
        score = min(max(score, 0.0), 1.0)
        parts = ", ".join(
            f"{m.info.name}={'error' if math.isnan(s) else f'{s:.2f}'}"
            for m, s in zip(self.members, scores, strict=True)
        )
        top = verdicts[lead]
        evidence = f"{self.method} of {parts}; {self.members[lead].info.name}: {top.evidence}"
        return Verdict(score=score, label=label_at(score, self.threshold), evidence=evidence, span=top.span)
