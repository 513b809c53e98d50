"""The fault rate over N transcripts from n human labels plus monitor scores, with valid CIs.

A reviewer labels n of the N transcripts (1 = fault, 0 = fine); a monitor has scored all N.
The estimand is the fault rate of the N, ``θ = (1/N) Σ_all y_i``. Every estimator here is a
*difference estimator*: predict each item from its monitor score, ``λ·f_i``, and correct the
prediction's bias with the labelled items' residuals ``y_i − λ·f_i``. Unbiasedness comes from
the labels (whatever the monitor's quality); the monitor only buys precision, in proportion
to the label variance it explains.

Estimators (pure functions over arrays, no I/O):

* :func:`wilson_rate_ci` and :func:`classical_rate_ci`: labels alone, from a simple random
  sample. Wilson's score interval with Brown, Cai & DasGupta's (2001, §4.1.1) small-count
  modification (below); the Agresti–Coull interval (Agresti & Coull 1998).
* :func:`ppi_rate_ci` / :func:`ppi_population_rate_ci`: prediction-powered inference with
  power tuning (PPI++, Angelopoulos, Duchi & Zrnic 2023) for a simple random sample:
  ``θ̂ = ȳ + λ̂·(f̄_population − f̄_labelled)`` with ``λ̂ = Ĉov(y, f)/V̂ar(f)`` clipped to
  [0, 1] (λ = 0 is the classical estimate, λ = 1 plain PPI).
* :func:`active_rate_ci`: active inference (Zrnic & Candès 2024) for any design that records
  each labelled item's inclusion probability π_i: items chosen by the queue with probability
  tied to the monitor's uncertainty, deterministic top-k picks (π = 1), or both.
* :func:`stratified_rate_ci`: the stratified estimator ``Σ_h W_h ȳ_h`` over strata such as
  monitor-score bins, with :func:`proportional_allocation` and :func:`neyman_allocation`.
* :func:`estimate_fault_rate`: one entry point that picks the best valid method for the design.

**Why plain CLT intervals fail, and the construction used instead.** With few faults among
the labels the residuals ``y − λf`` are very skewed: faults the monitor missed (y = 1, f ≈ 0)
are rare and large. A sample that happens to hold no misses has a small estimate *and* a
small variance estimate, so ``θ̂ ± z·se`` excludes the truth from above far more often than
α/2. In our simulations (monitor AUROC 0.97) a 95% PPI++ CLT interval covers 38% at a 1% rate
with n = 50, 59% at n = 100 and 83% at a 5% rate with n = 50; the normal interval of the
active design's estimator fails the same way (52–84% at a 1% rate, n = 50..1,000).

Every interval with a monitor here is the **Agresti–Coull construction carried over to the
difference estimator**: before computing the interval, add ``z²/2`` pseudo-faults and
``z²/2`` pseudo-fine items (z = 1.96 at 95%, so about two of each) whose monitor score is the
population mean score, i.e. items the monitor says nothing about; then use the normal
interval of the augmented estimator, ``centre ± z·se``. The pseudo-items stand for the
miss not yet seen: a pseudo-fault's residual ``1 − λ·f̄`` is as large as a real miss's, so
the variance never collapses when the sample shows none, and the centre moves towards ½
by O(1/n), as Wilson's does. With λ = 0 the construction *is* the Agresti–Coull interval
(Agresti & Coull 1998, "add two successes and two failures"; Agresti & Caffo 2000 carry the
same idea to differences of proportions), whose exact coverage we checked to stay within
[93.5%, 98.6%] for every n in 50..1,000 and rate in 1%..50%; for n large the pseudo-items'
weight (about 4/n) vanishes and the interval becomes PPI++'s CLT interval. The number of
pseudo-items is scaled by the finite-population factor (``1 − n/N``, or ``1 − π̄`` for a
design): Agresti–Coull on the effective sample size ``n/(1 − n/N)``, so that they vanish when
every transcript is labelled. The reported point estimate is the unaugmented one (for PPI++
exactly ``ppi_py.ppi_mean_pointestimate``); the interval is widened to contain it if the
O(1/n) shift of the centre ever left it out. Simulated coverage (2,000 populations of 4,000
per cell, ``benchmarks/labels_needed.py --coverage``; 1,000 in tests/stats/test_estimate.py)
over rates {1, 5, 20, 50}% × n {50, 100, 300, 1000} × monitors of AUROC {0.75, 0.9, 0.97}:
at least 94.2% for Wilson, PPI++, stratified and active designs, against a minimum of 38%
(PPI++) and 52% (active) for the plain normal intervals. The price is paid where faults are
few: at a 1% rate and n ≤ 100 the intervals cover 98–100%, and for a ±2-point interval at a
1% rate PPI++ needs about 10% more labels than Wilson.

**Monitors that rank well but are miscalibrated** (``benchmarks/interval_tradeoffs.py``:
the same binormal scores passed through ``expit(a·logit s + b)``, AUROC 0.9 and 0.97, the
grid above, 1,000 populations per cell). The active design's worst cell: 94.6% overconfident
(a = 2), 93.6% underconfident (a = ½), 94.1% deflated (b = −1.5), but 92.0% inflated
(b = +1.5, AUROC 0.97, a 20% rate and 50–100 labels; three of 32 cells below 93%). Inflated
scores put the faults near s = 1, where ``√(s(1 − s))`` draws them least, and λ̂ estimated
from few labels then biases the estimate low. Neither a larger uniform floor (20–30%) nor a
leave-one-out λ helped. The narrower construction that benchmark measures (plain normal
interval, skew-widened, with a zero-miss guard ``ln 40 · (1 − λμ)/n``) needs 132 labels
instead of 157 for ±2 points at 5% (AUROC 0.97), but covers 91.8% with the overconfident
monitor, which is what LLM judges tend to be; so it is not used.

**Designs and their assumptions.** ``ppi_*`` and the classical intervals assume the labelled
items are a simple random sample of the N (the queue's ``random`` policy). ``active_rate_ci``
assumes Poisson sampling with known π (each item chosen independently with probability π_i,
the queue's ``active`` and ``most_uncertain`` policies) and that every item of the population
had π_i > 0: an item that could never be chosen (the rest of the population after a top-k
pick, say) is not represented by any label, and no estimator can be unbiased for it. Items
with π = 1 are a census of their stratum and enter exactly, with no variance, so "label the
top k, plus a random or active sample of the remaining N − k" is valid; so is one batch
drawn after others if the earlier labels are passed with π = 1 and its π are relative to the
items still unlabelled when it was drawn (conditionally on the earlier batches it is a
Poisson sample of the rest); several such batches pool exactly in
:mod:`oversight.stats.estimate_sequential`. Fixed-size designs with the same π (one draw per
stratum, conditional Poisson) are estimated with the Poisson variance, which is
conservative for them. Sampling with replacement is not supported: pass distinct items.

The variance formulas carry the finite-population correction where the estimand is the N
transcripts (``1 − n/N`` for simple random samples, ``1 − π_i`` for Poisson designs), so
labelling everything gives a zero-width interval at the true rate.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from oversight.stats.estimate_kernels import (
    _allocate,
    _collapse_empty_bins,
    _design_kernel,
    _fpc,
    _labels,
    _ppi_kernel,
    _probabilities,
    _scores,
    _stratified_kernel,
    _wilson_kernel,
    _z,
)

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

Method = Literal["auto", "classical", "wilson", "ppi", "stratified", "active"]
METHODS: tuple[Method, ...] = ("auto", "classical", "wilson", "ppi", "stratified", "active")

#: Default number of monitor-score bins for post-stratification in :func:`estimate_fault_rate`.
DEFAULT_SCORE_BINS = 5


@dataclass(frozen=True)
class RateEstimate:
    """A fault rate over ``n_total`` transcripts with its confidence interval."""

    rate: float
    ci_low: float
    ci_high: float
    #: How many labels the estimate used.
    n_labelled: int
    #: N, the population the rate is about (for ``ppi_rate_ci``: labelled + unlabelled).
    n_total: int
    #: ``classical``, ``wilson``, ``ppi``, ``stratified``, ``active`` or ``census``.
    method: str
    confidence: float = 0.95

    @property
    def half_width(self) -> float:
        """Half the interval's width: the ``±`` a report would print."""
        return (self.ci_high - self.ci_low) / 2


