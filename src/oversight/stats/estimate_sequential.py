"""The fault rate from labels gathered over several review batches, each drawn by its own design.

A review goes in batches: export a queue (any policy), label it, export the next one from
what is still unlabelled, and so on, perhaps switching policies between batches. Each batch
b records, for every item it drew, the probability π_bi with which *that batch* chose it
from its candidates C_b, the transcripts not yet labelled when it was drawn. Pooling every
label into one Poisson design with those π is not valid: an item's chance of being labelled
at all is not π_bi once several batches could have drawn it, and the π of different batches
refer to different candidate sets. The exact construction used here treats the batches as a
**sequential design** (Horvitz–Thompson with per-batch probabilities conditional on what was
not yet drawn):

* Conditionally on everything that happened before batch b was drawn (which items were
  labelled by then: the set K_b), batch b is a Poisson (or simple random, or one-per-stratum)
  sample of C_b = population − K_b with known π_bi > 0. So
  ``T̂_b = Σ_{K_b} y + (difference estimator of Σ_{C_b} y from batch b)`` is unbiased for the
  population total whatever happened before: the labels of K_b count exactly, like a census.
  This is :func:`~oversight.stats.estimate.active_rate_ci` applied to batch b with the items
  of K_b passed with π = 1.
* The errors ``e_b = T̂_b − T`` are then martingale differences (``E[e_b | past] = 0``), so
  for weights α_b fixed before batch b is drawn, ``Σ α_b T̂_b`` (Σ α_b = 1) is unbiased and
  its variance is ``Σ α_b² Var(e_b)``: the cross terms vanish. Each ``Var(e_b)`` is
  estimated by the batch's own design variance.
* The weights are ``α_b ∝ m_b / |C_b|²``, with m_b the batch size asked for: the inverse of
  the variance a batch of m_b labels has when it must stand for |C_b| unlabelled items, if
  labels vary alike. They depend only on what was fixed when the batch was drawn (its size
  and candidate count), never on its labels. (The batch sizes are taken as a plan: choosing
  the size of a later batch from the labels of earlier ones would break the argument.)
* The interval is the Agresti–Coull-augmented normal interval of the module
  :mod:`oversight.stats.estimate` applied once to the pooled estimator: z²/2 pseudo-faults
  and z²/2 pseudo-fine items in all, batch b carrying the share α_b of them, then
  ``Σ α_b·centre_b ± z·sqrt(Σ α_b² var_b)``, clipped to what the labels already make
  certain. (Augmenting every batch in full would move the pooled centre by a single
  batch's O(1/m_b) while its standard error shrinks like a pooled one's: in simulation
  that covered 54% at a 1% rate.) With batches of equal candidate counts the pooled shift
  and pseudo-variance are exactly those of one design of Σ m_b labels. A single batch
  gives exactly :func:`~oversight.stats.estimate.active_rate_ci`.

Every item a batch drew must be labelled (a batch abandoned half-way is missing data, and
an item skipped because it was hard is missing not at random): the caller leaves incomplete
batches out. A batch that could not reach every candidate (a ``highest_score`` census, whose
other candidates had π = 0) says nothing about the rest and cannot be used on its own, but
its labels count exactly for every batch drawn after them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.typing import ArrayLike, NDArray

from oversight.stats.estimate import RateEstimate
from oversight.stats.estimate_kernels import (
    _design_parts,
    _DesignParts,
    _probabilities,
    _scores,
    _sequential_kernel,
    _z,
)

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class BatchDraw:
    """One review batch, by position in the population arrays."""

    #: Items the batch drew (indices into the population).
    drawn: ArrayLike
    #: π of each drawn item, relative to the batch's candidates (everything not in ``known``).
    inclusion_probabilities: ArrayLike
    #: Items already labelled when the batch was drawn: they were not candidates.
    known: ArrayLike = ()
    #: The batch size asked for (the expected size of a Poisson batch); default: len(drawn).
    expected_size: float | None = None


def sequential_rate_ci(
    scores_all: ArrayLike,
    labels_all: ArrayLike,
    batches: Sequence[BatchDraw],
    confidence: float = 0.95,
    *,
    use_monitor: bool = True,
) -> RateEstimate:
    """The fault rate of the N transcripts of ``scores_all`` from sequential review batches.

    ``labels_all`` holds each transcript's label (1 fault, 0 fine) and NaN where it has none;
    every item a batch drew or knew must be labelled. ``use_monitor=False`` ignores the
    scores (λ = 0: the design-weighted estimate from labels alone). Method ``sequential``,
    or that of :func:`~oversight.stats.estimate.active_rate_ci` for one batch.
    """
    f_all = _scores(scores_all, "scores_all")
    y_all = np.asarray(labels_all, dtype=np.float64)
    big_n = f_all.size
    if y_all.shape != (big_n,):
        raise ValueError(f"labels_all must have one entry per transcript ({big_n}), NaN where unlabelled")
    labelled = ~np.isnan(y_all)
    if not np.all((y_all[labelled] == 0) | (y_all[labelled] == 1)):
        raise ValueError("labels must be 1 (fault) or 0 (fine), NaN where unlabelled")
    if not batches:
        raise ValueError("no batches: nothing was drawn at random")
    z = _z(confidence)
    lam_fixed = None if use_monitor else 0.0
    draws = [_batch_arrays(batch, k, big_n, labelled) for k, batch in enumerate(batches, start=1)]
    sizes = [
        float(drawn.size if batch.expected_size is None else batch.expected_size)
        for batch, (drawn, _, _) in zip(batches, draws, strict=True)
    ]
    alpha = pooling_weights(sizes, [big_n - known.size for _, _, known in draws])
    parts: list[_DesignParts] = []
    used = np.zeros(big_n, dtype=bool)
    total = np.array([f_all.sum()])
    for k, ((drawn, pi, known), share) in enumerate(zip(draws, alpha, strict=True), start=1):
        index = np.concatenate([known, drawn])
        probs = np.concatenate([np.ones(known.size), pi])
        rest = big_n - known.size
        if rest > 0 and not np.any(pi < 1.0):
            raise ValueError(
                f"batch {k} drew no item at random (all π = 1) and {rest} candidates had no "
                "chance of being drawn: it cannot stand for them; leave it out (its labels "
                "still count for the batches drawn after them)"
            )
        parts.append(
            _design_parts(
                y_all[index][None, :], f_all[index][None, :], probs[None, :],
                np.ones((1, index.size), dtype=bool), total, np.array([float(big_n)]), z,
                lam_fixed=lam_fixed, pseudo_share=float(share),
            )
        )
        used[index] = True
    faults = float(np.nansum(y_all[used]))
    fine = float(used.sum()) - faults
    est, lo, hi = _sequential_kernel(
        parts, alpha[:, None], np.array([faults / big_n]), np.array([1.0 - fine / big_n]), z
    )
    if len(batches) == 1:
        p = parts[0]
        method = "census" if not p.has_rest[0] else ("active" if use_monitor else "classical")
    else:
        method = "sequential" if use_monitor else "classical"
    return RateEstimate(
        float(est[0]), float(lo[0]), float(hi[0]), int(used.sum()), big_n, method, confidence
    )


def pooling_weights(sizes: ArrayLike, candidates: ArrayLike) -> FloatArray:
    """``α_b ∝ m_b / |C_b|²`` normalised to sum to 1 (see the module docstring)."""
    m = np.asarray(sizes, dtype=np.float64)
    c = np.maximum(np.asarray(candidates, dtype=np.float64), 1.0)
    w = m / c**2
    return np.asarray(w / w.sum(), dtype=np.float64)


def _batch_arrays(
    batch: BatchDraw, k: int, big_n: int, labelled: NDArray[np.bool_]
) -> tuple[IntArray, FloatArray, IntArray]:
    drawn = _indices(batch.drawn, f"batch {k}: drawn", big_n)
    known = _indices(batch.known, f"batch {k}: known", big_n)
    if drawn.size == 0:
        raise ValueError(f"batch {k} drew nothing")
    pi = _probabilities(batch.inclusion_probabilities, drawn.size)
    if np.intersect1d(drawn, known).size:
        raise ValueError(f"batch {k} drew items that were already labelled (known) when it was drawn")
    missing = drawn[~labelled[drawn]]
    if missing.size:
        raise ValueError(
            f"batch {k}: {missing.size} of its {drawn.size} items are not labelled (item "
            f"{int(missing[0])} first); label the whole batch or leave it out"
        )
    if not labelled[known].all():
        raise ValueError(f"batch {k}: items marked known are not labelled")
    return drawn, pi, known


def _indices(values: ArrayLike, name: str, big_n: int) -> IntArray:
    a = np.asarray(values)
    if a.size == 0:
        return np.zeros(0, dtype=np.int64)
    if a.ndim != 1 or not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be a 1-d array of integer indices")
    a = a.astype(np.int64)
    if a.min() < 0 or a.max() >= big_n:
        raise ValueError(f"{name} indices must lie in 0..{big_n - 1}")
    if np.unique(a).size != a.size:
        raise ValueError(f"{name} repeats an index")
    return a
