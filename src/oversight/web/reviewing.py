"""The review queue as reviewers meet it in the web app: claim the next item, and when a
queue runs dry, draw its next batch with the queue module's policy.

A queue is a (monitor, policy) pair. Its items are ``queue_items`` rows; batches come from
:func:`oversight.review.queue.select` over the transcripts the monitor's latest version scored
that are not labelled yet, each with inclusion probabilities relative to that candidate set:
the sequential design that :mod:`oversight.review.estimates` pools (a batch enters the
estimate once all its items are labelled). A transcript may therefore sit in two open items
(of two batches); claims never hand it to two reviewers at once (``store.claims``). Batch
creation runs in one write transaction under the monitor's claim lock (no label is written
while a batch reads its candidates) and first re-checks that the queue is still dry, so
reviewers arriving together add one batch, not one each.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from oversight.errors import SpecError
from oversight.review.queue import POLICIES, Policy, get_policy
from oversight.review.queue import select as select_batch
from oversight.store import claims, schema
from oversight.store.claims import QueueEntry
from oversight.web.context import AppContext


@dataclass(frozen=True)
class PolicyChoice:
    policy: Policy
    available: bool
    reason: str | None
    #: Shown next to the policy: how its labels enter the estimate.
    note: str | None


def policy_choices() -> list[PolicyChoice]:
    out = []
    for policy in POLICIES.values():
        if policy.needs_embeddings:
            out.append(PolicyChoice(policy, False, "needs embeddings, which the store does not keep; use the CLI (`oversight queue`)", None))
        elif policy.design == "census":
            out.append(PolicyChoice(policy, True, None, "deterministic picks (π = 1): the estimate covers the rest only with a random or active batch as well"))
        else:
            out.append(PolicyChoice(policy, True, None, None))
    return out


def check_queue(ctx: AppContext, monitor: str, policy: str) -> tuple[str, str]:
    """(monitor's latest version, canonical policy name); SpecError for an unusable pair."""
    chosen = get_policy(policy)
    if chosen.needs_embeddings:
        raise SpecError(f"the {chosen.name} policy needs embeddings; choose another policy in the web app")
    version = ctx.cache.versions().get(monitor)
    if version is None:
        raise SpecError(f"no verdicts from monitor {monitor!r}; run `oversight monitor --monitor {monitor}` first")
    return version, chosen.name


def claim(ctx: AppContext, reviewer: str, monitor: str, policy: str) -> QueueEntry | None:
    """The reviewer's next item in this queue (adding a batch when it is dry); None when every
    scored transcript is labelled, queued elsewhere or skipped by this reviewer."""
    version, policy = check_queue(ctx, monitor, policy)
    lock_for = ctx.settings.lock_for
    for _ in range(3):  # claim; on a dry queue add a batch and claim again
        entry = claims.claim_next(ctx.store, reviewer, monitor, policy, lock_for=lock_for)
        if entry is not None:
            return entry
        if not add_batch(ctx, reviewer, monitor, version, policy):
            return claims.claim_next(ctx.store, reviewer, monitor, policy, lock_for=lock_for)
    return None


def add_batch(ctx: AppContext, reviewer: str, monitor: str, version: str, policy: str) -> bool:
    """Draw and record the queue's next batch unless it has work for ``reviewer`` already.
    False when there is nothing left to draw from."""
    population = ctx.cache.population(monitor, version)
    with claims.write_transaction(ctx.store) as conn:
        claims.serialise(conn, monitor)
        if claims.has_claimable(conn, reviewer, monitor, policy, schema.utcnow()):
            return True
        # Candidates are exactly the scored transcripts not labelled yet: the estimator checks
        # a batch's N against that set (review.estimates), so items still open in an earlier
        # batch stay candidates; a claim never hands out a transcript someone else holds.
        taken = claims.labelled_transcripts(conn)
        exclude = np.fromiter(taken, dtype=np.int64, count=len(taken))
        candidates = int((~np.isin(population.ids, exclude)).sum()) if population.ids.size else 0
        if candidates == 0:
            return False
        seed = claims.batch_count(conn, monitor, policy)
        n = min(ctx.settings.batch_size, candidates)
        selection = select_batch(policy, population.ids, population.scores, n, seed=seed, exclude=exclude.tolist())
        if len(selection) == 0:  # a Poisson draw can come out empty; the next seed will not
            selection = select_batch(policy, population.ids, population.scores, n, seed=seed + 10_000, exclude=exclude.tolist())
        claims.add_items(conn, monitor, policy, selection.batch_id, list(zip(selection.ids, selection.inclusion_probability, strict=True)))
        return len(selection) > 0