# --------------------------------------------------------------------------- classical


def wilson_rate_ci(
    labels: ArrayLike, confidence: float = 0.95, *, population_size: int | None = None
) -> RateEstimate:
    """Wilson score interval for the fault rate of a simple random sample of labels.

    The Wilson interval inverts the score test ``|p̂ − p| ≤ z·sqrt(p(1 − p)/n)``. Its coverage
    dips well below nominal when only one to three faults are seen (89.5% at n = 50 and a
    1% rate: the lower limit after 2 faults in 50 is already above 1%), so for ``k = 1..k*``
    faults (k* = 2 for n ≤ 50, else 3) the lower limit is lowered to the one-sided Poisson
    bound ``χ²_{α}(2k)/(2n)``, and symmetrically for few fine items: Brown, Cai & DasGupta
    (2001), §4.1.1. Exact coverage is then ≥ 93.5% at the rates 1, 5, 20 and 50% for
    n = 50..1,000, but still 92.2–93% at some rates in between (n ≈ 50–130, rates 1–5%),
    which is why :func:`estimate_fault_rate` uses :func:`classical_rate_ci` instead.

    ``population_size`` N applies the finite-population correction (n is replaced by
    ``n/(1 − n/N)``); without it the population is treated as infinite (conservative).
    """
    y = _labels(labels)
    z = _z(confidence)
    n = y.size
    fpc = _fpc(n, population_size)
    lo, hi = _wilson_kernel(np.array([y.sum()]), n, np.array([fpc]), z)
    k = float(y.sum())
    return RateEstimate(
        k / n, float(lo[0]), float(hi[0]), n, population_size or n, "wilson", confidence
    )


