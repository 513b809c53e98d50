"""Token-tree layouts: every request's tokens are reachable, shared prefixes are stored once."""

from __future__ import annotations

import random

import pytest

from oversight.models.token_tree import (
    CostModel,
    Layout,
    group_rows,
    layout,
    plan,
    shared_prefix_length,
)

COST = CostModel(key=1 / 1100, call=8.0, max_tokens=64)


def _pairs(seed: int, n_questions: int = 12) -> list[tuple[tuple[int, ...], tuple[int, ...]]]:
    """Questions from one template (a shared head), choices that often share first tokens."""
    rng = random.Random(seed)
    head = (2, 7, 7, 9)
    pairs = []
    for _ in range(n_questions):
        context = head + tuple(rng.randrange(10, 30) for _ in range(rng.randrange(1, 12)))
        for _ in range(rng.randrange(1, 5)):
            pairs.append((context, (40, 41)[: rng.randrange(1, 3)] + tuple(rng.randrange(30, 50) for _ in range(rng.randrange(0, 4)))))
    return pairs


def _path(lay: Layout, row: int, node: int) -> list[tuple[int, int]]:
    """(token, depth) from the row's root down to ``node``."""
    r = lay.rows[row]
    out = []
    while node >= 0:
        out.append((r.tokens[node], r.depths[node]))
        node = r.parents[node]
    return out[::-1]


@pytest.mark.parametrize("share_prefix", [True, False])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_each_target_sits_on_its_own_sequence(seed: int, share_prefix: bool) -> None:
    pairs = _pairs(seed)
    lay = layout(pairs, share_prefix=share_prefix)
    assert lay.prefix == ((2, 7, 7, 9) if share_prefix else ())
    for (context, continuation), targets in zip(pairs, lay.targets, strict=True):
        assert [t.token for t in targets] == list(continuation)
        sequence = context + continuation[:-1]
        for j, t in enumerate(targets):
            # the node predicting continuation[j] holds the token just before it, at its own position
            upto = len(context) + j
            assert _path(lay, t.row, t.node) == [
                (tok, pos - len(lay.prefix)) for pos, tok in enumerate(sequence[:upto]) if pos >= len(lay.prefix)
            ]
        assert len({t.row for t in targets}) == 1  # a question never spans rows


def test_shared_tokens_are_stored_once() -> None:
    context = (2, 5, 6, 7)
    pairs = [(context, (8, 9, 10)), (context, (8, 11)), (context, (12,)), ((2, 5, 6, 3), (4,))]
    lay = layout(pairs)
    assert lay.prefix == (2, 5, 6)
    first, second = lay.rows  # a row per question
    # nodes: 7, 8 (shared by the first two choices), 9; the second question holds only 3
    assert sorted(first.tokens) == [7, 8, 9] and second.tokens == [3]
    assert lay.targets[0][0].node == lay.targets[1][0].node == lay.targets[2][0].node  # 7 predicts all firsts
    assert lay.targets[0][1].node == lay.targets[1][1].node  # 8 predicts 9 and 11


def test_prefix_choice_and_single_questions() -> None:
    pairs = [((2, 5, 6), (1,)), ((2, 5, 9), (1,))]
    assert layout(pairs, share_prefix=False).prefix == ()
    assert layout(pairs).prefix == (2, 5)
    one = layout([((2, 5, 6, 7), (1, 2))])
    assert one.prefix == (2, 5, 6) and one.rows[0].tokens == [7, 1]
    assert shared_prefix_length([(1, 2), (1, 2)]) == 1  # each keeps its last token
    with pytest.raises(ValueError, match="non-empty"):
        layout([((), (1,))])


def test_a_question_never_depends_on_its_batch() -> None:
    """Batch invariance: a question's row is the same alone as among others."""
    pairs = _pairs(3, 30)
    together = layout(pairs, share_prefix=False)
    for i, (context, continuation) in enumerate(pairs):
        alone = layout([(context, continuation)], share_prefix=False)
        row = together.rows[together.targets[i][0].row]
        (own,) = alone.rows
        assert [_path(alone, 0, t.node) for t in alone.targets[0]] == [
            _path(together, t.row, t.node) for t in together.targets[i]
        ]
        assert len(own) <= len(row)  # the question's row also holds its other choices
    assert len(together.rows) == len({c for c, _ in pairs})


@pytest.mark.parametrize("seed", range(5))
def test_group_rows_partitions_and_bounds_calls(seed: int) -> None:
    rng = random.Random(seed)
    lengths = [rng.randrange(1, 40) for _ in range(rng.randrange(1, 60))]
    calls, cost = group_rows(lengths, prefix=5, cost=COST)
    assert sorted(r for c in calls for r in c) == list(range(len(lengths)))
    total = 0.0
    for call in calls:
        width = max(lengths[r] for r in call)
        assert len(call) == 1 or len(call) * width <= COST.max_tokens
        total += COST.call + len(call) * width * (1 + COST.key * (5 + width))
    assert cost == pytest.approx(total)
    # never worse than one call per row, or than greedy filling
    assert cost <= sum(COST.call + n * (1 + COST.key * (5 + n)) for n in lengths) + 1e-9


def test_plan_picks_the_cheapest_layout() -> None:
    pairs = _pairs(4, 40)
    chosen = plan(pairs, cost=COST)
    for share in (True, False):
        lay = layout(pairs, share_prefix=share)
        _, cost = group_rows([len(r) for r in lay.rows], prefix=len(lay.prefix), cost=COST)
        assert chosen.cost <= cost + (COST.call + len(lay.prefix) if lay.prefix else 0) + 1e-9
    assert chosen.layout.prefix  # a 4-token prefix shared by 40 questions pays for its pass
    with pytest.raises(ValueError):
        plan(pairs, prefix_options=(), cost=COST)
