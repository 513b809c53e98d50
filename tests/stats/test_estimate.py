"""Fault-rate estimates: ppi_py cross-checks, designs, and coverage simulations.

The coverage simulations draw whole populations (N = 4,000 transcripts, 1,000 repetitions
each, as rows of one matrix) with a monitor whose scores are calibrated binormal: the logit of
the score is ``logit(p) + d·x − d²/2`` with ``x ~ N(d·y, 1)``, so AUROC = Φ(d/√2). Each
population is reviewed by every design at n = 50, 100, 300 and 1,000 labels, and each
interval is checked against that population's own fault rate. They call the estimators'
batched kernels (one row per repetition); ``test_public_functions_match_kernels`` checks that
the public functions are those kernels on one row.

To keep this file fast, every method runs the full rate × n grid with the monitors that
matter for it (:data:`PLAN`): the weakest (0.75) and the strongest (0.97), whose skewed
weights are the hardest case for the designs. ``benchmarks/labels_needed.py --coverage``
prints the full grid with all three monitors, AUROC 0.9 included.
"""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np
import pytest
from numpy.typing import NDArray
from scipy import stats
from scipy.special import expit, logit

from oversight.stats import estimate as est
from oversight.stats.estimate import (
    RateEstimate,
    active_rate_ci,
    assign_bins,
    classical_rate_ci,
    estimate_fault_rate,
    neyman_allocation,
    ppi_population_rate_ci,
    ppi_rate_ci,
    proportional_allocation,
    score_bins,
    stratified_rate_ci,
    wilson_rate_ci,
)
from oversight.stats.intervals import wilson_ci

Z95 = float(stats.norm.ppf(0.975))
RATES = (0.01, 0.05, 0.2, 0.5)
SIZES = (50, 100, 300, 1000)
AUROCS = (0.75, 0.9, 0.97)
REPS = 1000
POPULATION = 4000
#: Share of the budget the active design spreads uniformly (the review queue's default).
UNIFORM_SHARE = 0.1
N_BINS = 5
METHODS = ("wilson", "classical", "ppi", "stratified", "active", "top_k_plus_random")
#: Which methods run with which monitor (methods without a monitor need only one).
PLAN: dict[float, tuple[str, ...]] = {
    0.75: ("wilson", "classical", "ppi", "active"),
    0.97: ("ppi", "stratified", "active", "top_k_plus_random"),
}

Cell = tuple[str, float, float, int]  # method, AUROC, rate, n
Result = tuple[float, float, float]  # coverage, median half-width, faults among random labels
Floats = NDArray[np.float64]


# --------------------------------------------------------------------------- simulation


def _population(rng: np.random.Generator, rate: float, auroc: float) -> tuple[Floats, Floats]:
    """REPS populations of POPULATION transcripts: labels and calibrated monitor scores."""
    d = math.sqrt(2) * float(stats.norm.ppf(auroc))
    y = rng.random((REPS, POPULATION)) < rate
    x = rng.standard_normal((REPS, POPULATION)) + d * y
    return y.astype(np.float64), expit(logit(rate) + d * x - d * d / 2)


class _PPS:
    """Row-wise inclusion probabilities ∝ size with a uniform floor, summing to n, capped at 1.

    The review queue's ``pps_probabilities``, one row per population: ``π_i = min(1, c·w_i)``
    with ``w_i = (1 − a)·size_i/Σ size + a/N`` and c such that ``Σ π_i = n``. With the w in
    decreasing order and the k largest capped, ``c = (n − k)/(Σ w − Σ_{top k} w)``; the
    right k is the smallest one that leaves the largest uncapped ``c·w`` at or below 1.
    The sort is done once per population and reused for every n.
    """

    def __init__(self, size: Floats, max_n: int) -> None:
        share = (1 - UNIFORM_SHARE) * size / size.sum(1, keepdims=True)
        self.w = share + UNIFORM_SHARE / size.shape[1]
        top = -np.partition(-self.w, max_n, axis=1)[:, :max_n]
        self.top = -np.sort(-top, axis=1)  # at most n items can be capped
        self.rest = self.w.sum(1, keepdims=True) - np.cumsum(self.top, 1) + self.top

    def __call__(self, n: int) -> Floats:
        c = (n - np.arange(n))[None, :] / self.rest[:, :n]
        first_ok = np.argmax(c * self.top[:, :n] <= 1.0, axis=1)
        scale = c[np.arange(c.shape[0]), first_ok]
        return np.minimum(1.0, scale[:, None] * self.w)