def classical_rate_ci(
    labels: ArrayLike, confidence: float = 0.95, *, population_size: int | None = None
) -> RateEstimate:
    """Agresti–Coull interval for the fault rate of a simple random sample of labels.

    ``p̃ ± z·sqrt(p̃(1 − p̃)/ñ)`` with ``ñ = n + z²`` and ``p̃ = (k + z²/2)/ñ`` (Wilson's
    centre): add z²/2 faults and z²/2 fine items. The interval always contains Wilson's and
    its exact coverage stays within 93.5–98.6% for all n in 50..1,000 and rates in 1..50%,
    where Wilson's dips to 89.5%. It is also the λ = 0 case of the PPI++ interval below,
    so a useless monitor degrades PPI++ to exactly this. ``population_size`` as in
    :func:`wilson_rate_ci`.
    """
    y = _labels(labels)
    z = _z(confidence)
    n = y.size
    fpc = _fpc(n, population_size)
    f = np.zeros((1, n))
    est, lo, hi, _ = _ppi_kernel(
        y[None, :], f, np.zeros(1), np.zeros(1), np.zeros(1), np.array([fpc]), z, lam_fixed=0.0
    )
    return RateEstimate(
        float(est[0]), float(lo[0]), float(hi[0]), n, population_size or n, "classical", confidence
    )


# --------------------------------------------------------------------------- PPI++


