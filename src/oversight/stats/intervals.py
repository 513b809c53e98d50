"""Confidence intervals for one metric of one run (pure functions over arrays, no I/O).

The eval runner calls :func:`summarize_metric` once per task metric. Two cases:

* binary per-sample values (accuracy-like): the Wilson score interval. Unlike the Wald
  interval ``p ± z·se`` it stays inside [0, 1], is not degenerate at 0/n or n/n and keeps
  close to nominal coverage for the small n and extreme p that evals often have;
* any other values: a bootstrap interval (BCa, which corrects the plain percentile
  interval for bias and skew, e.g. of loglikelihood differences; percentile for very
  large n, where the correction is negligible and BCa's jackknife is slow).

The reported ``stderr`` is always the plain standard error of the mean
(:func:`mean_stderr`), the number lm-evaluation-harness prints, so results line up
with theirs column for column while the interval is the better-behaved one.
"""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable
from dataclasses import dataclass
from functools import cache
from statistics import NormalDist
from typing import Any, Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

BootstrapMethod = Literal["auto", "BCa", "percentile"]

#: ``auto`` uses BCa up to this many values and the percentile interval above it: BCa's
#: jackknife costs O(n²) (2.5 s at n = 20,000) while its bias and skew corrections shrink
#: like 1/sqrt(n), so for large n the two intervals agree to well under a standard error.
BCA_MAX_N = 5000

#: Keep one bootstrap batch at about this many floats, so BCa's jackknife (n × (n-1)
#: values when done in one go) stays bounded in memory for runs of many samples.
_BATCH_FLOATS = 4_000_000



@cache
def _rng_keyword() -> str:
    """scipy >= 1.15 names the bootstrap's generator ``rng``; older releases ``random_state``."""
    from scipy import stats  # imported on first use: it costs about a second at start-up

    return "rng" if "rng" in inspect.signature(stats.bootstrap).parameters else "random_state"


@dataclass(frozen=True)
class MetricSummary:
    """A metric's mean over samples with its standard error and confidence interval."""

    value: float
    stderr: float
    ci_low: float
    ci_high: float
    n: int
    #: How the interval was computed: ``wilson`` or ``bootstrap``.
    method: str


def z_value(confidence: float) -> float:
    """The two-sided normal quantile for ``confidence`` (1.96 at 0.95)."""
    _check_confidence(confidence)
    # The standard library's quantile agrees with scipy.stats.norm.ppf to 1 ulp and spares
    # every eval run scipy's import.
    return NormalDist().inv_cdf(0.5 + confidence / 2)


