"""How many human labels does a ±2-point 95% fault-rate interval need? Each estimator vs Wilson.

For each monitor and fault rate this finds, by bisection on n, the smallest number of labels
whose 95% interval has a median half-width of at most 2 points (``--target``), for:

* ``wilson``: Wilson's interval (Brown–Cai–DasGupta modified) on a simple random sample;
* ``ppi``: PPI++ on the same simple random sample (``ppi_population_rate_ci``);
* ``stratified``: five equal-size monitor-score bins, labels allocated in proportion to the
  bins, the stratified estimator (``stratified_rate_ci``);
* ``active``: the review queue's ``active`` policy, Poisson sampling with
  ``π ∝ sqrt(s(1 − s))`` plus a 10% uniform floor (``active_rate_ci``); n is the expected
  number of labels.

All intervals carry the finite-population correction for the population they are about.
Monitors:

* simulated: calibrated binormal scores (``logit s = logit p + d·x − d²/2``, ``x ~ N(d·y,
  1)``, AUROC = Φ(d/√2)) for AUROC 0.75, 0.9 and 0.97, fault rates 1, 5, 20 and 50%,
  populations of 20,000 transcripts;
* TruthfulQA's human truthfulness labels (``finetune_truth.jsonl``: " no" = untruthful = a
  fault): the questions are split in half; a TF-IDF (words and bigrams) logistic regression
  trained on one half's transcripts scores the other half, which is the population (its
  AUROC is printed). Besides its natural fault rate (58%), faults are dropped at random to
  make populations with 20% and 5% faults.

``--coverage`` also prints the simulated coverage of every estimator over the full grid
(rates 1–50% × n 50–1,000 × the three monitors, ``--coverage-reps`` repetitions per cell,
populations of 4,000), next to the plain normal ("CLT") intervals of PPI++ and of the
active design that the estimators replace.

Usage::

    .venv/bin/python benchmarks/labels_needed.py               # tables (a few minutes)
    .venv/bin/python benchmarks/labels_needed.py --quick       # fewer repetitions
    .venv/bin/python benchmarks/labels_needed.py --coverage    # plus the coverage grid
    .venv/bin/python benchmarks/labels_needed.py --target 0.01 --aurocs 0.97 --truthfulqa ""
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from scipy import stats
from scipy.special import expit, logit

from oversight.stats import estimate as est
from oversight.stats.estimate import proportional_allocation

Floats = NDArray[np.float64]
Bools = NDArray[np.bool_]
Z95 = float(stats.norm.ppf(0.975))
UNIFORM_SHARE = 0.1
N_BINS = 5
METHODS = ("wilson", "ppi", "stratified", "active")
TRUTHFULQA = Path(__file__).resolve().parents[2] / "shared/data/truthfulqa/finetune_truth.jsonl"


# --------------------------------------------------------------------------- populations


@dataclass
class Populations:
    """R populations of N transcripts (rows): labels, monitor scores, design helpers.

    The random draws of every design are fixed per population (a random order for simple
    random samples, one within each score bin, uniforms for Poisson sampling), so the
    samples for n and n + 1 are nested and the bisection on n sees a monotone curve.
    """

    y: Floats
    s: Floats
    seed: int = 0

    def __post_init__(self) -> None:
        rng = np.random.default_rng(self.seed)
        self.reps, self.size = self.y.shape
        self.truth = self.y.mean(1)
        self.total = self.s.sum(1)
        self.var = self.s.var(1)
        self.order = np.argsort(rng.random(self.y.shape), axis=1).astype(np.int32)
        self.uniform = rng.random(self.y.shape)
        self._pps: _PPS | None = None
        edges = np.quantile(self.s, np.linspace(0, 1, N_BINS + 1)[1:-1], axis=1).T
        self.bins = (self.s[:, :, None] > edges[:, None, :]).sum(2).astype(np.int32)
        self.bin_sizes = np.stack([(self.bins == h).sum(1) for h in range(N_BINS)], 1)
        by_bin = np.argsort(self.bins + rng.random(self.y.shape), axis=1)
        start = np.concatenate([np.zeros((self.reps, 1), int), np.cumsum(self.bin_sizes, 1)], 1)
        rank = np.arange(self.size)[None, :] - np.take_along_axis(
            start, np.take_along_axis(self.bins, by_bin, 1), 1
        )
        self.rank_in_bin = np.empty_like(self.bins)
        np.put_along_axis(self.rank_in_bin, by_bin, rank.astype(np.int32), 1)

    @property
    def pps(self) -> _PPS:
        if self._pps is None:
            self._pps = _PPS(np.sqrt(self.s * (1 - self.s)))
        return self._pps


def simulated(
    rng: np.random.Generator, reps: int, size: int, rate: float, auroc: float
) -> Populations:
    d = math.sqrt(2) * float(stats.norm.ppf(auroc))
    y = rng.random((reps, size)) < rate
    x = rng.standard_normal((reps, size)) + d * y
    scores = expit(logit(rate) + d * x - d * d / 2)
    return Populations(y.astype(np.float64), scores, int(rng.integers(2**31)))


class _PPS:
    """The queue's ``pps_probabilities`` row by row: π = min(1, c·w), Σ π = n, uniform floor."""

    def __init__(self, size: Floats) -> None:
        share = (1 - UNIFORM_SHARE) * size / size.sum(1, keepdims=True)
        self.w = share + UNIFORM_SHARE / size.shape[1]
        self.top = -np.sort(-self.w, axis=1)
        self.rest = self.w.sum(1, keepdims=True) - np.cumsum(self.top, 1) + self.top

    def __call__(self, n: int) -> Floats:
        n = min(n, self.w.shape[1])
        c = (n - np.arange(n))[None, :] / self.rest[:, :n]
        first_ok = np.argmax(c * self.top[:, :n] <= 1.0 + 1e-12, axis=1)
        scale = c[np.arange(c.shape[0]), first_ok]
        return np.minimum(1.0, scale[:, None] * self.w)