def ppi_rate_ci(
    labels: ArrayLike,
    scores_labelled: ArrayLike,
    scores_unlabelled: ArrayLike,
    confidence: float = 0.95,
    power_tuning: bool = True,
) -> RateEstimate:
    """PPI++ estimate of the fault rate, with an interval that holds at low rates and small n.

    The setting of ``ppi_py.ppi_mean_ci``: n labelled and N_u unlabelled items drawn from the
    same distribution (a simple random sample labelled, the rest not); the estimand is the
    fault rate of that distribution, i.e. of the n + N_u transcripts when N_u is large.

    * Estimate: ``θ̂ = ȳ + λ·(f̄_u − f̄_l)`` with the power-tuned
      ``λ = Ĉov(y, f)/((1 + n/N_u)·V̂ar(f))`` (covariance over the labelled items, variance
      over all scores) clipped to [0, 1], which minimises the estimator's variance; with
      ``power_tuning=False``, λ = 1 (plain PPI). Identical to ``ppi_mean_pointestimate``.
    * Variance: ``Var(y − λf)/n + λ²·Var(f_u)/N_u``.
    * Interval: the Agresti–Coull-augmented normal interval of the module docstring.
    """
    y = _labels(labels)
    f = _scores(scores_labelled, "scores_labelled", y.size)
    fu = _scores(scores_unlabelled, "scores_unlabelled")
    z = _z(confidence)
    n, nu = y.size, fu.size
    if nu < 2:
        raise ValueError("ppi_rate_ci needs at least 2 unlabelled scores")
    var_all = float(np.var(np.concatenate([f, fu]), ddof=1))
    est, lo, hi, _ = _ppi_kernel(
        y[None, :],
        f[None, :],
        np.array([fu.mean()]),
        np.array([(1 + n / nu) * var_all]),
        np.array([np.var(fu, ddof=1) / nu]),
        np.ones(1),
        z,
        lam_fixed=None if power_tuning else 1.0,
    )
    return RateEstimate(float(est[0]), float(lo[0]), float(hi[0]), n, n + nu, "ppi", confidence)


def ppi_population_rate_ci(
    labels: ArrayLike,
    scores_labelled: ArrayLike,
    scores_all: ArrayLike,
    confidence: float = 0.95,
    power_tuning: bool = True,
) -> RateEstimate:
    """PPI++ for the fault rate of exactly the N transcripts in ``scores_all``.

    The labelled items are a simple random sample (without replacement) *of* those N, and
    ``scores_all`` includes them. Then the population mean score ``f̄_N`` is known exactly,
    so ``θ̂ = ȳ + λ·(f̄_N − f̄_l)`` with ``λ = Ĉov(y, f)/V̂ar_N(f)`` clipped to [0, 1] is the
    survey-sampling difference estimator, unbiased for fixed λ, with variance
    ``(1 − n/N)·Var(y − λf)/n`` (no term for the unlabelled mean, which is not estimated).
    Interval: the Agresti–Coull-augmented construction of the module docstring.
    """
    y = _labels(labels)
    f = _scores(scores_labelled, "scores_labelled", y.size)
    fa = _scores(scores_all, "scores_all")
    z = _z(confidence)
    n, big_n = y.size, fa.size
    if n > big_n:
        raise ValueError(f"{n} labels but only {big_n} transcripts in scores_all")
    est, lo, hi, _ = _ppi_kernel(
        y[None, :],
        f[None, :],
        np.array([fa.mean()]),
        np.array([np.var(fa)]),
        np.zeros(1),
        np.array([1 - n / big_n]),
        z,
        lam_fixed=None if power_tuning else 1.0,
    )
    return RateEstimate(float(est[0]), float(lo[0]), float(hi[0]), n, big_n, "ppi", confidence)


# --------------------------------------------------------------------------- active


