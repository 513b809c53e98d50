"""Domain estimates: the rate of a subset from labels drawn for the whole population.

The simulation draws 1,000 populations per cell (N = 4,000; a domain of 10% or 30% with its
own fault rate, 10% outside; a calibrated monitor of AUROC 0.9) and checks each interval
against that population's domain rate, for a simple random sample (classical, PPI++) and the
active queue's design. Measured when written: coverage 0.935–0.998 over share {0.1, 0.3} ×
rate {0.05, 0.2} × n {100, 300}; the lowest cells were PPI++ at n = 300 and a 20% rate.
"""

from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest
from scipy import stats
from scipy.special import expit, logit

from oversight.stats.estimate import estimate_fault_rate
from oversight.stats.estimate_domain import domain_outcomes, to_domain

N = 4000
REPS = 1000
AUROC = 0.9


def _coverage(share: float, rate: float, n: int, method: str, seed: int) -> float:
    rng = np.random.default_rng(seed)
    shift = math.sqrt(2) * float(stats.norm.ppf(AUROC))
    covered = 0
    for _ in range(REPS):
        inside = rng.random(N) < share
        base = np.where(inside, rate, 0.1)
        y = (rng.random(N) < base).astype(float)
        s = expit(logit(base) + shift * (rng.standard_normal(N) + shift * y) - shift * shift / 2)
        if method == "active":  # the queue's design: π ∝ uncertainty with a uniform floor
            w = np.sqrt(s * (1 - s))
            pi = np.minimum(1.0, n * (0.9 * w / w.sum() + 0.1 / N))
            index = np.nonzero(rng.random(N) < pi)[0]
            pis: np.ndarray | None = pi[index]
        else:
            index, pis = rng.choice(N, n, replace=False), None
        yd, sd = domain_outcomes(y, inside), domain_outcomes(s, inside)
        whole = estimate_fault_rate(yd[index], sd[index], sd, inclusion_probabilities=pis, method=method)  # type: ignore[arg-type]
        est = to_domain(whole, int(inside.sum()), int(inside[index].sum()))
        covered += est.ci_low <= y[inside].mean() <= est.ci_high
    return covered / REPS


@pytest.mark.parametrize("method", ["classical", "ppi", "active"])
@pytest.mark.parametrize(("share", "rate", "n"), [(0.1, 0.05, 100), (0.1, 0.2, 300), (0.3, 0.2, 300)])
def test_domain_intervals_cover(method: str, share: float, rate: float, n: int) -> None:
    assert _coverage(share, rate, n, method, seed=n + int(100 * share)) >= 0.93


def test_census_gives_the_exact_domain_rate() -> None:
    rng = np.random.default_rng(0)
    y = (rng.random(500) < 0.2).astype(float)
    inside = rng.random(500) < 0.4
    s = rng.random(500)
    whole = estimate_fault_rate(domain_outcomes(y, inside), domain_outcomes(s, inside), domain_outcomes(s, inside),
                                inclusion_probabilities=np.ones(500), method="active")
    est = to_domain(whole, int(inside.sum()), int(inside.sum()))
    assert est.rate == pytest.approx(y[inside].mean()) and est.n_total == inside.sum()
    assert est.ci_low <= est.rate <= est.ci_high


def test_a_domain_of_everything_is_the_plain_estimate() -> None:
    rng = np.random.default_rng(1)
    y, s = (rng.random(300) < 0.3).astype(float), rng.random(300)
    everything = np.ones(300, dtype=bool)
    plain = estimate_fault_rate(y[:80], s[:80], s, method="ppi")
    same = to_domain(estimate_fault_rate(domain_outcomes(y, everything)[:80], s[:80], s, method="ppi"), 300, 80)
    assert (same.rate, same.ci_low, same.ci_high, same.n_labelled) == (plain.rate, plain.ci_low, plain.ci_high, 80)


def test_scaling_is_capped_and_checked() -> None:
    # 40 faults in 50 labels of a population of 100 whose domain is 50: the scaled upper end
    # would pass 1.
    whole = replace(estimate_fault_rate([1.0] * 40 + [0.0] * 10, method="classical"), n_total=100)
    est = to_domain(whole, 50, 50)
    assert est.ci_high == 1.0 and est.n_total == 50 and est.rate == pytest.approx(1.0)
    with pytest.raises(ValueError, match="n_domain"):
        to_domain(whole, 0, 0)
    with pytest.raises(ValueError, match="align"):
        domain_outcomes([1.0, 0.0], [True])
