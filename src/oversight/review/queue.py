"""Which transcripts a human reads next, and the probability with which each was chosen.

A review queue has two jobs that pull against each other: show reviewers the items most
worth their time (high scores, uncertain scores, a spread of topics) and still let us
estimate the fault rate of the *whole* population without bias. Both are possible when every
shown item carries its **inclusion probability** ``π_i = P(item i is chosen)`` under the
design that chose it: the Horvitz–Thompson estimator ``Σ_sample y_i / π_i`` is unbiased for
the population total ``Σ_all y_i`` whatever the π_i are, provided ``π_i > 0`` for every item.
The policies here are pure functions of arrays (no database); each returns a
:class:`Selection` whose ``design`` tells an estimator how to use the recorded π.

Designs, and what an estimator must do with each (``N`` = candidates after ``exclude``):

``srs`` (policy ``random``)
    Simple random sampling without replacement, exactly ``n`` items, ``π_i = n / N``. Every
    subset of size n is equally likely. Estimate a rate by the sample mean; its variance
    carries the finite-population correction ``(1 − n/N)·s²/n``.

``poisson`` (policies ``active`` and ``most_uncertain``)
    Each item is drawn independently, ``ξ_i ~ Bernoulli(π_i)``, with ``Σ π_i = n``: the
    *expected* size is n, the actual size is random (sd ``sqrt(Σ π_i(1 − π_i))``, a little
    under ``sqrt(n)``). We chose Poisson over fixed-size PPS designs (systematic,
    conditional Poisson, Sampford) because (a) the recorded π_i is then exactly the
    probability used, with no approximation; (b) draws are independent, so the
    Horvitz–Thompson variance has the simple unbiased estimate
    ``Σ_sample (1 − π_i) y_i² / π_i²``; and (c) it is the sampling model of active
    statistical inference (Zrnic & Candès 2024), whose estimator
    ``θ̂ = (1/N) Σ_all [f_i + ξ_i (y_i − f_i) / π_i]`` (``f_i`` the monitor's score) is
    unbiased because ``E[ξ_i] = π_i``. π comes from :func:`pps_probabilities`: a size
    measure mixed with a uniform floor, scaled to sum to n, capped at 1.

``stratified`` (policy ``diverse``)
    The candidates are split into n strata (k-means clusters of their embeddings) and one
    item is drawn uniformly from each, so ``π_i = 1 / |stratum_i|`` exactly and exactly n
    items are chosen. ``Σ_h |h| · y_h`` is unbiased for the total. With one draw per stratum
    there is no within-stratum variance estimate: collapse pairs of similar strata
    (the collapsed-strata estimator, conservative) or treat the draw as Poisson with the
    same π (also conservative, since stratification only removes between-stratum variance).
    The strata depend on the embeddings and the seed, never on labels, so conditioning
    on them keeps the estimator unbiased.

``census`` (policies ``highest_score`` and ``most_uncertain_top``)
    A deterministic pick: the chosen items form a stratum that is enumerated completely
    (``π = 1``), and every other candidate has ``π = 0`` in this batch. A census batch
    therefore says nothing by itself about the rest of the population: an estimator must
    add the stratum's labels exactly (weight 1) and estimate the remainder from a separate
    random sample of the candidates *outside* the stratum, e.g.
    ``select("random", ids, scores, m, exclude=census.ids)``, whose π = m / (N − n) is
    relative to that remainder. The stratum is the recorded id set; ``threshold`` only
    describes it (ties at the threshold are broken by input order).

Scores are monitor scores in [0, 1]; NaN means the monitor failed on that item, which we
treat as maximally uncertain (score 0.5): a failure is exactly where a human is needed.

Batches are sequential: each is drawn from the candidates of its moment (not yet labelled,
not in ``exclude``), and its π is relative to that candidate set (``population_size``). The
estimates assume a batch is labelled in full; a batch abandoned half-way is missing data
(for ``srs`` a prefix of the presentation order is itself a simple random sample, since
that order is random; for the other designs it is not).
"""

from __future__ import annotations