def active_rate_ci(
    labels: ArrayLike,
    scores_labelled: ArrayLike,
    inclusion_probabilities: ArrayLike,
    scores_all: ArrayLike,
    confidence: float = 0.95,
    power_tuning: bool = True,
) -> RateEstimate:
    """Active-inference estimate of the fault rate from labels chosen with known π_i.

    Design: Poisson sampling over the N transcripts of ``scores_all`` (which includes the
    labelled ones), item i labelled with probability π_i > 0; see the module docstring for
    census items (π = 1), sequential batches and what is not supported.

    * Census items (π = 1) count exactly: ``θ = (Y_c + Σ_rest y)/N``.
    * The other N_r items: the difference estimator of Zrnic & Candès (2024),
      ``λ·f̄_r + Σ w_i (y_i − λf_i) / Σ w_i`` over the sampled items, ``w_i = 1/π_i`` the
      Horvitz–Thompson weights. Normalising by ``Σ w_i`` (Hájek) rather than by N_r is the
      same estimator with a data-tuned intercept, which removes the variance a Poisson
      design's random sample size adds; for fixed λ and intercept it is exactly unbiased.
    * λ (power tuning) minimises the design variance estimate below, a weighted regression
      slope with weights ``(1 − π_i)/π_i²``, clipped to [0, 1]; ``power_tuning=False`` uses 1.
    * Variance (Poisson sampling): ``Σ (1 − π_i) w_i² (r_i − r̄)² / (Σ w_i)²`` times
      ``(N_r/N)²``, with r the residuals ``y − λf``.
    * Interval: the Agresti–Coull-augmented construction of the module docstring, the
      pseudo-items entering at the sample's mean weight.

    Raises ValueError when items outside the census remain but none was sampled at random:
    nothing then says anything about them (label a random or active sample of the rest).
    """
    y = _labels(labels)
    f = _scores(scores_labelled, "scores_labelled", y.size)
    pi = _probabilities(inclusion_probabilities, y.size)
    fa = _scores(scores_all, "scores_all")
    z = _z(confidence)
    big_n = fa.size
    if y.size > big_n:
        raise ValueError(f"{y.size} labels but only {big_n} transcripts in scores_all")
    census = pi >= 1.0
    if int(census.sum()) < big_n and census.all():
        raise ValueError(
            f"all {y.size} labelled items have π = 1 (a census of the top-scored stratum, say) "
            f"but {big_n - y.size} transcripts were never at risk of being chosen; label a "
            "random or active sample of the remaining items too (queue policy 'random' with "
            "exclude=the census ids) and pass their π"
        )
    mask = np.ones((1, y.size), dtype=bool)
    est, lo, hi, _ = _design_kernel(
        y[None, :],
        f[None, :],
        pi[None, :],
        mask,
        np.array([fa.sum()]),
        np.array([float(big_n)]),
        z,
        lam_fixed=None if power_tuning else 1.0,
    )
    method = "census" if census.all() else "active"
    return RateEstimate(
        float(est[0]), float(lo[0]), float(hi[0]), y.size, big_n, method, confidence
    )


# --------------------------------------------------------------------------- stratified


def stratified_rate_ci(
    labels: ArrayLike,
    strata_labelled: ArrayLike,
    stratum_sizes: ArrayLike,
    confidence: float = 0.95,
) -> RateEstimate:
    """Stratified estimate ``Σ_h W_h ȳ_h`` from a simple random sample within each stratum.

    ``strata_labelled[i]`` is the stratum (0..H−1) of labelled item i, ``stratum_sizes[h]``
    is N_h, the number of transcripts in stratum h, and ``W_h = N_h/N``. Strata are e.g.
    monitor-score bins (:func:`score_bins`, :func:`assign_bins`); labels are either
    allocated to them by design (:func:`proportional_allocation`,
    :func:`neyman_allocation`) or a simple random sample post-stratified, which is valid
    conditionally on the n_h. Every stratum with N_h > 0 needs at least one label.

    Variance ``Σ W_h² (1 − n_h/N_h) p_h(1 − p_h)/n_h``. Interval: Agresti–Coull in each
    stratum with the z² pseudo-items shared out in proportion to n_h
    (``p̃_h = (k_h + c_h/2)/(n_h + c_h)``, ``c_h = (1 − n_h/N_h)·z²·n_h/n``), so that one
    stratum gives exactly :func:`classical_rate_ci`; normal interval around ``Σ W_h p̃_h``.
    Simulated coverage 93.5–99% with proportional allocation. Neyman allocation that trusts a
    good monitor leaves near-fault-free strata with a couple of labels each, and their
    pseudo-items then dominate: valid but conservative (up to 100% at AUROC 0.97); the
    active design of :func:`active_rate_ci` spends labels the same way more smoothly.
    """
    y = _labels(labels)
    h = np.asarray(strata_labelled)
    if h.shape != y.shape or not np.issubdtype(h.dtype, np.integer):
        raise ValueError("strata_labelled must be integer stratum indices, one per label")
    sizes = np.asarray(stratum_sizes, dtype=np.float64)
    if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes < 0) or sizes.sum() <= 0:
        raise ValueError("stratum_sizes must be a 1-d array of non-negative counts, not all 0")
    if h.min() < 0 or h.max() >= sizes.size:
        raise ValueError(f"stratum indices must lie in 0..{sizes.size - 1}")
    n_h = np.bincount(h, minlength=sizes.size)
    if np.any(n_h > sizes):
        raise ValueError("a stratum has more labels than transcripts")
    empty = (n_h == 0) & (sizes > 0)
    if empty.any():
        raise ValueError(
            f"strata {np.flatnonzero(empty).tolist()} have transcripts but no labels; merge "
            "them with a neighbour (fewer bins) or label at least one item in each"
        )
    z = _z(confidence)
    est, lo, hi = _stratified_kernel(y[None, :], h[None, :], sizes[None, :], z)
    return RateEstimate(
        float(est[0]),
        float(lo[0]),
        float(hi[0]),
        y.size,
        int(sizes.sum()),
        "stratified",
        confidence,
    )