def _compact(mask: NDArray[np.bool_], *arrays: Floats) -> tuple[NDArray[np.bool_], list[Floats]]:
    """Move each row's selected entries to the front (padding after), dropping empty columns."""
    count = mask.sum(1)
    width = int(count.max())
    rows, cols = np.nonzero(mask)
    row_start = np.concatenate([[0], np.cumsum(count)[:-1]])
    slot = np.arange(rows.size) - row_start[rows]
    out = []
    for a in arrays:
        packed = np.zeros((mask.shape[0], width))
        packed[rows, slot] = a[rows, cols]
        out.append(packed)
    present = np.arange(width)[None, :] < count[:, None]
    return present, out


def _first_in_each_bin(bins: NDArray[np.int64], alloc: NDArray[np.int64]) -> NDArray[np.bool_]:
    """The first alloc[h] transcripts of bin h in each row: a simple random sample of the bin,
    since the transcripts of a population are exchangeable."""
    chosen = np.zeros(bins.shape, dtype=bool)
    for h, n_h in enumerate(alloc):
        in_bin = bins == h
        chosen |= in_bin & (np.cumsum(in_bin, 1, dtype=np.int16) <= n_h)
    return chosen


def _active_interval(
    rng: np.random.Generator, y: Floats, s: Floats, pps: _PPS, n: int
) -> tuple[Floats, Floats, Floats, Floats]:
    """One Poisson draw of the active design per population and its interval: (low, high,
    the drawn labels, their π), padded rows with π = 1."""
    pi = pps(n)
    present, (y_a, s_a, pi_a) = _compact(rng.random(s.shape) < pi, y, s, pi)
    pi_a = np.where(present, pi_a, 1.0)
    big_n = np.full(s.shape[0], float(s.shape[1]))
    _, lo, hi, _ = est._design_kernel(
        y_a, s_a, pi_a, present, s.sum(1), big_n, Z95, lam_fixed=None
    )
    return lo, hi, y_a, pi_a


def _covers(lo: Floats, hi: Floats, truth: Floats, faults: Floats) -> Result:
    """Coverage, median half-width, and mean number of faults among the random labels."""
    covered = float(np.mean((lo <= truth) & (truth <= hi)))
    return covered, float(np.median(hi - lo) / 2), float(np.mean(faults))