import hashlib
import re
import warnings
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray

from oversight.errors import DataError, SpecError

Design = Literal["srs", "poisson", "stratified", "census"]
DESIGNS: tuple[Design, ...] = ("srs", "poisson", "stratified", "census")

#: Share of the review budget spread uniformly over all candidates by the Poisson policies.
#: It guarantees ``π_i ≥ uniform_share · n / N`` for every item, so the Horvitz–Thompson
#: weights ``1/π_i`` are at most ``N / (uniform_share · n)``: 10× the weight of simple random
#: sampling at 0.1, which bounds the variance a confidently wrong monitor can cause.
DEFAULT_UNIFORM_SHARE = 0.1

#: Above this many candidates ``diverse`` clusters with MiniBatchKMeans instead of KMeans.
KMEANS_MAX_N = 10_000

#: Score used for items whose monitor failed (NaN): the most uncertain score.
ERROR_SCORE = 0.5

IntArray = NDArray[np.int64]
FloatArray = NDArray[np.float64]


@dataclass(frozen=True)
class QueueItem:
    """One chosen item, as shown to a reviewer."""

    id: int
    #: 1-based place in the presentation order.
    position: int
    inclusion_probability: float
    #: The stratum (cluster) the item was drawn from, for the ``stratified`` design.
    stratum: int | None


@dataclass(frozen=True)
class Selection:
    """A batch chosen for review, with everything an estimator needs to weight its labels."""

    policy: str
    design: Design
    #: Chosen transcript ids in presentation order.
    ids: tuple[int, ...]
    #: ``π_i`` for each chosen id, aligned with ``ids``; always in (0, 1].
    inclusion_probability: tuple[float, ...]
    #: Stratum of each chosen id (``stratified`` design only), aligned with ``ids``.
    stratum: tuple[int, ...] | None
    seed: int
    batch_id: str
    #: N: how many candidates the batch was drawn from (after ``exclude``).
    population_size: int
    #: n asked for: the exact size for srs/stratified/census, the expected size for poisson.
    expected_size: int
    #: census only: ``highest_score`` picked scores ≥ threshold, ``most_uncertain_top``
    #: picked ``|score − 0.5| ≤ threshold`` (NaN scores count as 0.5).
    threshold: float | None = None

    def __post_init__(self) -> None:
        if len(self.inclusion_probability) != len(self.ids):
            raise ValueError("ids and inclusion_probability must have the same length")
        if self.stratum is not None and len(self.stratum) != len(self.ids):
            raise ValueError("ids and stratum must have the same length")

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def items(self) -> tuple[QueueItem, ...]:
        """The chosen items in presentation order."""
        strata = self.stratum if self.stratum is not None else (None,) * len(self.ids)
        return tuple(
            QueueItem(id=i, position=k, inclusion_probability=p, stratum=s)
            for k, (i, p, s) in enumerate(
                zip(self.ids, self.inclusion_probability, strata, strict=True), start=1
            )
        )

    @property
    def weights(self) -> tuple[float, ...]:
        """Horvitz–Thompson weights ``1/π_i``: how many candidates each chosen item stands for."""
        return tuple(1.0 / p for p in self.inclusion_probability)


# --------------------------------------------------------------------------- size measures


def filled_scores(scores: ArrayLike) -> FloatArray:
    """Scores with monitor errors (NaN) replaced by :data:`ERROR_SCORE`."""
    s = np.asarray(scores, dtype=np.float64)
    return np.where(np.isnan(s), ERROR_SCORE, s)


def score_std(scores: ArrayLike) -> FloatArray:
    """``sqrt(s(1 − s))``: the standard deviation of a 0/1 label that is 1 with probability s.

    Sampling with π ∝ this is the variance-minimising (Neyman-type) choice of active
    inference when the score is calibrated: labels are bought where the monitor's
    prediction leaves the most variance. Largest (0.5) at s = 0.5 and for monitor errors.
    """
    s = filled_scores(scores)
    return np.sqrt(s * (1.0 - s))


