"""How good is a monitor? Precision, recall, F1, FPR and AUROC against human labels, with CIs.

Threshold metrics (precision, recall, F1, FPR, accuracy) use the monitor's own labels, as a
deployed monitor would flag; AUROC uses its scores. Every metric gets a percentile
bootstrap interval from the same resamples of transcripts (``n_boot`` of them, seeded, so a
re-run gives the same figures). A resample where a metric is undefined (no predicted
positives for precision, one class only for AUROC) is skipped for that metric.

Errored verdicts (:meth:`Verdict.failed`) are left out of every metric and counted in
``n_errors``: a monitor that errors a lot is shown as such, not silently scored as "fine".

Calibration: scores are binned into equal-width bins; each bin shows its mean score and
the observed fault rate with a Wilson interval, and the expected calibration error
(ECE, the n-weighted mean gap) and Brier score summarise it.

The metric functions take plain arrays and do no I/O (they could move to ``stats/``).
"""

from __future__ import annotations

import math
from collections.abc import Hashable, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.stats import rankdata

from oversight.monitors.base import Monitor, Progress, Trainable, Verdict, run_safely
from oversight.monitors.labelled import LabelledSet, load_labelled, load_labelled_set
from oversight.stats.intervals import wilson_ci
from oversight.transcripts import TranscriptLike

__all__ = [
    "CalibrationBin",
    "Estimate",
    "LabelledSet",
    "MonitorQuality",
    "auroc",
    "calibration_plot_svg",
    "cross_fitted_verdicts",
    "evaluate_monitor",
    "evaluate_verdicts",
    "load_labelled",
    "load_labelled_set",
    "quality_from_scores",
]


