"""Lay out loglikelihood requests as token trees, so every distinct token prefix runs once.

A causal LM's hidden state at a token depends only on the tokens before it. Requests that
share leading tokens (the choices of one question share their context; the choices
``" (A)"`` and ``" (B)"`` share the token ``" ("``; prompts built from one template share
an instruction) can therefore share those positions. This module plans that sharing; the
engine (:mod:`oversight.models.loglikelihood`) runs the plan.

* The **shared prefix** is the longest run of tokens at the start of every context of a
  batch. It runs once; every row attends to its keys and values.
* The rest of each question is a **row**, a token tree: a node holds one token, its
  parent is the token before it (or the shared prefix), and the question's sequences
  (context + each choice) merge their common leading tokens. A node sits at position
  ``len(prefix) + depth``, exactly where the token sits in its own sequence, so rotary and
  learned position embeddings see the numbers a plain pass sees.
* Each continuation token is a **target**: the node whose output predicts it, and the token.

Each question (the requests sharing one context) has a row of its own, its context from
the row's start: a question's numbers then never depend on what else is in the batch
(see the engine's notes on batch invariance). Rows are grouped into forward calls of
similar length, and :func:`plan` decides whether the shared prefix runs as a pass of its
own, by an estimated cost: padded positions, plus the attention pairs the kernel visits
(it cannot skip what the mask hides), plus a fixed cost per call.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

#: ``(context, continuation)`` token ids of one request.
TokenPair = tuple[tuple[int, ...], tuple[int, ...]]


@dataclass
class Row:
    """A question's token tree, hanging off the shared prefix."""

    tokens: list[int] = field(default_factory=list)
    #: Index of each node's parent in this row; -1 when the parent is the shared prefix.
    parents: list[int] = field(default_factory=list)
    #: Number of row nodes above each node (its position is ``len(prefix) + depth``).
    depths: list[int] = field(default_factory=list)
    _children: dict[tuple[int, int], int] = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return len(self.tokens)

    def insert(self, sequence: Sequence[int]) -> list[int]:
        """The node of each token of ``sequence``, adding the ones the row lacks."""
        path: list[int] = []
        node = -1
        for token in sequence:
            child = self._children.get((node, token))
            if child is None:
                child = len(self.tokens)
                self._children[(node, token)] = child
                self.tokens.append(token)
                self.parents.append(node)
                self.depths.append(len(path))
            path.append(child)
            node = child
        return path


@dataclass(frozen=True)
class Target:
    """One continuation token: the node whose output predicts it, and the token."""

    row: int
    node: int
    token: int


@dataclass
class Layout:
    prefix: tuple[int, ...]
    rows: list[Row]
    #: Per request (in request order), one target per continuation token.
    targets: list[list[Target]]


@dataclass
class Plan:
    """A layout and its forward calls (row indices per call), with their estimated cost."""

    layout: Layout
    calls: list[list[int]]
    cost: float


@dataclass(frozen=True)
class CostModel:
    """What a forward pass costs, in token positions of the model's body."""

    #: A (query, key) pair visited by attention, relative to one position's layers.
    key: float
    #: A forward call's fixed cost (Python and kernel launches).
    call: float
    #: Padded positions a call may hold (memory), unless a single row is longer.
    max_tokens: int


@dataclass
class _Question:
    """Requests that share one context (the choices of one question)."""

    context: tuple[int, ...]
    members: list[tuple[int, tuple[int, ...]]]  # (request index, continuation)

    def sequences(self, skip: int) -> list[tuple[int, ...]]:
        """Tokens each member runs through the model: its context after ``skip`` and all
        of its continuation but the last token (which is only predicted)."""
        tail = self.context[skip:]
        return [tail + cont[:-1] for _, cont in self.members]


def shared_prefix_length(contexts: Sequence[Sequence[int]]) -> int:
    """Tokens at the start of every context, leaving each at least one token of its own
    (the last context token's output predicts the continuation, so it must be in a row)."""
    shortest = min(len(c) for c in contexts)
    first = contexts[0]
    n = 0
    while n < shortest - 1 and all(c[n] == first[n] for c in contexts):
        n += 1
    return n


def layout(pairs: Sequence[TokenPair], *, share_prefix: bool = True) -> Layout:
    """Lay out ``pairs``, a row per question (in order of first appearance); without
    ``share_prefix`` the shared prefix stays in the rows."""
    if not pairs:
        return Layout((), [], [])
    questions: dict[tuple[int, ...], _Question] = {}
    for i, (context, continuation) in enumerate(pairs):
        if not context or not continuation:
            raise ValueError(f"request {i} needs a non-empty context and continuation")
        questions.setdefault(context, _Question(context, [])).members.append((i, continuation))
    shared = 0
    if share_prefix:
        shared = shared_prefix_length(list(questions)) if len(questions) > 1 else len(pairs[0][0]) - 1
    rows: list[Row] = []
    targets: list[list[Target]] = [[] for _ in pairs]
    for q in questions.values():
        row = Row()
        first_scored = len(q.context) - shared - 1  # the last context token predicts the first
        for (i, cont), seq in zip(q.members, q.sequences(shared), strict=True):
            path = row.insert(seq)
            targets[i] = [Target(len(rows), path[first_scored + j], tok) for j, tok in enumerate(cont)]
        rows.append(row)
    return Layout(pairs[0][0][:shared], rows, targets)


def group_rows(
    lengths: Sequence[int], *, prefix: int, cost: CostModel, pad: Callable[[int], int] = lambda w: w
) -> tuple[list[list[int]], float]:
    """Split rows (indices into ``lengths``) into forward calls, each padded to
    ``pad(longest row)``, minimising the estimated cost; returns the calls and that cost.

    Rows are sorted by length and the cuts found by dynamic programming, so each call
    holds rows of similar length.
    """
    order = sorted(range(len(lengths)), key=lambda r: -lengths[r])
    n = len(order)
    best = [0.0] + [float("inf")] * n  # best[j]: cost of the first j rows in order
    cut = [0] * (n + 1)
    for j in range(1, n + 1):
        for i in range(j - 1, -1, -1):
            width = pad(lengths[order[i]])  # the longest of rows i..j-1, padded
            if j - i > 1 and (j - i) * width > cost.max_tokens:
                break
            c = best[i] + cost.call + (j - i) * width * (1 + cost.key * (prefix + width))
            if c < best[j]:
                best[j], cut[j] = c, i
    calls: list[list[int]] = []
    j = n
    while j:
        calls.append(order[cut[j] : j])
        j = cut[j]
    return calls[::-1], best[n]


def plan(
    pairs: Sequence[TokenPair],
    *,
    cost: CostModel,
    prefix_options: Sequence[bool] = (True, False),
    pad: Callable[[int], int] = lambda w: w,
) -> Plan:
    """The cheaper layout of ``pairs``: the shared prefix in a pass of its own (costing a
    call and its positions) or in the rows; ``pad`` as for :func:`group_rows`."""
    best: Plan | None = None
    for share_prefix in prefix_options:
        lay = layout(pairs, share_prefix=share_prefix)
        calls, estimate = group_rows([len(r) for r in lay.rows], prefix=len(lay.prefix), cost=cost, pad=pad)
        if lay.prefix:
            estimate += cost.call + len(lay.prefix)
        if best is None or estimate < best.cost:
            best = Plan(lay, calls, estimate)
    if best is None:
        raise ValueError("prefix_options is empty")
    return best