def closeness_to_half(scores: ArrayLike) -> FloatArray:
    """``1 − |2s − 1|``: 1 at s = 0.5 (and for monitor errors), 0 at s = 0 or 1.

    A sharper peak than :func:`score_std` (0.2 against 0.6 of the maximum at s = 0.1), for a
    queue that should mostly show borderline cases.
    """
    s = filled_scores(scores)
    return 1.0 - np.abs(2.0 * s - 1.0)


# --------------------------------------------------------------------------- π and draws


def pps_probabilities(
    size: ArrayLike, n: int, *, uniform_share: float = DEFAULT_UNIFORM_SHARE
) -> FloatArray:
    """Inclusion probabilities proportional to ``size``, with a uniform floor, summing to n.

    Definition: with ``N`` items, ``a = uniform_share`` and ``w_i = (1 − a)·size_i/Σ size +
    a/N`` (plain ``1/N`` when every size is 0), ``π_i = min(1, c·w_i)`` where ``c ≥ n`` is the
    one constant that makes ``Σ π_i = n``. It is found by capping: items whose share would
    exceed 1 get π = 1 and the remaining budget is spread over the others in proportion to w,
    until none exceeds 1. Capping only raises c, so ``π_i ≥ a·n/N > 0`` for every item: the
    floor is what keeps Horvitz–Thompson unbiased (an item with π = 0, say one the monitor
    scored 0 with confidence, could never be seen, and its faults would silently drop out of
    every estimate) and bounds its weights.
    """
    w = np.asarray(size, dtype=np.float64)
    count = w.size
    if w.ndim != 1 or count == 0:
        raise ValueError("size must be a non-empty 1-d array")
    if not np.all(np.isfinite(w)) or np.any(w < 0):
        raise ValueError("size must be finite and non-negative")
    if not 0 < uniform_share <= 1:
        raise ValueError(
            f"uniform_share must be in (0, 1], got {uniform_share}: a share of 0 lets "
            "items have π = 0, which biases every estimate"
        )
    if not 1 <= n <= count:
        raise ValueError(f"n must be between 1 and {count}, got {n}")
    if n == count:
        return np.ones(count)
    total = w.sum()
    mixed = np.full(count, 1.0 / count)
    if total > 0:
        mixed = (1.0 - uniform_share) * w / total + uniform_share / count
    pi = np.empty(count)
    capped = np.zeros(count, dtype=bool)
    while True:
        free = np.flatnonzero(~capped)
        share = (n - capped.sum()) * mixed[free] / mixed[free].sum()
        over = share >= 1.0
        if not over.any():
            pi[free] = share
            break
        capped[free[over]] = True
    pi[capped] = 1.0
    return pi


def poisson_draw(pi: ArrayLike, rng: np.random.Generator) -> IntArray:
    """Indices drawn independently with ``P(i chosen) = π_i``, in random order."""
    p = np.asarray(pi, dtype=np.float64)
    chosen = np.flatnonzero(rng.random(p.size) < p)
    return rng.permutation(chosen).astype(np.int64)


def srs_draw(count: int, n: int, rng: np.random.Generator) -> IntArray:
    """n of ``count`` indices without replacement, every subset equally likely, random order."""
    return rng.choice(count, size=n, replace=False).astype(np.int64)


def stratified_draw(strata: ArrayLike, rng: np.random.Generator) -> tuple[IntArray, FloatArray]:
    """One index drawn uniformly from each stratum; returns (indices, π) in random order.

    Each item gets an independent uniform key and the smallest key of each stratum wins,
    so every member of a stratum is equally likely: ``π_i = 1 / |stratum_i|``.
    """
    labels = np.asarray(strata)
    if labels.ndim != 1 or labels.size == 0:
        raise ValueError("strata must be a non-empty 1-d array")
    keys = rng.random(labels.size)
    order = np.lexsort((keys, labels))
    first = np.ones(order.size, dtype=bool)
    first[1:] = labels[order[1:]] != labels[order[:-1]]
    winners = order[first]
    _, inverse, sizes = np.unique(labels, return_inverse=True, return_counts=True)
    shown = rng.permutation(winners).astype(np.int64)
    return shown, 1.0 / sizes[inverse[shown]]


