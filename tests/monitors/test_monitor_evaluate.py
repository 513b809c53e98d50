from __future__ import annotations

import math

import numpy as np
import pytest
from monitor_helpers import FixedMonitor, chat
from sklearn.metrics import f1_score, precision_score, recall_score, roc_auc_score

from oversight.monitors.base import Verdict
from oversight.monitors.evaluate import (
    auroc,
    calibration_plot_svg,
    evaluate_monitor,
    evaluate_verdicts,
    quality_from_scores,
)
from oversight.report.plots import check_svg


def fixed_data(n: int = 300) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    y = rng.integers(0, 2, n)
    s = np.clip(0.35 * y + rng.normal(0.35, 0.2, n), 0, 1).round(2)  # rounding makes ties
    return y, s, (s >= 0.5).astype(int)


def test_point_estimates_match_sklearn() -> None:
    y, s, p = fixed_data()
    q = quality_from_scores(y, s, p, n_boot=500, seed=1)
    assert q.precision.value == pytest.approx(precision_score(y, p))
    assert q.recall.value == pytest.approx(recall_score(y, p))
    assert q.f1.value == pytest.approx(f1_score(y, p))
    assert q.auroc.value == pytest.approx(roc_auc_score(y, s))
    assert q.fpr.value == pytest.approx(((p == 1) & (y == 0)).sum() / (y == 0).sum())
    assert (q.tp, q.fp, q.tn, q.fn) == (
        int(((p == 1) & (y == 1)).sum()), int(((p == 1) & (y == 0)).sum()),
        int(((p == 0) & (y == 0)).sum()), int(((p == 0) & (y == 1)).sum()),
    )
    for est in (q.precision, q.recall, q.f1, q.fpr, q.auroc, q.accuracy):
        assert est.low < est.value < est.high
    assert q.f1.high - q.f1.low < 0.2
    assert q == quality_from_scores(y, s, p, n_boot=500, seed=1)  # seeded: reproducible
    assert sum(b.n for b in q.calibration) == len(y)
    assert q.brier == pytest.approx(np.mean((s - y) ** 2))


def test_auroc_handles_ties_and_one_class() -> None:
    assert auroc([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]) == pytest.approx(roc_auc_score([0, 0, 1, 1], [0.1, 0.5, 0.5, 0.9]))
    assert math.isnan(auroc([1, 1], [0.2, 0.3]))


def test_undefined_metrics_are_nan_not_zero() -> None:
    q = quality_from_scores([0, 1, 0, 1], [0.1, 0.2, 0.3, 0.4], [0, 0, 0, 0], n_boot=50)
    assert math.isnan(q.precision.value) and q.recall.value == 0.0
    assert q.to_dict()["precision"]["value"] is None


def test_errored_verdicts_are_counted_not_scored() -> None:
    verdicts = [Verdict(0.9, 1), Verdict.failed("boom"), Verdict(0.1, 0), Verdict(0.2, 0)]
    q = evaluate_verdicts(verdicts, [1, 1, 0, 0], n_boot=50)
    assert (q.n, q.n_errors, q.recall.value) == (3, 1, 1.0)


def test_evaluate_monitor_runs_safely_and_plots_a_clean_svg() -> None:
    y, s, _ = fixed_data(60)
    batch = [chat(i, "x") for i in range(60)]
    monitor = FixedMonitor("m", {i: float(s[i]) for i in range(60)}, crash=[5])
    q = evaluate_monitor(monitor, batch, y.tolist(), n_boot=100)
    assert q.n == 59 and q.n_errors == 1
    svg = calibration_plot_svg(q, plot_id="cal-test", title="m on <fixed> & data")
    check_svg(svg)
    assert svg.startswith("<svg") and "ECE" in svg and "&lt;fixed&gt;" in svg