def score_bins(scores_all: ArrayLike, n_bins: int) -> FloatArray:
    """Inner edges of up to ``n_bins`` monitor-score bins with equal numbers of transcripts.

    Quantile edges (ties merged), for :func:`assign_bins`. Equal-size bins suit
    proportional allocation; for rare faults, :func:`neyman_allocation` then puts more
    labels into the high-score bins where the label variance is.
    """
    s = _scores(scores_all, "scores_all")
    if n_bins < 1:
        raise ValueError(f"n_bins must be >= 1, got {n_bins}")
    edges = np.quantile(s, np.linspace(0, 1, n_bins + 1)[1:-1])
    return np.unique(edges)


def assign_bins(scores: ArrayLike, edges: ArrayLike) -> IntArray:
    """Bin index of each score: ``h`` such that ``edges[h−1] < s ≤ edges[h]``."""
    s = np.asarray(scores, dtype=np.float64)
    return np.searchsorted(np.asarray(edges, dtype=np.float64), s, side="left").astype(np.int64)


def proportional_allocation(stratum_sizes: ArrayLike, n: int, *, minimum: int = 1) -> IntArray:
    """n labels shared out in proportion to N_h (largest remainders), at least ``minimum`` each.

    Proportional allocation never does worse than simple random sampling.
    """
    sizes = np.asarray(stratum_sizes, dtype=np.float64)
    return _allocate(sizes, sizes, n, minimum)


def neyman_allocation(
    stratum_sizes: ArrayLike, stratum_rates: ArrayLike, n: int, *, minimum: int = 2
) -> IntArray:
    """Neyman allocation ``n_h ∝ N_h·sqrt(p_h(1 − p_h))``, at least ``minimum`` per stratum.

    Minimises ``Var(Σ W_h ȳ_h)`` for a fixed n. ``stratum_rates`` are guesses of each
    stratum's fault rate (the mean monitor score in the bin, if the monitor is roughly
    calibrated); a bad guess costs precision, never validity. The floor keeps every
    stratum represented, since a stratum guessed fault-free may not be.
    """
    sizes = np.asarray(stratum_sizes, dtype=np.float64)
    p = np.clip(np.asarray(stratum_rates, dtype=np.float64), 0.0, 1.0)
    if p.shape != sizes.shape:
        raise ValueError("stratum_rates must have one rate per stratum")
    return _allocate(sizes, sizes * np.sqrt(p * (1 - p)), n, minimum)


# --------------------------------------------------------------------------- entry point