def kmeans_strata(embeddings: ArrayLike, k: int, seed: int) -> IntArray:
    """Exactly k non-empty strata from k-means on the row-normalised embeddings.

    Rows are scaled to unit length because text embeddings compare by angle; k-means on the
    unit sphere then groups by cosine similarity. When k-means finds fewer than k distinct
    clusters (duplicate embeddings), the largest strata are split in half by input order:
    any partition made without looking at labels keeps the design unbiased, and exactly k
    strata keep the batch at exactly k items. Labels are renumbered 0..k−1 by first
    appearance so they do not depend on the clustering library's numbering.
    """
    x = np.asarray(embeddings, dtype=np.float64)
    count = x.shape[0]
    if k >= count:
        return np.arange(count, dtype=np.int64)
    norms = np.linalg.norm(x, axis=1, keepdims=True)
    x = x / np.where(norms > 0, norms, 1.0)
    labels = _kmeans_labels(x, k, seed) if k > 1 else np.zeros(count, dtype=np.int64)
    return _split_to_k(_renumber(labels), k)


def _kmeans_labels(x: FloatArray, k: int, seed: int) -> IntArray:
    try:
        from sklearn.cluster import KMeans, MiniBatchKMeans
        from sklearn.exceptions import ConvergenceWarning
    except ImportError:  # pragma: no cover - scikit-learn is a dependency
        raise SpecError(
            "the diverse policy needs scikit-learn; install it with `pip install scikit-learn`"
        ) from None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # duplicates: handled by splitting
        if x.shape[0] > KMEANS_MAX_N:
            model = MiniBatchKMeans(n_clusters=k, n_init=1, random_state=seed, batch_size=1024)
        else:
            model = KMeans(n_clusters=k, n_init=1, random_state=seed)
        return np.asarray(model.fit_predict(x), dtype=np.int64)


def _renumber(labels: IntArray) -> IntArray:
    _, first, inverse = np.unique(labels, return_index=True, return_inverse=True)
    rank = np.empty(first.size, dtype=np.int64)
    rank[np.argsort(first, kind="stable")] = np.arange(first.size)
    return rank[inverse]


