"""How well a judge rubric agrees with human labels.

A judge's score is only worth reporting if it tracks what a person would say. This module
scores a labelled set of (request, reply) pairs with a rubric, through the same code path
the eval runner uses (:func:`oversight.evals.rubrics.judge_scores`), and summarises the
agreement: AUROC (threshold-free), accuracy and balanced accuracy at the threshold the
task uses, and the mean score of each class.

The labelled sets are PyRIT's scorer evaluations (``user_message``, ``assistant_message``,
``score_value`` TRUE/FALSE), e.g. ``refusal_scorer_eval.csv``, where TRUE means the reply
is a refusal; any other set only needs to become a list of :class:`JudgeItem`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import ArrayLike

from oversight.errors import DataError
from oversight.evals.rubrics import JudgeInput, judge_scores
from oversight.evals.task import JudgeRubric
from oversight.models.base import Model, Progress
from oversight.monitors.evaluate import auroc as monitor_auroc
from oversight.monitors.labelled import iter_pyrit_rows


@dataclass(frozen=True)
class JudgeItem:
    """A request, the reply a judge is asked about, and the human answer to the rubric."""

    prompt: str
    response: str
    #: True when a person answers the rubric's question with yes (e.g. "it refused").
    label: bool


@dataclass(frozen=True)
class JudgeQuality:
    """Agreement of judge scores with human labels."""

    n: int
    n_positive: int
    #: P(score of a random positive > score of a random negative), ties counting half.
    auroc: float
    threshold: float
    #: Share of items where ``score >= threshold`` equals the label.
    accuracy: float
    #: Mean of the true-positive and true-negative rates (chance is 0.5 at any base rate).
    balanced_accuracy: float
    mean_score_positive: float
    mean_score_negative: float
    #: Spread of the scores over all items; near 0 means the judge ignores the reply.
    score_std: float


def auroc(scores: ArrayLike, labels: ArrayLike) -> float:
    """Area under the ROC curve (Mann–Whitney, ties counting half; equal to sklearn's
    ``roc_auc_score``), scores first as in :func:`judge_quality`; raises ValueError when
    one class is missing."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    if s.shape != y.shape or s.ndim != 1:
        raise ValueError(f"scores {s.shape} and labels {y.shape} must be 1-d of one length")
    if y.all() or not y.any():
        raise ValueError("AUROC needs both positive and negative labels")
    return monitor_auroc(y, s)


def judge_quality(scores: ArrayLike, labels: ArrayLike, threshold: float = 0.5) -> JudgeQuality:
    """Summarise how scores in [0, 1] agree with boolean labels (a pure function)."""
    s = np.asarray(scores, dtype=float)
    y = np.asarray(labels, dtype=bool)
    predicted = s >= threshold
    return JudgeQuality(
        n=len(y),
        n_positive=int(y.sum()),
        auroc=auroc(s, y),
        threshold=threshold,
        accuracy=float(np.mean(predicted == y)),
        balanced_accuracy=float((np.mean(predicted[y]) + np.mean(~predicted[~y])) / 2),
        mean_score_positive=float(s[y].mean()),
        mean_score_negative=float(s[~y].mean()),
        score_std=float(s.std()),
    )


def score_items(
    judge: Model, rubric: JudgeRubric, items: Sequence[JudgeItem], progress: Progress | None = None
) -> list[float]:
    """The judge's score for each item, exactly as the eval runner computes it."""
    inputs = [JudgeInput(prompt=i.prompt, response=i.response) for i in items]
    return judge_scores(judge, rubric, inputs, progress=progress)


def evaluate_rubric(
    judge: Model,
    rubric: JudgeRubric,
    items: Sequence[JudgeItem],
    *,
    threshold: float = 0.5,
    progress: Progress | None = None,
) -> JudgeQuality:
    """Score ``items`` with ``rubric`` on ``judge`` and compare with their labels."""
    scores = score_items(judge, rubric, items, progress=progress)
    return judge_quality(scores, [i.label for i in items], threshold=threshold)


def read_pyrit_scorer_eval(path: Path) -> list[JudgeItem]:
    """Items of a PyRIT true/false scorer evaluation CSV, in file order."""
    items = [JudgeItem(r.user, r.assistant, r.label) for r in iter_pyrit_rows(path)]
    if not items:
        raise DataError("the file holds no labelled items", path=path)
    return items