def estimate_fault_rate(
    labels: ArrayLike,
    scores_labelled: ArrayLike | None = None,
    scores_all: ArrayLike | None = None,
    inclusion_probabilities: ArrayLike | None = None,
    method: Method = "auto",
    confidence: float = 0.95,
) -> RateEstimate:
    """The fault rate over the N transcripts of ``scores_all`` from n labels, by design.

    ``labels`` (1 = fault, 0 = fine) and ``scores_labelled`` are aligned with each other;
    ``scores_all`` scores every transcript of the population, the labelled ones included;
    ``inclusion_probabilities`` are the π the queue recorded for the labelled items (None:
    a simple random sample).

    ``method="auto"`` picks:

    * equal π (or None), i.e. a simple random sample: ``ppi`` (PPI++ of
      :func:`ppi_population_rate_ci`), or ``classical`` without scores;
    * unequal π (active or uncertainty sampling, top-k census plus a sample of the rest):
      ``active`` (:func:`active_rate_ci`); with every item labelled, the exact rate.

    Explicit methods: ``classical`` (Agresti–Coull; for unequal π the design-weighted
    estimator without a monitor, i.e. ``active`` with λ = 0), ``wilson``, ``ppi``,
    ``stratified`` (post-stratification of a simple random sample over
    :data:`DEFAULT_SCORE_BINS` score bins, fewer when a bin would have no label) and
    ``active``. Methods for simple random samples raise ValueError on unequal π.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {', '.join(METHODS)}; got {method!r}")
    y = _labels(labels)
    z = _z(confidence)
    n = y.size
    fa = None if scores_all is None else _scores(scores_all, "scores_all")
    big_n = n if fa is None else fa.size
    if n > big_n:
        raise ValueError(f"{n} labels but only {big_n} transcripts in scores_all")
    f = None if scores_labelled is None else _scores(scores_labelled, "scores_labelled", n)
    pi = None if inclusion_probabilities is None else _probabilities(inclusion_probabilities, n)
    srs = pi is None or bool(np.all(pi == pi[0]) and pi[0] < 1)
    if pi is not None and bool(np.all(pi >= 1)) and n == big_n:
        rate = float(y.mean())
        return RateEstimate(rate, rate, rate, n, big_n, "census", confidence)

    if method == "auto":
        with_monitor = f is not None and fa is not None
        method = ("ppi" if srs else "active") if with_monitor else "classical"
    if method in ("wilson", "ppi", "stratified") and not srs:
        raise ValueError(
            f"method {method!r} needs a simple random sample (equal inclusion probabilities); "
            "use method='active' for labels chosen with unequal probabilities"
        )
    if method in ("ppi", "stratified", "active") and (f is None or fa is None):
        raise ValueError(f"method {method!r} needs scores_labelled and scores_all")

    if method == "wilson":
        return wilson_rate_ci(y, confidence, population_size=big_n)
    if method == "classical":
        if srs:
            return classical_rate_ci(y, confidence, population_size=big_n)
        if fa is None:
            raise ValueError("labels with unequal π need scores_all (the population size N)")
        assert pi is not None
        est, lo, hi, _ = _design_kernel(
            y[None, :],
            np.zeros((1, n)),
            pi[None, :],
            np.ones((1, n), dtype=bool),
            np.zeros(1),
            np.array([float(big_n)]),
            z,
            lam_fixed=0.0,
        )
        return RateEstimate(
            float(est[0]), float(lo[0]), float(hi[0]), n, big_n, "classical", confidence
        )
    assert f is not None and fa is not None
    if method == "ppi":
        return ppi_population_rate_ci(y, f, fa, confidence)
    if method == "stratified":
        edges = score_bins(fa, DEFAULT_SCORE_BINS)
        strata_l, sizes = _collapse_empty_bins(assign_bins(f, edges), assign_bins(fa, edges))
        return stratified_rate_ci(y, strata_l, sizes, confidence)
    probs = np.full(n, n / big_n) if pi is None else pi
    return active_rate_ci(y, f, probs, fa, confidence)