def wilson_ci(successes: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson score interval for a binomial proportion ``successes / n``.

    The interval is the set of p whose score test does not reject at ``1 - confidence``;
    in closed form ``(p̂ + z²/2n ± z·sqrt(p̂(1-p̂)/n + z²/4n²)) / (1 + z²/n)``.
    """
    if n <= 0:
        raise ValueError(f"wilson_ci needs n >= 1 trials, got n={n}")
    if not 0 <= successes <= n:
        raise ValueError(f"successes must lie in [0, n={n}], got {successes}")
    z = z_value(confidence)
    p = successes / n
    z2n = z * z / n
    center = (p + z2n / 2) / (1 + z2n)
    half = z / (1 + z2n) * math.sqrt(p * (1 - p) / n + z2n / (4 * n))
    # Clip rounding noise: at p = 0 or 1 one limit is exactly the boundary.
    low = 0.0 if successes == 0 else max(0.0, center - half)
    high = 1.0 if successes == n else min(1.0, center + half)
    return low, high


def mean_stderr(values: ArrayLike) -> float:
    """Standard error of the mean: sample sd (ddof=1) / sqrt(n); 0 when n < 2.

    This is lm-evaluation-harness's ``mean_stderr``, so a binary metric's stderr here
    equals the ``acc_stderr`` it reports for the same per-sample scores.
    """
    x = _as_finite_1d(values, allow_empty=True)
    n = x.size
    if n < 2:
        return 0.0
    return float(np.std(x, ddof=1) / math.sqrt(n))


def bootstrap_ci(
    values: ArrayLike,
    statistic: Callable[..., Any] = np.mean,
    confidence: float = 0.95,
    n_resamples: int = 2000,
    seed: int = 0,
    *,
    method: BootstrapMethod = "auto",
) -> tuple[float, float]:
    """Bootstrap confidence interval for ``statistic`` of ``values``.

    ``statistic`` must accept an ``axis`` keyword (as numpy reductions do) so resamples are
    evaluated in one vectorized call. With fewer than two values, or all values equal, there
    is no sampling variability to resample and the interval is ``(v, v)`` where
    ``v = statistic(values)``. ``method="auto"`` is BCa for up to :data:`BCA_MAX_N` values
    and percentile above. When BCa is degenerate (e.g. all resampled statistics tie) it
    falls back to the percentile interval rather than returning NaN.
    """
    _check_confidence(confidence)
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be >= 1, got {n_resamples}")
    x = _as_finite_1d(values)
    if x.size < 2 or np.all(x == x[0]):
        v = float(statistic(x))
        return v, v
    if method == "auto":
        method = "BCa" if x.size <= BCA_MAX_N else "percentile"
    low, high = _scipy_bootstrap(x, statistic, confidence, n_resamples, seed, method)
    if method == "BCa" and not (math.isfinite(low) and math.isfinite(high)):
        low, high = _scipy_bootstrap(x, statistic, confidence, n_resamples, seed, "percentile")
    return low, high


def summarize_metric(
    values: ArrayLike, *, binary: bool, confidence: float = 0.95, seed: int = 0
) -> MetricSummary:
    """Mean, standard error and interval of one metric over a run's samples.

    ``binary`` metrics (every value 0 or 1) get the Wilson interval; others a bootstrap
    of the mean (BCa, or percentile for very large n; see :func:`bootstrap_ci`). Raises
    ValueError on empty input, non-finite values, or ``binary=True`` with values other
    than 0 and 1.
    """
    x = _as_finite_1d(values)
    n = int(x.size)
    value = float(np.mean(x))
    stderr = mean_stderr(x)
    if binary:
        if not np.all((x == 0) | (x == 1)):
            raise ValueError("binary=True but some values are neither 0 nor 1")
        low, high = wilson_ci(int(x.sum()), n, confidence)
        return MetricSummary(value, stderr, low, high, n, "wilson")
    low, high = bootstrap_ci(x, np.mean, confidence, seed=seed)
    return MetricSummary(value, stderr, low, high, n, "bootstrap")


def _scipy_bootstrap(
    x: NDArray[np.float64],
    statistic: Callable[..., Any],
    confidence: float,
    n_resamples: int,
    seed: int,
    method: Literal["BCa", "percentile"],
) -> tuple[float, float]:
    from scipy import stats  # imported on first use: it costs about a second at start-up

    kwargs: dict[str, Any] = {_rng_keyword(): np.random.default_rng(seed)}
    with warnings.catch_warnings():
        # A degenerate BCa interval (0/0 in its acceleration) comes back as NaN with a
        # warning; the caller then falls back to the percentile interval.
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        warnings.simplefilter("ignore", RuntimeWarning)
        res = stats.bootstrap(
            (x,),
            statistic,
            n_resamples=n_resamples,
            batch=max(1, _BATCH_FLOATS // x.size),
            vectorized=True,
            confidence_level=confidence,
            method=method,
            **kwargs,
        )
    ci = res.confidence_interval
    return float(ci.low), float(ci.high)


def _as_finite_1d(values: ArrayLike, *, allow_empty: bool = False) -> NDArray[np.float64]:
    """Values as a 1-d float array; rejects empty (unless allowed) and non-finite input."""
    x = np.asarray(values, dtype=np.float64)
    if x.ndim > 1:
        raise ValueError(f"expected a 1-d array of per-sample values, got shape {x.shape}")
    x = x.reshape(-1)
    if x.size == 0 and not allow_empty:
        raise ValueError("no values: a metric needs at least one sample")
    if not np.all(np.isfinite(x)):
        raise ValueError("values contain NaN or infinity; drop or fix those samples first")
    return x


def _check_confidence(confidence: float) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must lie strictly between 0 and 1, got {confidence}")