def _simulate_population(
    rng: np.random.Generator, rate: float, auroc: float, methods: tuple[str, ...]
) -> Iterator[tuple[Cell, Result]]:
    y, s = _population(rng, rate, auroc)
    truth = y.mean(1)
    big_n = np.full(REPS, float(POPULATION))
    total = s.sum(1)
    pps = _PPS(np.sqrt(s * (1 - s)), max(SIZES)) if "active" in methods else None
    edges = np.quantile(s, np.linspace(0, 1, N_BINS + 1)[1:-1], axis=1).T
    bins = (s[:, :, None] > edges[:, None, :]).sum(2)
    bin_sizes = np.stack([(bins == h).sum(1) for h in range(N_BINS)], 1).astype(np.float64)
    for n in SIZES:
        fpc = np.full(REPS, 1 - n / POPULATION)
        y_l, s_l = y[:, :n], s[:, :n]  # the first n of exchangeable items: an SRS
        if "wilson" in methods:
            lo, hi = est._wilson_kernel(y_l.sum(1), n, fpc, Z95)
            yield ("wilson", auroc, rate, n), _covers(lo, hi, truth, y_l.sum(1))
        if "classical" in methods:
            zero = np.zeros(REPS)
            _, lo, hi, _ = est._ppi_kernel(
                y_l, np.zeros_like(s_l), zero, zero, zero, fpc, Z95, lam_fixed=0.0
            )
            yield ("classical", auroc, rate, n), _covers(lo, hi, truth, y_l.sum(1))
        if "ppi" in methods:
            _, lo, hi, _ = est._ppi_kernel(
                y_l, s_l, s.mean(1), s.var(1), np.zeros(REPS), fpc, Z95, lam_fixed=None
            )
            yield ("ppi", auroc, rate, n), _covers(lo, hi, truth, y_l.sum(1))
        if "stratified" in methods:
            alloc = proportional_allocation(bin_sizes[0], n)
            present, (y_s, h_s) = _compact(_first_in_each_bin(bins, alloc), y, bins.astype(float))
            _, lo, hi = est._stratified_kernel(y_s, h_s.astype(np.int64), bin_sizes, Z95)
            yield ("stratified", auroc, rate, n), _covers(lo, hi, truth, y_s.sum(1))
        if pps is not None:
            lo, hi, y_a, pi_a = _active_interval(rng, y, s, pps, n)
            random_faults = (y_a * (pi_a < 1)).sum(1)
            yield ("active", auroc, rate, n), _covers(lo, hi, truth, random_faults)
        if "top_k_plus_random" in methods:
            # Half the budget on the highest scores (a census, π = 1), half a simple random
            # sample of the rest (π = m / (N − k)): the queue's highest_score + random.
            k = n // 2
            kth = np.partition(s, POPULATION - k, axis=1)[:, POPULATION - k]
            census = s >= kth[:, None]
            rest = ~census
            sample = rest & (np.cumsum(rest, 1, dtype=np.int16) <= n - k)
            pi = np.where(census, 1.0, (n - k) / rest.sum(1, keepdims=True))
            present, (y_t, s_t, pi_t) = _compact(census | sample, y, s, pi)
            pi_t = np.where(present, pi_t, 1.0)
            _, lo, hi, _ = est._design_kernel(
                y_t, s_t, pi_t, present, total, big_n, Z95, lam_fixed=None
            )
            random_faults = (y_t * (pi_t < 1)).sum(1)
            yield ("top_k_plus_random", auroc, rate, n), _covers(lo, hi, truth, random_faults)


@pytest.fixture(scope="module")
def coverage() -> dict[Cell, Result]:
    """(coverage, median half-width, faults among random labels) of every simulated cell."""
    rng = np.random.default_rng(20240601)
    table: dict[Cell, Result] = {}
    for auroc, methods in PLAN.items():
        for rate in RATES:
            table.update(_simulate_population(rng, rate, auroc, methods))
    return table


@pytest.mark.parametrize("method", METHODS)
def test_coverage_within_two_points_of_nominal(coverage: dict[Cell, Result], method: str) -> None:
    """Every cell, the low-rate small-n corner included, covers at least 93% (95% − 2 points),
    and no cell with ten or more faults (on average) among the randomly drawn labels covers
    more than 99.5%. (Faults in a census count for nothing here: they are known exactly, and
    with a good monitor the top-k census holds nearly all faults at a 1% rate.)"""
    cells = {c: v for c, v in coverage.items() if c[0] == method}
    monitors = sum(method in methods for methods in PLAN.values())
    assert len(cells) == len(RATES) * len(SIZES) * monitors
    low = {c: v[0] for c, v in cells.items() if v[0] < 0.93}
    assert not low, f"{method} under-covers: {low}"
    high = {c: v[0] for c, v in cells.items() if v[2] >= 10 and v[0] > 0.995}
    assert not high, f"{method} is needlessly conservative: {high}"


def test_monitor_narrows_the_interval(coverage: dict[Cell, Result]) -> None:
    """With a good monitor PPI++ and the active design need far less width than labels alone."""
    for rate in (0.2, 0.5):
        classical = coverage[("classical", 0.75, rate, 1000)][1]
        assert coverage[("ppi", 0.97, rate, 1000)][1] < 0.65 * classical
        assert coverage[("stratified", 0.97, rate, 1000)][1] < 0.65 * classical
        assert coverage[("active", 0.97, rate, 1000)][1] < 0.5 * classical
        # A weak monitor costs little: never more than 3% wider than labels alone.
        assert coverage[("ppi", 0.75, rate, 1000)][1] < 1.03 * classical


