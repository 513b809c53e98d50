"""The fault rate of a domain (one source, model, task or time range) from labels drawn for
the whole population.

The queue drew its labels from all N transcripts, so the labelled items of a domain are not
a sample of the domain by any fixed design: how many fall inside is itself random. Rather
than re-derive every estimator for domains, estimate the rate of the outcome ``y·d`` over all
N (``d`` = 1 inside the domain, known for every transcript), with monitor scores ``s·d``: the
design, its inclusion probabilities and the interval construction of
:mod:`oversight.stats.estimate` apply unchanged. That rate is ``p_D · N_D / N``; with N_D
known, the domain's rate and both ends of its interval are the same figures times ``N / N_D``.

What it costs: the estimators that use the monitor work on the residual ``(y − s)·d``, which
is zero outside the domain, so little is lost. The classical estimator, which has no monitor,
also pays for the variance of ``d`` itself, so its interval is wider than an analysis of the
domain's labels alone would be (never narrower than it should be).
"""

from __future__ import annotations

from dataclasses import replace

import numpy as np
from numpy.typing import ArrayLike, NDArray

from oversight.stats.estimate import RateEstimate


def domain_outcomes(values: ArrayLike, in_domain: ArrayLike) -> NDArray[np.float64]:
    """``values·d``: labels or scores with everything outside the domain set to 0."""
    v = np.asarray(values, dtype=np.float64)
    d = np.asarray(in_domain, dtype=bool)
    if v.shape != d.shape:
        raise ValueError(f"values and in_domain must align; got shapes {v.shape} and {d.shape}")
    return np.where(d, v, 0.0)


def to_domain(estimate: RateEstimate, n_domain: int, n_labelled_in_domain: int) -> RateEstimate:
    """The domain's rate from the estimate of ``y·d`` over the whole population."""
    if not 0 < n_domain <= estimate.n_total:
        raise ValueError(f"n_domain must be in 1..{estimate.n_total}; got {n_domain}")
    scale = estimate.n_total / n_domain
    return replace(
        estimate,
        rate=min(1.0, estimate.rate * scale),
        ci_low=min(1.0, estimate.ci_low * scale),
        ci_high=min(1.0, estimate.ci_high * scale),
        n_labelled=n_labelled_in_domain,
        n_total=n_domain,
    )