def _compact(mask: Bools, *arrays: Floats) -> tuple[Bools, list[Floats]]:
    count = mask.sum(1)
    width = max(int(count.max()), 1)
    rows, cols = np.nonzero(mask)
    row_start = np.concatenate([[0], np.cumsum(count)[:-1]])
    slot = np.arange(rows.size) - row_start[rows]
    out = []
    for a in arrays:
        packed = np.zeros((mask.shape[0], width))
        packed[rows, slot] = a[rows, cols]
        out.append(packed)
    return np.arange(width)[None, :] < count[:, None], out


# --------------------------------------------------------------------------- designs


Interval = tuple[Floats, Floats, Floats]  # estimate, low, high (one entry per population)
Runner = Callable[[Populations, int], Interval]


def srs_labels(pop: Populations, n: int) -> tuple[Floats, Floats]:
    """A simple random sample of n from each population: the first n of a random order."""
    idx = pop.order[:, :n]
    return np.take_along_axis(pop.y, idx, 1), np.take_along_axis(pop.s, idx, 1)


def run_wilson(pop: Populations, n: int) -> Interval:
    y, _ = srs_labels(pop, n)
    lo, hi = est._wilson_kernel(y.sum(1), n, np.full(pop.reps, 1 - n / pop.size), Z95)
    return y.mean(1), lo, hi


def run_ppi(pop: Populations, n: int, clt: bool = False) -> Interval:
    y, s = srs_labels(pop, n)
    fpc = np.full(pop.reps, 1 - n / pop.size)
    theta, lo, hi, lam = est._ppi_kernel(
        y, s, pop.total / pop.size, pop.var, np.zeros(pop.reps), fpc, Z95, lam_fixed=None
    )
    if clt:  # the plain normal interval the estimator replaces
        se = np.sqrt(fpc * (y - lam[:, None] * s).var(1, ddof=1) / n)
        return theta, theta - Z95 * se, theta + Z95 * se
    return theta, lo, hi


def run_stratified(pop: Populations, n: int) -> Interval:
    alloc = proportional_allocation(pop.bin_sizes[0], n)
    chosen = pop.rank_in_bin < alloc[pop.bins]
    _, (y, h) = _compact(chosen, pop.y, pop.bins.astype(np.float64))
    return est._stratified_kernel(y, h.astype(np.int64), pop.bin_sizes.astype(np.float64), Z95)


def active_sample(pop: Populations, n: int) -> tuple[Bools, Floats, Floats, Floats]:
    """The active policy's Poisson sample of (expected) size n: mask, labels, scores, π
    (π = 1 on padding)."""
    pi = pop.pps(n)
    present, (y, s, p) = _compact(pop.uniform < pi, pop.y, pop.s, pi)
    return present, y, s, np.where(present, p, 1.0)


