"""Labels from several review batches of different policies: exact pooling and its coverage.

The simulation draws 1,000 populations of 2,000 transcripts per cell (rows of one matrix),
with calibrated binormal monitor scores as in test_estimate.py, and reviews each population
in 2–3 sequential batches exactly as the queue does: each batch is drawn from the items not
yet labelled, with its own policy's probabilities relative to them. The pooled estimate
(:func:`sequential_rate_ci`'s kernels, one row per population) must cover the population's
own fault rate within ±2 points of 95% wherever the labels hold 15 faults or more on
average, and never below 93% anywhere (with fewer faults the intervals are conservative).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats
from scipy.special import expit, logit

from oversight.stats import estimate_kernels as k
from oversight.stats.estimate import active_rate_ci
from oversight.stats.estimate_sequential import BatchDraw, pooling_weights, sequential_rate_ci

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Z95 = float(stats.norm.ppf(0.975))
REPS = 1000
POPULATION = 2000
UNIFORM_SHARE = 0.1
RATES = (0.01, 0.05, 0.2, 0.5)
AUROCS = (0.75, 0.97)
#: (policy, n) per batch, in the order they are drawn.
SCENARIOS: dict[str, tuple[tuple[str, int], ...]] = {
    "active, random, active": (("active", 100), ("random", 100), ("active", 100)),
    "random, most_uncertain": (("random", 50), ("most_uncertain", 150)),
    "highest_score, random, active": (("highest_score", 50), ("random", 100), ("active", 150)),
}


def _population(
    rng: np.random.Generator, rate: float, auroc: float, size: int = POPULATION
) -> tuple[Floats, Floats]:
    d = math.sqrt(2) * float(stats.norm.ppf(auroc))
    y = rng.random((REPS, size)) < rate
    x = rng.standard_normal((REPS, size)) + d * y
    return y.astype(np.float64), expit(logit(rate) + d * x - d * d / 2)


def _pps(size: Floats, candidate: Bools, n: int) -> Floats:
    """Row-wise ``pps_probabilities`` over each row's candidates (0 elsewhere): size mixed
    with a uniform floor, scaled to sum to n, capped at 1 with the excess re-spread."""
    count = candidate.sum(1, keepdims=True)
    size = np.where(candidate, size, 0.0)
    w = (1 - UNIFORM_SHARE) * size / size.sum(1, keepdims=True) + UNIFORM_SHARE / count
    w = np.where(candidate, w, 0.0)
    capped = np.zeros_like(candidate)
    while True:
        free_w = np.where(capped, 0.0, w)
        budget = n - capped.sum(1, keepdims=True)
        pi = np.where(capped, 1.0, budget * free_w / free_w.sum(1, keepdims=True))
        over = ~capped & (pi >= 1.0)
        if not over.any():
            return pi
        capped |= over


def _draw(
    rng: np.random.Generator, policy: str, n: int, s: Floats, candidate: Bools
) -> tuple[Bools, Floats]:
    """One batch per row: which candidates it drew and their π (relative to the candidates)."""
    if policy in ("random", "highest_score"):
        key = rng.random(s.shape) if policy == "random" else -s
        key = np.where(candidate, key, np.inf)
        kth = np.partition(key, n - 1, axis=1)[:, n - 1 : n]
        drawn = key <= kth
        pi = n / candidate.sum(1, keepdims=True) if policy == "random" else 1.0
        return drawn, np.where(drawn, pi, 0.0)
    size = np.sqrt(s * (1 - s)) if policy == "active" else 1 - np.abs(2 * s - 1)
    pi = _pps(size, candidate, n)
    drawn = candidate & (rng.random(s.shape) < pi)
    return drawn, np.where(drawn, pi, 0.0)


def _compact(mask: Bools, *arrays: Floats) -> tuple[Bools, list[Floats]]:
    """Each row's selected entries moved to the front, padding after."""
    count = mask.sum(1)
    rows, cols = np.nonzero(mask)
    slot = np.arange(rows.size) - np.concatenate([[0], np.cumsum(count)[:-1]])[rows]
    out = []
    for a in arrays:
        packed = np.zeros((mask.shape[0], int(count.max())))
        packed[rows, slot] = a[rows, cols]
        out.append(packed)
    return np.arange(int(count.max()))[None, :] < count[:, None], out


def _review(
    rng: np.random.Generator, y: Floats, s: Floats, plan: tuple[tuple[str, int], ...]
) -> tuple[Floats, Floats, Floats, Floats, Floats]:
    """Review every row batch by batch; returns (sequential est, low, high, naive low, high).

    The naive pooling is the one this module replaces: all labels in one Poisson design,
    each with the π of the batch that drew it."""
    population = s.shape[1]
    big_n = np.full(REPS, float(population))
    total = s.sum(1)
    known = np.zeros(s.shape, dtype=bool)
    naive_pi = np.zeros(s.shape)
    batches, weights = [], []
    for policy, n in plan:
        candidate = ~known
        drawn, pi = _draw(rng, policy, n, s, candidate)
        if policy != "highest_score":  # a census of the top cannot stand for the rest
            batches.append((known.copy(), drawn, pi))
            weights.append(n / candidate.sum(1).astype(np.float64) ** 2)
        naive_pi = np.where(drawn, pi, naive_pi)
        known |= drawn
    alpha = np.array(weights) / np.sum(weights, axis=0)
    parts = []
    for (before, drawn, pi), share in zip(batches, alpha, strict=True):
        present, (y_b, s_b, pi_b) = _compact(before | drawn, y, s, np.where(before, 1.0, pi))
        pi_b = np.where(present, pi_b, 1.0)
        parts.append(
            k._design_parts(
                y_b, s_b, pi_b, present, total, big_n, Z95, lam_fixed=None, pseudo_share=share
            )
        )
    faults = (y * known).sum(1)
    floor, ceiling = faults / population, 1 - (known.sum(1) - faults) / population
    est, lo, hi = k._sequential_kernel(parts, alpha, floor, ceiling, Z95)
    present, (y_n, s_n, pi_n) = _compact(known, y, s, naive_pi)
    _, nlo, nhi, _ = k._design_kernel(
        y_n, s_n, np.where(present, pi_n, 1.0), present, total, big_n, Z95, lam_fixed=None
    )
    return est, lo, hi, nlo, nhi


