"""Supervised linear probes on activations: logistic regression and difference of means.

Both kinds become one :class:`LinearProbe`, ``p(true | x) = sigmoid(((x - mean) / scale) · weight +
bias)``, so a saved probe (:mod:`oversight.interp.probe_file`) and the probe monitor do not care
how it was trained:

* **logistic** — features standardised with the training mean and std, scikit-learn's
  ``LogisticRegression`` with ``C`` chosen by grouped cross-validation on the training items only
  (the liblinear solver: a few times faster than lbfgs when there are fewer items than features;
  it also penalises the intercept, which is near zero on standardised, balanced features);
* **mean difference** — direction ``mean(true) - mean(false)`` (no standardisation), the
  threshold on the projection chosen to maximise training accuracy, the scale set so that one
  unit of logit is one standard deviation of the training projections.

Accuracies come with Wilson intervals (:func:`oversight.stats.intervals.wilson_ci`). A layer sweep
fits each kind at every layer and picks the best layer on the *validation* items, never on test.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import torch
from numpy.typing import NDArray

from oversight.errors import SpecError
from oversight.interp.trace import capture
from oversight.stats.intervals import wilson_ci

ProbeKind = Literal["logistic", "mean_difference"]
PROBE_KINDS: tuple[ProbeKind, ...] = ("logistic", "mean_difference")
#: "last" token of the prompt, or a token index (negative counts from the prompt's end).
Position = Literal["last"] | int
DEFAULT_CS = (0.001, 0.01, 0.1, 1.0, 10.0)
Array = NDArray[np.float64]


@dataclass
class LinearProbe:
    kind: str
    mean: Array  # [d] subtracted first
    scale: Array  # [d] divided by next
    weight: Array  # [d]
    bias: float
    details: dict[str, Any] = field(default_factory=dict)  # C, CV accuracy, threshold…

    def logit(self, x: NDArray[Any]) -> Array:
        z = (np.asarray(x, dtype=np.float64) - self.mean) / self.scale
        return np.asarray(z @ self.weight + self.bias, dtype=np.float64)

    def predict_proba(self, x: NDArray[Any]) -> Array:
        """P(label 1 = true) per row."""
        return np.asarray(1.0 / (1.0 + np.exp(-np.clip(self.logit(x), -500, 500))), dtype=np.float64)

    def predict(self, x: NDArray[Any]) -> NDArray[np.int64]:
        return (self.logit(x) >= 0).astype(np.int64)

    @property
    def direction(self) -> Array:
        """The probe's direction in activation space (unit length)."""
        raw = self.weight / self.scale
        return np.asarray(raw / (np.linalg.norm(raw) or 1.0), dtype=np.float64)


@dataclass(frozen=True)
class Accuracy:
    correct: int
    n: int
    low: float
    high: float

    @property
    def value(self) -> float:
        return self.correct / self.n if self.n else float("nan")

    def to_dict(self) -> dict[str, float | int]:
        return {"value": self.value, "ci_low": self.low, "ci_high": self.high, "n": self.n, "correct": self.correct}


def accuracy(predicted: NDArray[Any] | Sequence[int], labels: NDArray[Any] | Sequence[int]) -> Accuracy:
    """Share of correct predictions with a 95% Wilson interval."""
    pred, y = np.asarray(predicted).astype(int), np.asarray(labels).astype(int)
    if pred.shape != y.shape:
        raise ValueError(f"{pred.shape[0]} predictions for {y.shape[0]} labels")
    if y.size == 0:
        raise ValueError("accuracy of zero items")
    correct = int((pred == y).sum())
    low, high = wilson_ci(correct, int(y.size))
    return Accuracy(correct, int(y.size), low, high)


# -- fitting ------------------------------------------------------------------------------------


def _check(x: NDArray[Any], y: NDArray[Any] | Sequence[int]) -> tuple[Array, NDArray[np.int64]]:
    xs, ys = np.asarray(x, dtype=np.float64), np.asarray(y).astype(np.int64)
    if xs.ndim != 2 or ys.shape != (xs.shape[0],):
        raise ValueError(f"features must be [n, d] with n labels; got {xs.shape} and {ys.shape}")
    if set(np.unique(ys).tolist()) != {0, 1}:
        raise ValueError("training needs both true (1) and false (0) items")
    if not np.isfinite(xs).all():
        raise ValueError("features hold NaN or infinite values")
    return xs, ys