def _split_to_k(labels: IntArray, k: int) -> IntArray:
    labels = labels.copy()
    count = int(labels.max()) + 1
    while count < k:
        sizes = np.bincount(labels, minlength=count)
        biggest = int(np.argmax(sizes))
        members = np.flatnonzero(labels == biggest)
        labels[members[members.size // 2 :]] = count
        count += 1
    return labels


# --------------------------------------------------------------------------- policies


@dataclass(frozen=True)
class _Pool:
    """The candidates left after ``exclude``."""

    ids: IntArray
    scores: FloatArray
    embeddings: FloatArray | None


@dataclass(frozen=True)
class _Draw:
    index: IntArray
    pi: FloatArray
    stratum: IntArray | None = None
    threshold: float | None = None


DrawFn = Callable[[_Pool, int, np.random.Generator, float], _Draw]


@dataclass(frozen=True)
class Policy:
    """A selection policy, described as data so the CLI and web app can list it."""

    name: str
    design: Design
    summary: str
    needs_embeddings: bool
    draw: DrawFn


def _random(pool: _Pool, n: int, rng: np.random.Generator, share: float) -> _Draw:
    index = srs_draw(pool.ids.size, n, rng)
    return _Draw(index, np.full(n, n / pool.ids.size))


def _top(key: FloatArray, n: int) -> tuple[IntArray, float]:
    order = np.argsort(key, kind="stable")[:n].astype(np.int64)
    return order, float(key[order[-1]])


def _highest_score(pool: _Pool, n: int, rng: np.random.Generator, share: float) -> _Draw:
    index, neg_threshold = _top(-filled_scores(pool.scores), n)
    return _Draw(index, np.ones(n), threshold=-neg_threshold)


def _most_uncertain_top(pool: _Pool, n: int, rng: np.random.Generator, share: float) -> _Draw:
    index, threshold = _top(np.abs(filled_scores(pool.scores) - 0.5), n)
    return _Draw(index, np.ones(n), threshold=threshold)


def _poisson(size: FloatArray, n: int, rng: np.random.Generator, share: float) -> _Draw:
    pi = pps_probabilities(size, n, uniform_share=share)
    index = poisson_draw(pi, rng)
    return _Draw(index, pi[index])


def _most_uncertain(pool: _Pool, n: int, rng: np.random.Generator, share: float) -> _Draw:
    return _poisson(closeness_to_half(pool.scores), n, rng, share)


def _active(pool: _Pool, n: int, rng: np.random.Generator, share: float) -> _Draw:
    return _poisson(score_std(pool.scores), n, rng, share)


def _diverse(pool: _Pool, n: int, rng: np.random.Generator, share: float) -> _Draw:
    assert pool.embeddings is not None
    cluster_seed = int(rng.integers(2**31 - 1))
    strata = kmeans_strata(pool.embeddings, n, cluster_seed)
    index, pi = stratified_draw(strata, rng)
    return _Draw(index, pi, stratum=strata[index])


POLICIES: Mapping[str, Policy] = {
    p.name: p
    for p in (
        Policy("random", "srs", "simple random sample, π = n/N", False, _random),
        Policy(
            "highest_score",
            "census",
            "the n highest scores (deterministic; π = 1 in that stratum, pair with random)",
            False,
            _highest_score,
        ),
        Policy(
            "most_uncertain",
            "poisson",
            "scores near 0.5 favoured: π ∝ 1 − |2s − 1| plus a uniform floor",
            False,
            _most_uncertain,
        ),
        Policy(
            "most_uncertain_top",
            "census",
            "the n scores closest to 0.5 (deterministic; π = 1 in that stratum)",
            False,
            _most_uncertain_top,
        ),
        Policy(
            "diverse",
            "stratified",
            "one item from each of n embedding clusters, π = 1/|cluster|",
            True,
            _diverse,
        ),
        Policy(
            "active",
            "poisson",
            "active inference: π ∝ sqrt(s(1 − s)) plus a uniform floor",
            False,
            _active,
        ),
    )
}


def get_policy(name: str) -> Policy:
    """The policy called ``name`` (case and ``-``/``_`` ignored); a SpecError lists them."""
    key = name.strip().lower().replace("-", "_")
    if key not in POLICIES:
        raise SpecError(f"unknown review policy {name!r}; accepted: {', '.join(POLICIES)}")
    return POLICIES[key]


# --------------------------------------------------------------------------- entry point


def select(
    policy: str,
    ids: ArrayLike,
    scores: ArrayLike,
    n: int,
    *,
    embeddings: ArrayLike | None = None,
    seed: int = 0,
    exclude: Iterable[int] = (),
    uniform_share: float = DEFAULT_UNIFORM_SHARE,
    batch_id: str | None = None,
) -> Selection:
    """Choose the next items for review and record each one's inclusion probability.

    ``ids``, ``scores`` (and ``embeddings``, N × d, for ``diverse``) describe the candidates,
    one entry each; ids in ``exclude`` are dropped first and π is relative to what remains.
    All randomness comes from ``numpy.random.default_rng(seed)``, so a seed reproduces a
    batch exactly. ``uniform_share`` is the floor of the Poisson policies (see
    :func:`pps_probabilities`). The batch id defaults to the policy, N, n and a digest of the
    seed and candidates (``active-N1000-n40-3f9a…``), so re-exporting the same batch gives
    the same id and :func:`batch_plan` can read N and n back.
    """
    chosen = get_policy(policy)
    if isinstance(seed, bool) or not isinstance(seed, int | np.integer) or seed < 0:
        raise SpecError(f"seed must be a non-negative integer, got {seed!r}")
    if isinstance(n, bool) or not isinstance(n, int | np.integer):
        raise SpecError(f"n must be an integer, got {n!r}")
    if chosen.needs_embeddings and embeddings is None:
        raise SpecError(
            f"the {chosen.name} policy clusters embeddings: pass embeddings (N × d), "
            "e.g. from an embedding monitor, or pick another policy"
        )
    pool, excluded = _pool(ids, scores, embeddings if chosen.needs_embeddings else None, exclude)
    size = pool.ids.size
    if not 1 <= n <= size:
        left = f" ({excluded} excluded)" if excluded else ""
        raise SpecError(
            f"cannot choose {n} items: n must be between 1 and {size}, the candidates{left}"
        )
    rng = np.random.default_rng(int(seed))
    draw = chosen.draw(pool, int(n), rng, uniform_share)
    return Selection(
        policy=chosen.name,
        design=chosen.design,
        ids=tuple(int(i) for i in pool.ids[draw.index]),
        inclusion_probability=tuple(float(p) for p in draw.pi),
        stratum=None if draw.stratum is None else tuple(int(s) for s in draw.stratum),
        seed=int(seed),
        batch_id=batch_id or _batch_id(chosen.name, int(seed), int(n), pool),
        population_size=size,
        expected_size=int(n),
        threshold=draw.threshold,
    )


def _pool(
    ids: ArrayLike, scores: ArrayLike, embeddings: ArrayLike | None, exclude: Iterable[int]
) -> tuple[_Pool, int]:
    id_arr = np.asarray(ids)
    if id_arr.ndim != 1:
        raise DataError("must be a 1-d sequence of transcript ids", field="ids")
    if id_arr.size and not np.issubdtype(id_arr.dtype, np.integer):
        raise DataError(f"transcript ids must be integers, got {id_arr.dtype}", field="ids")
    id_arr = id_arr.astype(np.int64)
    uniq, counts = np.unique(id_arr, return_counts=True)
    if np.any(counts > 1):
        raise DataError(f"duplicate transcript id {int(uniq[counts > 1][0])}", field="ids")
    try:
        s = np.asarray(scores, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError(
            "scores must be numbers in [0, 1] (NaN for a monitor error)", field="scores"
        ) from None
    if s.shape != id_arr.shape:
        raise DataError(f"{s.size} scores for {id_arr.size} ids", field="scores")
    bad = ~np.isnan(s) & ~((s >= 0) & (s <= 1))
    if bad.any():
        k = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"score {s[k]} of transcript {int(id_arr[k])} is outside [0, 1] "
            "(use NaN for a monitor error)",
            field="scores",
        )
    emb = None
    if embeddings is not None:
        emb = np.asarray(embeddings, dtype=np.float64)
        if emb.ndim != 2 or emb.shape[0] != id_arr.size:
            raise DataError(
                f"embeddings must be N × d with N = {id_arr.size}, got shape {emb.shape}",
                field="embeddings",
            )
        if not np.all(np.isfinite(emb)):
            raise DataError("embeddings contain NaN or infinite values", field="embeddings")
    drop = np.fromiter((int(i) for i in exclude), dtype=np.int64)
    keep = ~np.isin(id_arr, drop)
    pool = _Pool(id_arr[keep], s[keep], None if emb is None else emb[keep])
    return pool, int((~keep).sum())


def _batch_id(policy: str, seed: int, n: int, pool: _Pool) -> str:
    digest = hashlib.sha256(f"{policy}|{seed}|{n}|".encode())
    digest.update(pool.ids.tobytes())
    digest.update(np.ascontiguousarray(pool.scores).tobytes())
    return f"{policy}-N{pool.ids.size}-n{n}-{digest.hexdigest()[:12]}"


_BATCH_PLAN = re.compile(r"-N(\d+)-n(\d+)-[0-9a-f]{12}$")


def batch_plan(batch_id: str) -> tuple[int, int] | None:
    """``(N, n)`` of a batch from its id: how many candidates it was drawn from and the size
    asked for (the expected size of a Poisson batch). None for ids given by the caller.

    The ids carry them because the estimate needs both (:mod:`oversight.stats.estimate_sequential`)
    and a queue item row has no column for them.
    """
    found = _BATCH_PLAN.search(batch_id)
    return None if found is None else (int(found.group(1)), int(found.group(2)))