def test_plain_clt_interval_undercovers_where_ours_holds() -> None:
    """The problem being solved: PPI++'s normal interval ``θ̂ ± z·se`` at a 5% rate, n = 100,
    with a good monitor covers far below 95% (skewed residuals, variance underestimated when no
    miss is sampled); the augmented interval on the same samples holds."""
    rng = np.random.default_rng(7)
    y, s = _population(rng, 0.05, 0.97)
    truth = y.mean(1)
    n = 100
    y_l, s_l = y[:, :n], s[:, :n]
    fpc = np.full(REPS, 1 - n / POPULATION)
    theta, lo, hi, lam = est._ppi_kernel(
        y_l, s_l, s.mean(1), s.var(1), np.zeros(REPS), fpc, Z95, lam_fixed=None
    )
    resid = y_l - lam[:, None] * s_l
    se = np.sqrt(fpc * resid.var(1, ddof=1) / n)
    clt = _covers(theta - Z95 * se, theta + Z95 * se, truth, y_l.sum(1))[0]
    ours = _covers(lo, hi, truth, y_l.sum(1))[0]
    assert clt < 0.9
    assert ours >= 0.93


@pytest.mark.parametrize(
    ("scale", "shift"),
    [(2.0, 0.0), (0.5, 0.0), (1.0, -1.5)],
    ids=["overconfident", "underconfident", "deflated"],
)
def test_active_design_holds_when_the_monitor_is_miscalibrated(scale: float, shift: float) -> None:
    """The design draws by the monitor's uncertainty and the estimator corrects with its
    scores, so scores that rank well but are wrong as probabilities move both. The interval
    still covers: a strong monitor (AUROC 0.97) made overconfident (logit × 2),
    underconfident (× 0.5) or deflated (− 1.5) keeps ≥ 93% at 5% and 20% rates. (Inflated
    scores, + 1.5, dip to about 92% at 50–100 labels: see ``benchmarks/interval_tradeoffs.py``.)
    A construction that cut the labels needed at 5% to 3× fewer than Wilson's fell to 91–92%
    with the overconfident monitor, which this test would catch."""
    rng = np.random.default_rng(11)
    for rate in (0.05, 0.2):
        y, calibrated = _population(rng, rate, 0.97)
        s = expit(scale * logit(np.clip(calibrated, 1e-12, 1 - 1e-12)) + shift)
        truth = y.mean(1)
        pps = _PPS(np.sqrt(s * (1 - s)), 1000)
        for n in (100, 300, 1000):
            lo, hi, y_a, _ = _active_interval(rng, y, s, pps, n)
            covered = _covers(lo, hi, truth, y_a.sum(1))[0]
            assert covered >= 0.93, (scale, shift, rate, n, covered)


# --------------------------------------------------------------------------- exact coverage


def _exact_coverage(limits: tuple[Floats, Floats], n: int, rates: Floats) -> Floats:
    ks = np.arange(n + 1)
    lo, hi = limits
    pmf = stats.binom.pmf(ks[None, :], n, rates[:, None])
    inside = (lo[None, :] <= rates[:, None]) & (rates[:, None] <= hi[None, :])
    return (pmf * inside).sum(1)


def test_classical_exact_coverage_holds_for_all_rates_and_sizes() -> None:
    """Agresti–Coull, summed exactly over the binomial: ≥ 93% for every rate in 1..50% and
    every n in 50..1,000 (step 25), where Wilson's dips to 89.5%."""
    rates = np.linspace(0.01, 0.5, 197)
    zero = np.zeros(1)
    worst = 1.0
    for n in range(50, 1001, 25):
        k = np.arange(n + 1, dtype=np.float64)[:, None]
        rows = np.ones((n + 1, n))
        y = (np.arange(n)[None, :] < k).astype(np.float64) * rows
        _, lo, hi, _ = est._ppi_kernel(
            y, np.zeros_like(y), zero, zero, zero, np.ones(n + 1), Z95, lam_fixed=0.0
        )
        worst = min(worst, float(_exact_coverage((lo, hi), n, rates).min()))
    assert 0.93 <= worst < 0.95


