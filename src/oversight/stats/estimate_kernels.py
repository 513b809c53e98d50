"""The arithmetic behind :mod:`oversight.stats.estimate`, batched for simulation.

Every kernel takes a leading axis of independent datasets (rows), so the coverage
simulations run thousands of repetitions in one numpy call; the public estimators call
them with one row. Input validators shared by the estimators live here too.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy import stats

from oversight.stats.intervals import z_value

FloatArray = NDArray[np.float64]
IntArray = NDArray[np.int64]
BoolArray = NDArray[np.bool_]

# --------------------------------------------------------------------------- kernels
#
# Batched over a leading axis of independent datasets (rows), so that coverage simulations
# run thousands of repetitions in one numpy call. The public functions call them with one row.


def _wilson_kernel(
    k: FloatArray, n: int, fpc: FloatArray, z: float
) -> tuple[FloatArray, FloatArray]:
    """Brown–Cai–DasGupta modified Wilson limits for k faults in n (rows of k)."""
    k = np.asarray(k, dtype=np.float64)
    p = k / n
    with np.errstate(divide="ignore"):
        n_eff = np.where(fpc > 0, n / np.where(fpc > 0, fpc, 1.0), np.inf)
    z2n = np.where(np.isfinite(n_eff), z * z / np.where(np.isfinite(n_eff), n_eff, 1.0), 0.0)
    centre = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * np.sqrt(p * (1 - p) / n_eff + z2n / (4 * n_eff))
    lo = np.clip(centre - half, 0.0, 1.0)
    hi = np.clip(centre + half, 0.0, 1.0)
    lo = np.where(k == 0, 0.0, lo)
    hi = np.where(k == n, 1.0, hi)
    k_star = 2 if n <= 50 else 3
    alpha = 2 * (1 - stats.norm.cdf(z))
    finite = np.isfinite(n_eff)
    for j in range(1, k_star + 1):
        bound = float(stats.chi2.ppf(alpha, 2 * j)) / 2
        low_j = np.where(finite, bound / np.where(finite, n_eff, 1.0), lo)
        lo = np.where(k == j, np.minimum(lo, low_j), lo)
        hi = np.where(n - k == j, np.maximum(hi, 1 - low_j), hi)
    return lo, hi


def _ppi_kernel(
    y: FloatArray,
    f: FloatArray,
    ref_mean: FloatArray,
    lam_denominator: FloatArray,
    imputed_var: FloatArray,
    fpc: FloatArray,
    z: float,
    *,
    lam_fixed: float | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """PPI++ estimate and Agresti–Coull-augmented interval for rows of (y, f).

    ``ref_mean`` is the mean score the labelled mean is corrected towards,
    ``lam_denominator`` the denominator of the power-tuned λ, ``imputed_var`` the variance
    of ``ref_mean`` (times λ² it is added), ``fpc`` the finite-population factor of the
    residual variance. Returns (estimate, low, high, λ).
    """
    n = y.shape[-1]
    ybar = y.mean(-1)
    fbar = f.mean(-1)
    if lam_fixed is None:
        cov = ((y - ybar[:, None]) * (f - fbar[:, None])).mean(-1)
        ok = lam_denominator > 0
        lam = np.clip(np.where(ok, cov / np.where(ok, lam_denominator, 1.0), 0.0), 0.0, 1.0)
    else:
        lam = np.full(y.shape[0], lam_fixed)
    est = ybar + lam * (ref_mean - fbar)

    # fpc·z²/2 pseudo-faults and as many pseudo-fine items, scored ref_mean: Agresti–Coull
    # on the effective sample size n/fpc, so that the pseudo-items vanish as n approaches N.
    half_m = fpc * z * z / 2
    r = y - lam[:, None] * f
    r1 = 1 - lam * ref_mean
    r0 = -lam * ref_mean
    n_aug = n + 2 * half_m
    r_aug = (r.sum(-1) + half_m * (r1 + r0)) / n_aug
    ss = ((r - r_aug[:, None]) ** 2).sum(-1) + half_m * ((r1 - r_aug) ** 2 + (r0 - r_aug) ** 2)
    var = fpc * ss / n_aug**2 + lam**2 * imputed_var
    centre = lam * ref_mean + r_aug
    half = z * np.sqrt(var)
    lo = np.clip(np.minimum(centre - half, est), 0.0, 1.0)
    hi = np.clip(np.maximum(centre + half, est), 0.0, 1.0)
    return est, lo, hi, lam


@dataclass(frozen=True)
class _DesignParts:
    """Rows of one design's estimate before the interval is formed (see :func:`_design_parts`)."""

    est: FloatArray
    #: Centre of the Agresti–Coull-augmented estimator and its variance (rate scale).
    centre: FloatArray
    var: FloatArray
    #: The logical bounds: census faults are certain, and so are census fine items.
    floor: FloatArray
    ceiling: FloatArray
    #: Rows with at least one item sampled with π < 1, and rows with items outside the census.
    any_sampled: BoolArray
    has_rest: BoolArray
    lam: FloatArray