def run_active(pop: Populations, n: int, clt: bool = False) -> Interval:
    present, y, s, p = active_sample(pop, n)
    big_n = np.full(pop.reps, float(pop.size))
    theta, lo, hi, lam = est._design_kernel(y, s, p, present, pop.total, big_n, Z95, lam_fixed=None)
    if clt:  # Hájek difference estimator with its plain normal interval
        sampled = present & (p < 1)
        w = np.where(sampled, 1 / p, 0.0)
        r = y - lam[:, None] * s
        r_bar = (w * r).sum(1) / w.sum(1)
        var = (np.where(sampled, 1 - p, 0.0) * w * w * (r - r_bar[:, None]) ** 2).sum(1)
        se = np.sqrt(var) / w.sum(1)
        return theta, theta - Z95 * se, theta + Z95 * se
    return theta, lo, hi


RUNNERS: dict[str, Runner] = {
    "wilson": run_wilson,
    "ppi": run_ppi,
    "stratified": run_stratified,
    "active": run_active,
}


# --------------------------------------------------------------------------- labels needed


def median_half_width(pop: Populations, runner: Runner, n: int) -> float:
    _, lo, hi = runner(pop, n)
    return float(np.median(hi - lo) / 2)


def labels_needed(pop: Populations, method: str | Runner, target: float) -> int | None:
    """Smallest n with median half-width ≤ target (bisection; common random numbers)."""
    runner = RUNNERS[method] if isinstance(method, str) else method
    lo, hi = 10, 40
    while median_half_width(pop, runner, hi) > target:
        lo, hi = hi, hi * 2
        if hi >= pop.size:
            if median_half_width(pop, runner, pop.size - 1) > target:
                return None
            hi = pop.size - 1
            break
    while hi - lo > max(2, hi // 100):
        mid = (lo + hi) // 2
        if median_half_width(pop, runner, mid) <= target:
            hi = mid
        else:
            lo = mid
    return hi


def table_row(name: str, auroc: float, rate: float, pop: Populations, target: float) -> dict:
    needed = {m: labels_needed(pop, m, target) for m in METHODS}
    row = {"monitor": name, "auroc": auroc, "rate": rate, "N": pop.size, **needed}
    wilson = needed["wilson"]
    cells = []
    for m in METHODS:
        v = needed[m]
        if v is None:
            cells.append(f"{'> N':>7}")
        elif m == "wilson" or wilson is None:
            cells.append(f"{v:>7}")
        else:
            cells.append(f"{v:>7} ({wilson / v:4.1f}×)")
    print(f"{name:<12} {auroc:5.3f} {rate:6.1%} {pop.size:>7}  " + "  ".join(cells), flush=True)
    return row


def header() -> None:
    cols = "  ".join(f"{m:>7}" + ("" if m == "wilson" else " " * 8) for m in METHODS)
    print(f"{'monitor':<12} {'AUROC':>5} {'rate':>6} {'N':>7}  {cols}")


# --------------------------------------------------------------------------- TruthfulQA


def truthfulqa(path: Path, seed: int) -> tuple[Floats, Floats, float]:
    """Population labels (1 = untruthful) and a TF-IDF logistic-regression monitor's scores.

    The monitor is trained on the transcripts of a random half of the questions and scores
    the transcripts of the other half, so no question (and no answer to it) is seen twice.
    """
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.metrics import roc_auc_score

    rows = [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
    prompts = [r["prompt"] for r in rows]
    y = np.array([r["completion"].strip() == "no" for r in rows], dtype=np.float64)
    questions = sorted({p.split("\nA:")[0] for p in prompts})
    rng = np.random.default_rng(seed)
    train_q = set(rng.permutation(questions)[: len(questions) // 2])
    train = np.array([p.split("\nA:")[0] in train_q for p in prompts])
    vec = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True)
    x_train = vec.fit_transform([p for p, t in zip(prompts, train, strict=True) if t])
    x_pop = vec.transform([p for p, t in zip(prompts, train, strict=True) if not t])
    model = LogisticRegression(C=4.0, max_iter=2000).fit(x_train, y[train])
    scores = model.predict_proba(x_pop)[:, 1]
    auroc = float(roc_auc_score(y[~train], scores))
    return y[~train], scores, auroc


def resampled(y: Floats, s: Floats, rate: float | None, reps: int, seed: int) -> Populations:
    """The population (faults thinned at random to ``rate``), repeated once per repetition."""
    if rate is not None:
        rng = np.random.default_rng(seed)
        faults, fine = np.flatnonzero(y == 1), np.flatnonzero(y == 0)
        keep = round(rate * fine.size / (1 - rate))
        idx = np.concatenate([fine, rng.choice(faults, keep, replace=False)])
        y, s = y[idx], s[idx]
    return Populations(np.tile(y, (reps, 1)), np.tile(s, (reps, 1)), seed)


# --------------------------------------------------------------------------- coverage grid


def coverage_grid(reps: int, size: int, seed: int) -> None:
    variants: dict[str, Callable[[Populations, int], Interval]] = {
        "wilson": run_wilson,
        "ppi": run_ppi,
        "ppi (CLT)": lambda p, n: run_ppi(p, n, clt=True),
        "stratified": run_stratified,
        "active": run_active,
        "active (CLT)": lambda p, n: run_active(p, n, clt=True),
    }
    rng = np.random.default_rng(seed)
    worst: dict[str, tuple[float, str]] = {}
    print(f"\nCoverage of 95% intervals, {reps} populations of {size} per cell")
    print(f"{'AUROC':>5} {'rate':>5} {'n':>5}  " + "  ".join(f"{v:>12}" for v in variants))
    for auroc in (0.75, 0.9, 0.97):
        for rate in (0.01, 0.05, 0.2, 0.5):
            pop = simulated(rng, reps, size, rate, auroc)
            for n in (50, 100, 300, 1000):
                cells = []
                for name, runner in variants.items():
                    _, lo, hi = runner(pop, n)
                    c = float(np.mean((lo <= pop.truth) & (pop.truth <= hi)))
                    cells.append(f"{c:12.3f}")
                    where = f"AUROC {auroc}, rate {rate:.0%}, n {n}"
                    if name not in worst or c < worst[name][0]:
                        worst[name] = (c, where)
                print(f"{auroc:5.2f} {rate:5.0%} {n:5d}  " + "  ".join(cells), flush=True)
    print("\nMinimum coverage over the grid:")
    for name, (c, where) in worst.items():
        print(f"  {name:<13} {c:.3f}  ({where})")


# --------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--reps", type=int, default=200, help="repetitions per (method, n)")
    ap.add_argument("--size", type=int, default=20_000, help="simulated population size")
    ap.add_argument("--target", type=float, default=0.02, help="half-width to reach")
    ap.add_argument("--quick", action="store_true", help="60 repetitions, N = 10,000")
    ap.add_argument("--coverage", action="store_true", help="also print the coverage grid")
    ap.add_argument("--coverage-reps", type=int, default=2000)
    ap.add_argument("--aurocs", default="0.75,0.9,0.97", help="simulated monitors")
    ap.add_argument("--rates", default="0.01,0.05,0.2,0.5", help="simulated fault rates")
    ap.add_argument("--truthfulqa", type=Path, default=TRUTHFULQA, help="'' to skip")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    if args.quick:
        args.reps, args.size = 60, 10_000
    start = time.time()
    print(
        f"Labels for a median ±{args.target:.0%} 95% interval ({args.reps} repetitions; ratio = Wilson / method)"
    )
    header()
    rng = np.random.default_rng(args.seed)
    for auroc in (float(a) for a in args.aurocs.split(",") if a):
        for rate in (float(r) for r in args.rates.split(",") if r):
            pop = simulated(rng, args.reps, args.size, rate, auroc)
            table_row("simulated", auroc, rate, pop, args.target)
    if str(args.truthfulqa) in ("", "."):
        pass
    elif args.truthfulqa.is_file():
        y, s, auroc = truthfulqa(args.truthfulqa, args.seed)
        for thinned in (None, 0.2, 0.05):
            pop = resampled(y, s, thinned, args.reps, args.seed)
            table_row("TruthfulQA", auroc, float(pop.truth[0]), pop, args.target)
    else:
        print(f"TruthfulQA skipped: {args.truthfulqa} not found", file=sys.stderr)
    if args.coverage:
        coverage_grid(args.coverage_reps, 4000, args.seed + 1)
    print(f"\n({time.time() - start:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