@pytest.mark.parametrize("n", SIZES)
def test_wilson_exact_coverage_on_the_grid(n: int) -> None:
    """Brown–Cai–DasGupta's modification lifts Wilson's coverage at 1% from 91% to 98% (n=50)."""
    k = np.arange(n + 1, dtype=np.float64)
    lo, hi = est._wilson_kernel(k, n, np.ones(n + 1), Z95)
    covered = _exact_coverage((lo, hi), n, np.array(RATES))
    assert covered.min() >= 0.93
    plain = np.array([wilson_ci(int(j), n) for j in k]).T
    if n == 50:
        assert _exact_coverage((plain[0], plain[1]), n, np.array([0.01]))[0] < 0.92


# --------------------------------------------------------------------------- ppi_py


def _ppi_data(rng: np.random.Generator, n: int, n_u: int, rate: float) -> tuple[Floats, ...]:
    y = (rng.random(n + n_u) < rate).astype(np.float64)
    f = np.clip(0.3 * y + 0.5 * rng.random(n + n_u), 0, 1)
    return y[:n], f[:n], f[n:]


@pytest.mark.parametrize(
    ("n", "n_u", "rate"), [(50, 500, 0.05), (200, 5000, 0.2), (1000, 1500, 0.5)]
)
@pytest.mark.parametrize("power_tuning", [True, False])
def test_point_estimate_matches_ppi_py(n: int, n_u: int, rate: float, power_tuning: bool) -> None:
    ppi_py = pytest.importorskip("ppi_py")
    y, f, f_u = _ppi_data(np.random.default_rng(n + n_u), n, n_u, rate)
    ours = ppi_rate_ci(y, f, f_u, power_tuning=power_tuning)
    theirs = ppi_py.ppi_mean_pointestimate(y, f, f_u, lam=None if power_tuning else 1.0)
    assert ours.rate == pytest.approx(float(np.ravel(theirs)[0]), abs=1e-12)
    # For large n the augmentation is negligible: the interval is ppi_py's CLT interval.
    if n == 1000:
        lo, hi = ppi_py.ppi_mean_ci(y, f, f_u, alpha=0.05, lam=None if power_tuning else 1.0)
        assert ours.ci_low == pytest.approx(float(np.ravel(lo)[0]), abs=2e-3)
        assert ours.ci_high == pytest.approx(float(np.ravel(hi)[0]), abs=2e-3)


def test_power_tuning_clips_lambda_and_never_loses_much() -> None:
    """A useless (here anti-correlated) monitor gets λ = 0: the classical interval."""
    rng = np.random.default_rng(3)
    y = (rng.random(400) < 0.3).astype(float)
    f = 1 - y  # perfectly anti-correlated: PPI++ must not use it with a negative λ
    f_u = rng.random(4000)
    tuned = ppi_rate_ci(y, f, f_u)
    assert tuned.rate == pytest.approx(y.mean())
    ac = classical_rate_ci(y)
    assert tuned.ci_low == pytest.approx(ac.ci_low, abs=1e-12)
    assert tuned.ci_high == pytest.approx(ac.ci_high, abs=1e-12)


# --------------------------------------------------------------------------- designs


def test_public_functions_match_kernels() -> None:
    rng = np.random.default_rng(11)
    y, s = _population(rng, 0.1, 0.9)
    y0, s0 = y[0], s[0]
    n = 200
    pub = ppi_population_rate_ci(y0[:n], s0[:n], s0)
    _, lo, hi, _ = est._ppi_kernel(
        y[:1, :n],
        s[:1, :n],
        s[:1].mean(1),
        s[:1].var(1),
        np.zeros(1),
        np.array([1 - n / POPULATION]),
        Z95,
        lam_fixed=None,
    )
    assert (pub.ci_low, pub.ci_high) == pytest.approx((lo[0], hi[0]))
    pi = _PPS(np.sqrt(s[:1] * (1 - s[:1])), n)(n)[0]
    chosen = rng.random(POPULATION) < pi
    pub = active_rate_ci(y0[chosen], s0[chosen], pi[chosen], s0)
    _, lo, hi, _ = est._design_kernel(
        y[:1, chosen],
        s[:1, chosen],
        pi[None, chosen],
        np.ones((1, chosen.sum()), dtype=bool),
        s[:1].sum(1),
        np.array([float(POPULATION)]),
        Z95,
        lam_fixed=None,
    )
    assert (pub.ci_low, pub.ci_high) == pytest.approx((lo[0], hi[0]))
    assert pub.method == "active" and pub.n_labelled == chosen.sum()