def _design_parts(
    y: FloatArray,
    f: FloatArray,
    pi: FloatArray,
    mask: BoolArray,
    score_total: FloatArray,
    big_n: FloatArray,
    z: float,
    *,
    lam_fixed: float | None,
    pseudo_share: FloatArray | float = 1.0,
) -> _DesignParts:
    """Active-inference estimate and augmented variance for rows of labelled items.

    Entries where ``mask`` is False are padding (a row's labelled set may be smaller than
    the array). ``score_total`` is the sum of the scores of all N transcripts of the row.
    ``pseudo_share`` scales the pseudo-items: a batch pooled with weight α gets α of them,
    so that pooled batches carry z²/2 of each kind in all, as one design would.
    """
    census = mask & (pi >= 1.0)
    sampled = mask & (pi < 1.0)
    n_c = census.sum(-1).astype(np.float64)
    y_c = np.where(census, y, 0.0).sum(-1)
    f_c = np.where(census, f, 0.0).sum(-1)
    n_r = big_n - n_c
    has_rest = n_r > 0
    mu_r = np.where(has_rest, (score_total - f_c) / np.where(has_rest, n_r, 1.0), 0.0)

    w = np.where(sampled, 1.0 / np.where(sampled, pi, 1.0), 0.0)
    w_sum = w.sum(-1)
    n_s = sampled.sum(-1).astype(np.float64)
    any_s = n_s > 0
    w_safe = np.where(any_s, w_sum, 1.0)
    a = np.where(sampled, (1.0 - pi) * w * w, 0.0)
    if lam_fixed is None:
        y_w = (w * y).sum(-1) / w_safe
        f_w = (w * f).sum(-1) / w_safe
        dy = y - y_w[:, None]
        df = f - f_w[:, None]
        num = (a * dy * df).sum(-1)
        den = (a * df * df).sum(-1)
        ok = den > 0
        lam = np.clip(np.where(ok, num / np.where(ok, den, 1.0), 0.0), 0.0, 1.0)
    else:
        lam = np.full(y.shape[0], lam_fixed)
    r = y - lam[:, None] * f
    wr = (w * r).sum(-1)
    est_rest = lam * mu_r + wr / w_safe
    est = (y_c + n_r * np.where(any_s, est_rest, 0.0)) / big_n

    # Pseudo-items at the sample's mean weight w̄ = 1/π̄, (1 − π̄)·z²/2 of each kind: with
    # equal π this is exactly the simple-random-sample construction of _ppi_kernel.
    w_bar = np.where(any_s, w_sum / np.where(any_s, n_s, 1.0), 1.0)
    pi_bar = 1.0 / w_bar
    half_m = pseudo_share * (1 - pi_bar) * z * z / 2
    r1 = 1 - lam * mu_r
    r0 = -lam * mu_r
    w_aug = w_sum + 2 * half_m * w_bar
    r_aug = (wr + half_m * w_bar * (r1 + r0)) / w_aug
    ss = (a * (r - r_aug[:, None]) ** 2).sum(-1) + half_m * (1 - pi_bar) * w_bar**2 * (
        (r1 - r_aug) ** 2 + (r0 - r_aug) ** 2
    )
    share = n_r / big_n
    centre = (y_c + n_r * (lam * mu_r + r_aug)) / big_n
    var = share**2 * ss / w_aug**2
    floor = y_c / big_n  # the census faults are certain
    ceiling = (y_c + n_r) / big_n
    return _DesignParts(est, centre, var, floor, ceiling, any_s, has_rest, lam)