@dataclass(frozen=True)
class Estimate:
    """A point estimate with its bootstrap confidence interval."""

    value: float
    low: float
    high: float

    def to_dict(self) -> dict[str, float | None]:
        return {k: (None if math.isnan(v) else v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class CalibrationBin:
    low: float
    high: float
    n: int
    mean_score: float
    fault_rate: float
    rate_low: float
    rate_high: float


@dataclass(frozen=True)
class MonitorQuality:
    """A monitor measured against labels (1 = fault)."""

    n: int
    n_positive: int
    n_errors: int
    tp: int
    fp: int
    tn: int
    fn: int
    precision: Estimate
    recall: Estimate
    f1: Estimate
    fpr: Estimate
    accuracy: Estimate
    auroc: Estimate
    brier: float
    ece: float
    calibration: tuple[CalibrationBin, ...]
    confidence: float
    n_boot: int
    seed: int

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in asdict(self).items():
            if isinstance(getattr(self, key), Estimate):
                out[key] = getattr(self, key).to_dict()
            elif key == "calibration":
                out[key] = [_clean(b) for b in value]
            else:
                out[key] = None if isinstance(value, float) and math.isnan(value) else value
        return out


def _clean(d: dict[str, Any]) -> dict[str, Any]:
    return {k: (None if isinstance(v, float) and math.isnan(v) else v) for k, v in d.items()}


# ------------------------------------------------------------------ metrics
def _safe_div(num: NDArray[np.float64], den: NDArray[np.float64]) -> NDArray[np.float64]:
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(den > 0, num / np.where(den > 0, den, 1), np.nan)


def _threshold_metrics(y: NDArray[np.int_], p: NDArray[np.int_]) -> dict[str, NDArray[np.float64]]:
    """Row-wise metrics for 2-D arrays (one resample per row)."""
    tp = (y & p).sum(-1).astype(float)
    fp = ((1 - y) & p).sum(-1).astype(float)
    fn = (y & (1 - p)).sum(-1).astype(float)
    tn = ((1 - y) & (1 - p)).sum(-1).astype(float)
    precision = _safe_div(tp, tp + fp)
    recall = _safe_div(tp, tp + fn)
    return {
        "precision": precision,
        "recall": recall,
        "f1": _safe_div(2 * tp, 2 * tp + fp + fn),
        "fpr": _safe_div(fp, fp + tn),
        "accuracy": (tp + tn) / y.shape[-1],
    }


def _auroc_rows(y: NDArray[np.int_], s: NDArray[np.float64]) -> NDArray[np.float64]:
    """Mann–Whitney AUROC per row, ties counted half (equals sklearn's roc_auc_score)."""
    ranks = rankdata(s, axis=-1)
    n_pos = y.sum(-1).astype(float)
    n_neg = y.shape[-1] - n_pos
    u = (ranks * y).sum(-1) - n_pos * (n_pos + 1) / 2
    return _safe_div(u, n_pos * n_neg)


def auroc(labels: ArrayLike, scores: ArrayLike) -> float:
    """Area under the ROC curve; NaN when only one class is present."""
    y = np.asarray(labels, dtype=int)[None, :]
    s = np.asarray(scores, dtype=float)[None, :]
    return float(_auroc_rows(y, s)[0])


def quality_from_scores(
    labels: ArrayLike,
    scores: ArrayLike,
    predicted: ArrayLike,
    *,
    n_errors: int = 0,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    n_bins: int = 10,
) -> MonitorQuality:
    """All metrics from arrays of labels (0/1), scores in [0, 1] and predicted labels (0/1)."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    p = np.asarray(predicted, dtype=int)
    if not (len(y) == len(s) == len(p)):
        raise ValueError(f"lengths differ: {len(y)} labels, {len(s)} scores, {len(p)} predictions")
    if len(y) == 0:
        raise ValueError("no scored items to evaluate")
    if not (set(np.unique(y)) <= {0, 1} and set(np.unique(p)) <= {0, 1}):
        raise ValueError("labels and predictions must be 0 or 1")
    if not np.isfinite(s).all():
        raise ValueError("scores must be finite (drop errored verdicts first)")
    point = {k: float(v) for k, v in _threshold_metrics(y, p).items()}
    point["auroc"] = auroc(y, s)
    rng = np.random.default_rng(seed)
    alpha = (1 - confidence) / 2
    lows: dict[str, float] = {}
    highs: dict[str, float] = {}
    if n_boot > 0:
        idx = rng.integers(0, len(y), size=(n_boot, len(y)))
        boot = _threshold_metrics(y[idx], p[idx])
        boot["auroc"] = _auroc_rows(y[idx], s[idx])
        for key, values in boot.items():
            finite = values[np.isfinite(values)]
            lows[key], highs[key] = (
                (float(np.quantile(finite, alpha)), float(np.quantile(finite, 1 - alpha)))
                if finite.size else (math.nan, math.nan)
            )

    def est(key: str) -> Estimate:
        return Estimate(point[key], lows.get(key, math.nan), highs.get(key, math.nan))

    bins = calibration_bins(y, s, n_bins=n_bins, confidence=confidence)
    ece = sum(b.n * abs(b.mean_score - b.fault_rate) for b in bins) / len(y)
    return MonitorQuality(
        n=len(y), n_positive=int(y.sum()), n_errors=n_errors,
        tp=int((y & p).sum()), fp=int(((1 - y) & p).sum()),
        tn=int(((1 - y) & (1 - p)).sum()), fn=int((y & (1 - p)).sum()),
        precision=est("precision"), recall=est("recall"), f1=est("f1"), fpr=est("fpr"),
        accuracy=est("accuracy"), auroc=est("auroc"),
        brier=float(np.mean((s - y) ** 2)), ece=float(ece), calibration=tuple(bins),
        confidence=confidence, n_boot=n_boot, seed=seed,
    )


def calibration_bins(
    labels: ArrayLike, scores: ArrayLike, *, n_bins: int = 10, confidence: float = 0.95
) -> list[CalibrationBin]:
    """Equal-width score bins (empty ones omitted); the last bin includes 1.0."""
    y = np.asarray(labels, dtype=int)
    s = np.asarray(scores, dtype=float)
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    which = np.clip(np.digitize(s, edges[1:-1], right=False), 0, n_bins - 1)
    out = []
    for b in range(n_bins):
        mask = which == b
        n = int(mask.sum())
        if n == 0:
            continue
        faults = int(y[mask].sum())
        low, high = wilson_ci(faults, n, confidence)
        out.append(CalibrationBin(float(edges[b]), float(edges[b + 1]), n,
                                  float(s[mask].mean()), faults / n, low, high))
    return out


def evaluate_verdicts(
    verdicts: Sequence[Verdict],
    labels: Sequence[int],
    *,
    n_boot: int = 1000,
    seed: int = 0,
    confidence: float = 0.95,
    n_bins: int = 10,
) -> MonitorQuality:
    """Metrics over the verdicts that succeeded; errored ones are counted, not scored."""
    if len(verdicts) != len(labels):
        raise ValueError(f"{len(verdicts)} verdicts but {len(labels)} labels")
    keep = [i for i, v in enumerate(verdicts) if v.ok]
    return quality_from_scores(
        [labels[i] for i in keep], [verdicts[i].score for i in keep], [verdicts[i].label for i in keep],
        n_errors=len(verdicts) - len(keep), n_boot=n_boot, seed=seed, confidence=confidence, n_bins=n_bins,
    )


def evaluate_monitor(
    monitor: Monitor,
    transcripts: Sequence[TranscriptLike],
    labels: Sequence[int],
    n_boot: int = 1000,
    seed: int = 0,
    *,
    confidence: float = 0.95,
    n_bins: int = 10,
    progress: Progress | None = None,
) -> MonitorQuality:
    """Run ``monitor`` on labelled transcripts (safely) and measure it."""
    verdicts = run_safely(monitor, transcripts, progress=progress)
    return evaluate_verdicts(verdicts, labels, n_boot=n_boot, seed=seed, confidence=confidence, n_bins=n_bins)


def cross_fitted_verdicts(
    monitor: Trainable,
    transcripts: Sequence[TranscriptLike],
    labels: Sequence[int],
    *,
    folds: int = 5,
    seed: int = 0,
    groups: Sequence[Hashable] | None = None,
    progress: Progress | None = None,
) -> list[Verdict]:
    """Out-of-fold verdicts: each transcript scored by the monitor trained on the other folds.

    Stratified ``folds``-fold split (seeded). Every item is scored exactly once by a model
    that never saw it, so the metrics are honest held-out figures that still use every
    labelled item. ``groups`` keeps items of one group in one fold (e.g. all answers to the
    same question, which would otherwise leak between training and test). The monitor is
    left trained on the last fold's training part.
    """
    from sklearn.model_selection import StratifiedGroupKFold, StratifiedKFold

    if not isinstance(monitor, Monitor):
        raise TypeError("cross-fitting needs a monitor (info + score) that is also trainable")
    y = np.asarray(labels, dtype=int)
    verdicts: list[Verdict | None] = [None] * len(y)
    if groups is None:
        splits = StratifiedKFold(n_splits=folds, shuffle=True, random_state=seed).split(np.zeros(len(y)), y)
    else:
        if len(groups) != len(y):
            raise ValueError(f"{len(groups)} groups for {len(y)} items")
        codes = np.unique(np.asarray([str(g) for g in groups]), return_inverse=True)[1]
        splitter = StratifiedGroupKFold(n_splits=folds, shuffle=True, random_state=seed)
        splits = splitter.split(np.zeros(len(y)), y, codes)
    for train, test in splits:
        monitor.fit([transcripts[i] for i in train], y[train].tolist())
        for i, v in zip(test, run_safely(monitor, [transcripts[i] for i in test], progress=progress), strict=True):
            verdicts[i] = v
    return [v for v in verdicts if v is not None]


# ---------------------------------------------------------------------- plot
def calibration_plot_svg(quality: MonitorQuality, *, plot_id: str = "calibration", title: str = "") -> str:
    """A reliability diagram as inline SVG (the report's style): observed fault rate per
    score bin with Wilson intervals, against the diagonal of perfect calibration."""
    from oversight.report.plots import FIT, GRID, INK, MUTED, figure, to_svg

    bins = quality.calibration
    with figure(3.2, 3.0) as (fig, ax):
        ax.plot([0, 1], [0, 1], color=MUTED, linewidth=0.9, linestyle=(0, (3, 2)), zorder=0)
        if bins:
            x = [b.mean_score for b in bins]
            yv = [b.fault_rate for b in bins]
            err = [[b.fault_rate - b.rate_low for b in bins], [b.rate_high - b.fault_rate for b in bins]]
            sizes = [3.0 + 6.0 * math.sqrt(b.n / max(quality.n, 1)) for b in bins]
            ax.errorbar(x, yv, yerr=err, fmt="none", ecolor=FIT, elinewidth=1.2, capsize=2, alpha=0.6)
            for xi, yi, size in zip(x, yv, sizes, strict=True):
                ax.plot([xi], [yi], "o", color=INK, markersize=size, markeredgecolor="white",
                        markeredgewidth=0.8)
        ax.set_xlim(-0.02, 1.02)
        ax.set_ylim(-0.02, 1.02)
        ax.set_xlabel("monitor score (bin mean)")
        ax.set_ylabel("observed fault rate")
        ax.set_aspect("equal")
        ax.grid(color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        caption = f"n={quality.n} · ECE {quality.ece:.3f} · Brier {quality.brier:.3f}"
        ax.set_title(f"{title}\n{caption}" if title else caption, fontsize=8, color=INK)
        return to_svg(fig, plot_id)