def test_equal_probabilities_reduce_active_to_ppi() -> None:
    """With π = n/N for everyone the design-based estimate is PPI++ on a simple random sample."""
    rng = np.random.default_rng(5)
    y, s = _population(rng, 0.2, 0.9)
    n = 500
    a = active_rate_ci(y[0, :n], s[0, :n], np.full(n, n / POPULATION), s[0])
    p = ppi_population_rate_ci(y[0, :n], s[0, :n], s[0])
    assert a.rate == pytest.approx(p.rate, abs=2e-3)
    assert a.half_width == pytest.approx(p.half_width, rel=0.02)


def test_census_is_exact_and_census_alone_is_refused() -> None:
    scores = np.linspace(0, 1, 100)
    labels = (scores > 0.7).astype(float)
    exact = estimate_fault_rate(labels, scores, scores, np.ones(100))
    assert (exact.rate, exact.ci_low, exact.ci_high, exact.method) == (0.3, 0.3, 0.3, "census")
    top = slice(80, 100)
    with pytest.raises(ValueError, match="never at risk"):
        estimate_fault_rate(labels[top], scores[top], scores, np.ones(20))


def test_top_k_census_plus_random_rest() -> None:
    """The census's faults are certain: the interval never goes below them."""
    rng = np.random.default_rng(2)
    scores = rng.random(1000)
    labels = (rng.random(1000) < scores**4).astype(float)
    top = np.argsort(scores)[-50:]
    rest = rng.choice(np.setdiff1d(np.arange(1000), top), 100, replace=False)
    idx = np.concatenate([top, rest])
    pi = np.concatenate([np.ones(50), np.full(100, 100 / 950)])
    r = estimate_fault_rate(labels[idx], scores[idx], scores, pi)
    assert r.method == "active"
    assert r.ci_low >= labels[top].sum() / 1000
    assert r.ci_low <= labels.mean() <= r.ci_high
    assert r.n_labelled == 150 and r.n_total == 1000


def test_labelling_everything_gives_the_exact_rate() -> None:
    labels = np.array([1, 0, 0, 1, 0] * 40, dtype=float)
    scores = np.linspace(0, 1, 200)
    for method in ("classical", "wilson", "ppi"):
        r = estimate_fault_rate(labels, scores, scores, method=method)
        assert r.ci_low == pytest.approx(0.4) and r.ci_high == pytest.approx(0.4), method