def _design_kernel(
    y: FloatArray,
    f: FloatArray,
    pi: FloatArray,
    mask: BoolArray,
    score_total: FloatArray,
    big_n: FloatArray,
    z: float,
    *,
    lam_fixed: float | None,
) -> tuple[FloatArray, FloatArray, FloatArray, FloatArray]:
    """Active-inference estimate and augmented interval for rows of labelled items
    (arguments as :func:`_design_parts`). Returns (estimate, low, high, λ)."""
    p = _design_parts(y, f, pi, mask, score_total, big_n, z, lam_fixed=lam_fixed)
    lo, hi = _interval(p.est, p.centre, z * np.sqrt(p.var), p.floor, p.ceiling)
    # Nothing sampled outside the census: only the logical bounds are known.
    known = p.any_sampled | ~p.has_rest
    return p.est, np.where(known, lo, p.floor), np.where(known, hi, p.ceiling), p.lam


def _sequential_kernel(
    parts: list[_DesignParts],
    alpha: FloatArray,
    floor: FloatArray,
    ceiling: FloatArray,
    z: float,
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Pool the estimates of B sequential batches with weights ``alpha`` (B × rows, each
    column summing to 1; each batch's parts computed with ``pseudo_share=α``): each batch's
    error is a martingale difference, so the variances add with weights α². Returns
    (estimate, low, high)."""
    est = sum(a * p.est for a, p in zip(alpha, parts, strict=True))
    centre = sum(a * p.centre for a, p in zip(alpha, parts, strict=True))
    var = sum(a * a * p.var for a, p in zip(alpha, parts, strict=True))
    est_a, centre_a = np.asarray(est), np.asarray(centre)
    lo, hi = _interval(est_a, centre_a, z * np.sqrt(np.asarray(var)), floor, ceiling)
    return est_a, lo, hi


def _interval(
    est: FloatArray, centre: FloatArray, half: FloatArray, floor: FloatArray, ceiling: FloatArray
) -> tuple[FloatArray, FloatArray]:
    """``centre ± half``, widened to contain the point estimate, within the logical bounds."""
    lo = np.clip(np.minimum(centre - half, est), floor, ceiling)
    hi = np.clip(np.maximum(centre + half, est), floor, ceiling)
    return lo, hi


def _stratified_kernel(
    y: FloatArray, strata: IntArray, sizes: FloatArray, z: float
) -> tuple[FloatArray, FloatArray, FloatArray]:
    """Stratified estimate and per-stratum Agresti–Coull interval for rows of labels."""
    n_strata = sizes.shape[-1]
    onehot = strata[:, :, None] == np.arange(n_strata)[None, None, :]
    n_h = onehot.sum(1).astype(np.float64)
    k_h = (onehot * y[:, :, None]).sum(1)
    weight = sizes / sizes.sum(-1, keepdims=True)
    n = y.shape[-1]
    has = n_h > 0
    p_hat = np.where(has, k_h / np.where(has, n_h, 1.0), 0.0)
    est = (weight * p_hat).sum(-1)
    fpc = np.where(sizes > 0, 1 - n_h / np.where(sizes > 0, sizes, 1.0), 0.0)
    c_h = fpc * z * z * n_h / n
    p_t = np.where(has, (k_h + c_h / 2) / np.where(has, n_h + c_h, 1.0), 0.0)
    var_h = np.where(has, fpc * p_t * (1 - p_t) / np.where(has, n_h + c_h, 1.0), 0.0)
    centre = (weight * p_t).sum(-1)
    half = z * np.sqrt((weight**2 * var_h).sum(-1))
    lo = np.clip(np.minimum(centre - half, est), 0.0, 1.0)
    hi = np.clip(np.maximum(centre + half, est), 0.0, 1.0)
    return est, lo, hi


# --------------------------------------------------------------------------- helpers


def _collapse_empty_bins(strata_l: IntArray, strata_all: IntArray) -> tuple[IntArray, FloatArray]:
    """Merge score bins without a label into the nearest lower bin that has one.

    Bins are ordered by score, so merged strata stay contiguous in score (empty bins below
    the first labelled one join it). With a simple random sample the post-stratified
    estimator is valid conditionally on which bins are empty and on the n_h.
    """
    n_bins = int(max(strata_all.max(), strata_l.max())) + 1
    labelled = np.flatnonzero(np.bincount(strata_l, minlength=n_bins) > 0)
    below = np.searchsorted(labelled, np.arange(n_bins), side="right") - 1
    target = labelled[np.maximum(below, 0)]
    _, new_index = np.unique(target, return_inverse=True)
    new_index = new_index.astype(np.int64)
    sizes = np.bincount(new_index[strata_all], minlength=int(new_index.max()) + 1)
    return new_index[strata_l], sizes.astype(np.float64)


def _allocate(sizes: FloatArray, share: FloatArray, n: int, minimum: int) -> IntArray:
    """n labels in proportion to ``share``, each stratum within [min(minimum, N_h), N_h].

    Strata whose proportional share falls outside their bounds are fixed at the bound and
    the rest re-shared, until all fit; then the fractional parts go by largest remainder.
    """
    if sizes.ndim != 1 or sizes.size == 0 or np.any(sizes < 0):
        raise ValueError("stratum_sizes must be a non-empty 1-d array of counts")
    cap = np.floor(sizes)
    low = np.minimum(cap, float(minimum))
    if not low.sum() <= n <= cap.sum():
        raise ValueError(f"n = {n} must lie between {int(low.sum())} and {int(cap.sum())}")
    ideal = np.zeros_like(cap)
    fixed = np.zeros(cap.size, dtype=bool)
    while True:
        free = ~fixed
        budget = n - ideal[fixed].sum()
        s = np.where(free, np.maximum(share, 0.0), 0.0)
        s = s if s.sum() > 0 else free.astype(np.float64)
        ideal = np.where(free, budget * s / s.sum(), ideal)
        under = free & (ideal < low)
        over = free & (ideal > cap)
        if not (under.any() or over.any()):
            break
        ideal = np.where(under, low, np.where(over, cap, ideal))
        fixed |= under | over
    alloc = np.floor(ideal + 1e-9)
    short = round(n - float(alloc.sum()))
    room = np.where(alloc < cap, ideal - alloc, -np.inf)
    for i in np.argsort(-room, kind="stable")[:short]:
        alloc[i] += 1
    return alloc.astype(np.int64)


def _labels(labels: ArrayLike) -> FloatArray:
    y = np.asarray(labels, dtype=np.float64)
    if y.ndim != 1 or y.size == 0:
        raise ValueError(f"labels must be a non-empty 1-d array, got shape {y.shape}")
    if not np.all((y == 0) | (y == 1)):
        raise ValueError("labels must be 1 (fault) or 0 (fine)")
    return y


def _scores(scores: ArrayLike, name: str, size: int | None = None) -> FloatArray:
    s = np.asarray(scores, dtype=np.float64)
    if s.ndim != 1 or s.size == 0:
        raise ValueError(f"{name} must be a non-empty 1-d array, got shape {s.shape}")
    if size is not None and s.size != size:
        raise ValueError(f"{name} has {s.size} entries but there are {size} labels")
    if not np.all(np.isfinite(s)):
        raise ValueError(f"{name} contains NaN or infinity; score failed items 0.5 or drop them")
    return s


def _probabilities(pi: ArrayLike, size: int) -> FloatArray:
    p = np.asarray(pi, dtype=np.float64)
    if p.shape != (size,):
        raise ValueError(f"inclusion_probabilities must have one entry per label ({size})")
    if not np.all((p > 0) & (p <= 1)):
        raise ValueError("inclusion probabilities must lie in (0, 1]")
    return p


def _fpc(n: int, population_size: int | None) -> float:
    if population_size is None:
        return 1.0
    if population_size < n:
        raise ValueError(f"population_size {population_size} is smaller than n = {n}")
    return 1.0 - n / population_size


def _z(confidence: float) -> float:
    z = z_value(confidence)
    if not math.isfinite(z):
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
    return z