def fit_logistic(
    x: NDArray[Any],
    y: NDArray[Any] | Sequence[int],
    *,
    groups: Sequence[str] | None = None,
    cs: Sequence[float] = DEFAULT_CS,
    folds: int = 5,
    seed: int = 0,
) -> LinearProbe:
    """Standardise, choose ``C`` by (grouped) k-fold CV on these items, refit on all of them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GroupKFold, StratifiedKFold

    xs, ys = _check(x, y)
    mean, scale = xs.mean(0), xs.std(0)
    scale = np.where(scale > 1e-8 * max(float(scale.max()), 1e-30), scale, 1.0)
    z = (xs - mean) / scale
    k = min(folds, int(np.bincount(ys).min()))
    cv_scores: dict[float, float] = {}
    if k >= 2 and len(cs) > 1:
        if groups is not None and len(set(groups)) >= k:
            splits = list(GroupKFold(n_splits=k).split(z, ys, groups=list(groups)))
        else:
            splits = list(StratifiedKFold(n_splits=k, shuffle=True, random_state=seed).split(z, ys))
        for c in cs:
            hits = 0
            for tr, va in splits:
                if len(np.unique(ys[tr])) < 2:
                    continue
                model = LogisticRegression(C=c, solver="liblinear", max_iter=2000).fit(z[tr], ys[tr])
                hits += int((model.predict(z[va]) == ys[va]).sum())
            cv_scores[c] = hits / len(ys)
        best_c = max(cs, key=lambda c: (cv_scores[c], -c))  # ties: the stronger regulariser
    else:
        best_c = cs[len(cs) // 2] if cs else 1.0
    model = LogisticRegression(C=best_c, solver="liblinear", max_iter=2000).fit(z, ys)
    details = {"C": best_c, "cv_accuracy": cv_scores.get(best_c), "cv_folds": k if cv_scores else 0}
    return LinearProbe("logistic", mean, scale, model.coef_[0].astype(np.float64), float(model.intercept_[0]), details)


def fit_mean_difference(x: NDArray[Any], y: NDArray[Any] | Sequence[int]) -> LinearProbe:
    """Direction mean(true) - mean(false); the threshold on it maximises training accuracy."""
    xs, ys = _check(x, y)
    mean = xs.mean(0)
    direction = xs[ys == 1].mean(0) - xs[ys == 0].mean(0)
    proj = (xs - mean) @ direction
    threshold = best_threshold(proj, ys)
    spread = float(proj.std()) or 1.0
    return LinearProbe(
        "mean_difference", mean, np.ones_like(mean), direction / spread, -threshold / spread,
        {"threshold": threshold, "train_accuracy": float(((proj >= threshold) == ys).mean())},
    )


def best_threshold(scores: NDArray[Any], labels: NDArray[Any]) -> float:
    """The cut (predict 1 at or above it) with the highest accuracy; the middle one among ties."""
    s, y = np.asarray(scores, dtype=np.float64), np.asarray(labels).astype(int)
    order = np.argsort(s)
    s_sorted, y_sorted = s[order], y[order]
    cuts = np.concatenate([[s_sorted[0] - 1.0], (s_sorted[:-1] + s_sorted[1:]) / 2, [s_sorted[-1] + 1.0]])
    # Predicting 1 for items i >= k: correct = zeros below k + ones from k on.
    zeros_below = np.concatenate([[0], np.cumsum(y_sorted == 0)])
    ones_from = int(y_sorted.sum()) - np.concatenate([[0], np.cumsum(y_sorted == 1)])
    correct = zeros_below + ones_from
    best = np.flatnonzero(correct == correct.max())
    return float(cuts[best[len(best) // 2]])


def fit_probe(kind: str, x: NDArray[Any], y: NDArray[Any] | Sequence[int], *, groups: Sequence[str] | None = None, seed: int = 0) -> LinearProbe:
    if kind == "logistic":
        return fit_logistic(x, y, groups=groups, seed=seed)
    if kind == "mean_difference":
        return fit_mean_difference(x, y)
    raise SpecError(f"unknown probe kind {kind!r}; choose one of {', '.join(PROBE_KINDS)}")


# -- features -----------------------------------------------------------------------------------


def positions_arg(position: Position) -> Literal["last"] | list[int]:
    if position == "last":
        return "last"
    if isinstance(position, int):
        return [position]
    raise SpecError(f"position must be 'last' or a token index, got {position!r}")


def parse_position(text: str) -> Position:
    """``"last"`` or an integer (``-1`` is the last token, ``0`` the first)."""
    if text == "last":
        return "last"
    try:
        return int(text)
    except ValueError:
        raise SpecError(f"position must be 'last' or a token index such as -2 or 0, got {text!r}") from None


def prompt_features(
    model: Any,
    tokenizer: Any,
    prompts: Sequence[str],
    sites: Sequence[str],
    *,
    position: Position = "last",
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> dict[str, Array]:
    """One capture pass: per site, the activation at ``position`` of each prompt, [n, d] float64."""
    acts = capture(model, tokenizer, prompts, list(sites), positions=positions_arg(position),
                   batch_size=batch_size, dtype=torch.float32, progress=progress)
    return {name: _rows(tensor) for name, tensor in acts.sites.items()}


def _rows(tensor: torch.Tensor) -> Array:
    array = tensor.float().numpy().astype(np.float64)
    return array.reshape(array.shape[0], -1) if array.ndim == 3 else array


# -- layer sweep --------------------------------------------------------------------------------


@dataclass(frozen=True)
class LayerScore:
    """One kind of probe at one site: fitted on ``fit``, scored on validation and test."""

    site: str
    kind: str
    validation: Accuracy | None
    test: Accuracy
    probe: LinearProbe

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "kind": self.kind, "validation": self.validation.to_dict() if self.validation else None,
                "test": self.test.to_dict(), "details": _plain(self.probe.details)}


def sweep(
    features: Mapping[str, NDArray[Any]],
    labels: Sequence[int],
    *,
    fit: Sequence[int],
    validation: Sequence[int],
    test: Sequence[int],
    groups: Sequence[str] | None = None,
    kinds: Sequence[str] = PROBE_KINDS,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> list[LayerScore]:
    """Every kind at every site (features already captured, one pass for all layers)."""
    y = np.asarray(labels, dtype=np.int64)
    fit_idx, val_idx, test_idx = (np.asarray(i, dtype=np.int64) for i in (fit, validation, test))
    fit_groups = [groups[i] for i in fit_idx] if groups is not None else None
    out = []
    for site, x in features.items():
        xs = np.asarray(x)
        for kind in kinds:
            probe = fit_probe(kind, xs[fit_idx], y[fit_idx], groups=fit_groups, seed=seed)
            val = accuracy(probe.predict(xs[val_idx]), y[val_idx]) if len(val_idx) else None
            out.append(LayerScore(site, kind, val, accuracy(probe.predict(xs[test_idx]), y[test_idx]), probe))
        if progress is not None:
            progress(1)
    return out


def best_by_validation(scores: Sequence[LayerScore], kind: str) -> LayerScore:
    """The site with the highest validation accuracy (earliest among ties); test never looked at."""
    mine = [s for s in scores if s.kind == kind]
    if not mine:
        raise ValueError(f"no scores of kind {kind!r}")
    return max(mine, key=lambda s: s.validation.value if s.validation else -1.0)


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, np.generic):
        return value.item()
    return value


# -- a whole probe run --------------------------------------------------------------------------


@dataclass
class ProbeRun:
    """Probes of each kind at each site on one split; ``chosen`` is the site per kind to use."""

    dataset: str
    n: int
    split_sizes: dict[str, int]
    position: Position
    scores: list[LayerScore]
    chosen: dict[str, LayerScore]
    rule: str  # how ``chosen`` was picked

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n": self.n,
            "split": self.split_sizes,
            "position": self.position,
            "per_layer": [s.to_dict() for s in self.scores],
            "chosen": {kind: s.to_dict() for kind, s in self.chosen.items()},
            "chosen_rule": self.rule,
        }


def run_probes(
    features: Mapping[str, NDArray[Any]],
    labels: Sequence[int],
    groups: Sequence[str],
    *,
    dataset: str,
    position: Position = "last",
    kinds: Sequence[str] = PROBE_KINDS,
    test_fraction: float = 0.3,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> ProbeRun:
    """Split by group and fit every kind at every site. With several sites a quarter of the
    training groups is held out as validation to choose the site; with one site all training
    items fit the probe."""
    from oversight.interp.contrast import Statement, split_by_group

    several = len(features) > 1
    items = [Statement("", int(y), str(g)) for y, g in zip(labels, groups, strict=True)]
    split = split_by_group(items, test_fraction=test_fraction, validation_fraction=0.25 if several else 0.0, seed=seed)
    scores = sweep(features, labels, fit=split.fit, validation=split.validation, test=split.test,
                   groups=groups, kinds=kinds, seed=seed, progress=progress)
    if several:
        chosen = {kind: best_by_validation(scores, kind) for kind in kinds}
        rule = "highest validation accuracy (earliest site among ties); test never used to choose"
    else:
        chosen = {s.kind: s for s in scores}
        rule = "the only site"
    return ProbeRun(dataset, len(items), split.to_dict(), position, scores, chosen, rule)