def test_auto_picks_method_by_design() -> None:
    rng = np.random.default_rng(4)
    scores = rng.random(2000)
    labels = (rng.random(300) < scores[:300]).astype(float)
    assert estimate_fault_rate(labels).method == "classical"
    assert estimate_fault_rate(labels, scores[:300], scores).method == "ppi"
    same = np.full(300, 300 / 2000)
    assert estimate_fault_rate(labels, scores[:300], scores, same).method == "ppi"
    varied = np.clip(scores[:300], 0.05, 1.0)
    assert estimate_fault_rate(labels, scores[:300], scores, varied).method == "active"
    r = estimate_fault_rate(labels, scores[:300], scores, varied, method="classical")
    assert r.method == "classical"
    with pytest.raises(ValueError, match="simple random sample"):
        estimate_fault_rate(labels, scores[:300], scores, varied, method="ppi")
    strat = estimate_fault_rate(labels, scores[:300], scores, method="stratified")
    assert strat.method == "stratified" and strat.ci_low < strat.rate < strat.ci_high


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"labels": [0, 2]}, "1 \\(fault\\) or 0"),
        ({"labels": [], "scores_labelled": []}, "non-empty"),
        ({"labels": [0, 1], "scores_labelled": [0.1], "scores_all": [0.1, 0.2]}, "entries"),
        ({"labels": [0, 1], "scores_labelled": [0.1, np.nan], "scores_all": [0.1] * 3}, "NaN"),
        (
            {
                "labels": [0, 1],
                "scores_labelled": [0.1, 0.2],
                "scores_all": [0.1, 0.2, 0.3],
                "inclusion_probabilities": [0.0, 0.5],
            },
            "\\(0, 1\\]",
        ),
        ({"labels": [0, 1], "method": "bayes"}, "method must be one of"),
        ({"labels": [0, 1], "confidence": 1.0}, "confidence"),
        ({"labels": [0, 1], "method": "ppi"}, "needs scores"),
    ],
)
def test_errors_say_what_to_fix(kwargs: dict[str, object], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        estimate_fault_rate(**kwargs)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- classical, strata


def test_wilson_matches_score_interval_away_from_small_counts() -> None:
    labels = np.array([1] * 30 + [0] * 70)
    r = wilson_rate_ci(labels)
    assert (r.ci_low, r.ci_high) == pytest.approx(wilson_ci(30, 100))
    # Two faults in 50: the lower limit drops to the Poisson bound χ²(0.05; 4)/2 / 50.
    r = wilson_rate_ci(np.array([1, 1] + [0] * 48))
    assert r.ci_low == pytest.approx(stats.chi2.ppf(0.05, 4) / 2 / 50)
    assert r.ci_high == pytest.approx(wilson_ci(2, 50)[1])


def test_classical_is_agresti_coull() -> None:
    k, n = 3, 40
    r = classical_rate_ci(np.array([1] * k + [0] * (n - k)))
    n_t = n + Z95**2
    p_t = (k + Z95**2 / 2) / n_t
    half = Z95 * math.sqrt(p_t * (1 - p_t) / n_t)
    assert (r.ci_low, r.ci_high) == pytest.approx((p_t - half, p_t + half))
    assert r.rate == pytest.approx(k / n) and isinstance(r, RateEstimate)


def test_one_stratum_is_classical_and_strata_sum_up() -> None:
    labels = np.array([1] * 7 + [0] * 53)
    one = stratified_rate_ci(labels, np.zeros(60, dtype=np.int64), [600])
    ac = classical_rate_ci(labels, population_size=600)
    assert (one.ci_low, one.ci_high) == pytest.approx((ac.ci_low, ac.ci_high))
    two = stratified_rate_ci(
        np.array([1] * 6 + [0] * 14 + [1] * 1 + [0] * 39),
        np.array([0] * 20 + [1] * 40),
        [100, 900],
    )
    assert two.rate == pytest.approx(0.1 * 6 / 20 + 0.9 * 1 / 40)
    with pytest.raises(ValueError, match="no labels"):
        stratified_rate_ci([1, 0], [0, 0], [10, 10])


def test_bins_and_allocations() -> None:
    scores = np.linspace(0, 1, 1001)
    edges = score_bins(scores, 4)
    bins = assign_bins(scores, edges)
    assert np.bincount(bins).tolist() == pytest.approx([251, 250, 250, 250], abs=1)
    sizes = np.array([500, 300, 150, 50])
    prop = proportional_allocation(sizes, 100)
    assert prop.sum() == 100 and prop.tolist() == [50, 30, 15, 5]
    ney = neyman_allocation(sizes, [0.001, 0.01, 0.2, 0.6], 100)
    assert ney.sum() == 100 and ney.min() >= 2
    assert ney[3] > prop[3] and ney[0] < prop[0]  # labels go where the variance is
    assert neyman_allocation([3, 10], [0.5, 0.01], 10).tolist() == [3, 7]  # capped at N_h
    with pytest.raises(ValueError, match="must lie between"):
        proportional_allocation(sizes, 2000)


def test_empty_score_bins_are_merged_for_post_stratification() -> None:
    strata_l = np.array([0, 0, 2, 2, 4])
    strata_all = np.array([0, 1, 1, 2, 3, 4, 4])
    new_l, sizes = est._collapse_empty_bins(strata_l, strata_all)
    assert new_l.tolist() == [0, 0, 1, 1, 2]
    assert sizes.tolist() == [3.0, 2.0, 2.0]