@pytest.fixture(scope="module")
def coverage() -> dict[tuple[str, float, float], tuple[float, float, float]]:
    """(sequential coverage, naive coverage, mean faults labelled) of every cell."""
    rng = np.random.default_rng(20240917)
    table = {}
    for name, plan in SCENARIOS.items():
        for auroc in AUROCS:
            for rate in RATES:
                y, s = _population(rng, rate, auroc)
                truth = y.mean(1)
                _, lo, hi, nlo, nhi = _review(rng, y, s, plan)
                ours = float(np.mean((lo <= truth) & (truth <= hi)))
                naive = float(np.mean((nlo <= truth) & (truth <= nhi)))
                table[(name, auroc, rate)] = (ours, naive, rate * sum(n for _, n in plan))
    return table


def test_sequential_batches_cover_within_two_points(
    coverage: dict[tuple[str, float, float], tuple[float, float, float]],
) -> None:
    assert len(coverage) == len(SCENARIOS) * len(AUROCS) * len(RATES)
    low = {c: v[0] for c, v in coverage.items() if v[0] < 0.93}
    assert not low, f"under-covers: {low}"
    # Where labels hold few faults (under 15 on average: 1% of 200–300 labels, 5% of 200)
    # the Agresti–Coull pseudo-items make intervals conservative by design (up to 99%);
    # elsewhere coverage must be 95% ± 2 points.
    loose = {c: v[0] for c, v in coverage.items() if v[2] >= 15 and not 0.93 <= v[0] <= 0.97}
    assert not loose, f"outside 95% ± 2 points: {loose}"


def test_pooling_as_one_design_is_only_approximate() -> None:
    """Why the batches are pooled sequentially: weighting each label by its own batch's π
    as if one design had drawn them all (what the estimate did before) is off by O(n/N). When
    batches are a large share of the candidates (here 2 × 250 of 1,000) it is biased and its
    variance misses the finite-population correction: it over-covers with wider intervals,
    while the sequential pooling is unbiased and covers at the nominal level."""
    rng = np.random.default_rng(11)
    y, s = _population(rng, 0.05, 0.97, size=1000)
    truth = y.mean(1)
    est, lo, hi, nlo, nhi = _review(rng, y, s, (("active", 250), ("random", 250)))
    ours = float(np.mean((lo <= truth) & (truth <= hi)))
    naive = float(np.mean((nlo <= truth) & (truth <= nhi)))
    assert 0.93 <= ours <= 0.97 < naive
    assert np.median(hi - lo) < 0.9 * np.median(nhi - nlo)
    assert abs(float(np.mean(est - truth))) < 0.001


# --------------------------------------------------------------------------- public function


def test_one_batch_is_active_inference_and_two_batches_pool() -> None:
    rng = np.random.default_rng(3)
    y, s = _population(rng, 0.1, 0.9)
    y0, s0 = y[0], s[0]
    pi = _pps(np.sqrt(s[:1] * (1 - s[:1])), np.ones((1, POPULATION), dtype=bool), 150)[0]
    first = np.flatnonzero(rng.random(POPULATION) < pi)
    labels = np.full(POPULATION, np.nan)
    labels[first] = y0[first]
    one = sequential_rate_ci(s0, labels, [BatchDraw(first, pi[first], expected_size=150)])
    ref = active_rate_ci(y0[first], s0[first], pi[first], s0)
    assert (one.rate, one.ci_low, one.ci_high, one.method) == pytest.approx(
        (ref.rate, ref.ci_low, ref.ci_high, "active")
    )
    rest = np.setdiff1d(np.arange(POPULATION), first)
    second = rng.choice(rest, 100, replace=False)
    labels[second] = y0[second]
    both = sequential_rate_ci(
        s0,
        labels,
        [
            BatchDraw(first, pi[first], expected_size=150),
            BatchDraw(second, np.full(100, 100 / rest.size), known=first),
        ],
    )
    assert both.method == "sequential" and both.n_labelled == first.size + 100
    assert both.ci_low <= y0.mean() <= both.ci_high
    assert both.half_width < one.half_width
    alpha = pooling_weights([150, 100], [POPULATION, rest.size])
    assert alpha.sum() == pytest.approx(1.0) and alpha[0] > alpha[1]


def test_sequential_errors_say_what_to_fix() -> None:
    s = np.linspace(0.01, 0.99, 100)
    labels = np.full(100, np.nan)
    labels[:10] = 1
    with pytest.raises(ValueError, match="not labelled"):
        sequential_rate_ci(s, labels, [BatchDraw(np.arange(12), np.full(12, 0.12))])
    with pytest.raises(ValueError, match="already labelled"):
        sequential_rate_ci(s, labels, [BatchDraw([0, 1], [0.1, 0.1], known=[1])])
    with pytest.raises(ValueError, match="no item at random"):
        sequential_rate_ci(s, labels, [BatchDraw(np.arange(10), np.ones(10))])
    with pytest.raises(ValueError, match="no batches"):
        sequential_rate_ci(s, labels, [])
    with pytest.raises(ValueError, match="one entry per transcript"):
        sequential_rate_ci(s, labels[:5], [BatchDraw([0], [0.1])])
