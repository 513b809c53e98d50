"""CCS on synthetic contrast pairs whose truth direction is known (interp/ccs.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from oversight.interp.ccs import ccs_loss, fit_ccs, fit_ccs_layers


def pairs(n: int = 600, d: int = 24, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """x± = shared nuisance ± truth·v + noise, plus a constant answer-token offset ±u.

    The nuisance is the same in x+ and x- (CCS must ignore it: it cannot make p(x+) = 1 - p(x-)),
    and u separates every x+ from every x- (per-class normalisation must remove it).
    """
    rng = np.random.default_rng(seed)
    v, u = rng.normal(size=d), rng.normal(size=d)
    v /= np.linalg.norm(v)
    y = rng.integers(0, 2, n)
    sign = (2 * y - 1)[:, None]
    nuisance = rng.normal(scale=3.0, size=(n, d))
    x_pos = nuisance + 2.0 * sign * v + 6.0 * u + rng.normal(scale=0.3, size=(n, d))
    x_neg = nuisance - 2.0 * sign * v - 6.0 * u + rng.normal(scale=0.3, size=(n, d))
    return x_pos, x_neg, y, v


def test_ccs_recovers_the_truth_direction() -> None:
    x_pos, x_neg, y, v = pairs()
    train, test = slice(0, 400), slice(400, None)
    probe = fit_ccs(x_pos[train], x_neg[train], y[train], restarts=5, epochs=500, seed=1)
    assert abs(probe.direction @ v) > 0.9
    assert probe.sign in (1, -1)
    assert (probe.predict(x_pos[test], x_neg[test]) == y[test]).mean() > 0.95


def test_the_sign_comes_from_training_labels_only() -> None:
    x_pos, x_neg, y, _ = pairs(seed=3)
    train, test = slice(0, 400), slice(400, None)
    right = fit_ccs(x_pos[train], x_neg[train], y[train], restarts=3, epochs=300)
    flipped = fit_ccs(x_pos[train], x_neg[train], 1 - y[train], restarts=3, epochs=300)
    assert right.sign == -flipped.sign
    # The test labels are never consulted: wrong training labels give a probe that is wrong on test.
    assert (right.predict(x_pos[test], x_neg[test]) == y[test]).mean() > 0.95
    assert (flipped.predict(x_pos[test], x_neg[test]) == y[test]).mean() < 0.05
    unlabelled = fit_ccs(x_pos[train], x_neg[train], restarts=3, epochs=300)
    assert unlabelled.sign == 0
    np.testing.assert_allclose(unlabelled.credence(x_pos, x_neg), right.raw_credence(x_pos, x_neg), atol=1e-6)


def test_restarts_keep_the_lowest_loss() -> None:
    x_pos, x_neg, y, _ = pairs(n=200, seed=4)
    probe = fit_ccs(x_pos, x_neg, y, restarts=6, epochs=100, seed=2)
    assert len(probe.restart_losses) == 6 and probe.loss == min(probe.restart_losses)


def test_normalisation_uses_training_statistics_per_side() -> None:
    x_pos, x_neg, y, _ = pairs(n=200, seed=5)
    probe = fit_ccs(x_pos, x_neg, y, restarts=1, epochs=10)
    np.testing.assert_allclose(probe.mean_pos, x_pos.mean(0))
    np.testing.assert_allclose(probe.mean_neg, x_neg.mean(0))
    np.testing.assert_allclose(probe.std_pos, x_pos.std(0))
    zp, zn = probe.normalise(x_pos, x_neg)
    np.testing.assert_allclose(zp.mean(0), 0, atol=1e-9)
    np.testing.assert_allclose(zn.std(0), 1, atol=1e-9)
    plain = fit_ccs(x_pos, x_neg, y, restarts=1, epochs=10, normalise_std=False)
    assert (plain.std_pos == 1).all()


def test_layers_train_independently_in_one_batch() -> None:
    x_pos, x_neg, y, _ = pairs(n=300, seed=6)
    rng = np.random.default_rng(0)
    noise_pos, noise_neg = rng.normal(size=x_pos.shape), rng.normal(size=x_neg.shape)
    layers = fit_ccs_layers(np.stack([noise_pos, x_pos]), np.stack([noise_neg, x_neg]), y, restarts=4, epochs=400)
    assert len(layers) == 2
    accs = [(p.predict(xp, xn) == y).mean() for p, xp, xn in zip(layers, (noise_pos, x_pos), (noise_neg, x_neg), strict=True)]
    assert accs[1] > 0.95 and accs[0] < 0.8


def test_loss_is_consistency_plus_confidence() -> None:
    p_pos = torch.tensor([[0.9, 0.5]])
    p_neg = torch.tensor([[0.1, 0.5]])
    # item 1: consistent and confident -> 0.01 (min² = 0.1²); item 2: consistent, unconfident -> 0.25
    assert torch.allclose(ccs_loss(p_pos, p_neg), torch.tensor([(0.01 + 0.25) / 2]), atol=1e-6)


def test_bad_inputs() -> None:
    with pytest.raises(ValueError, match="both be"):
        fit_ccs(np.zeros((4, 3)), np.zeros((4, 2)))
    with pytest.raises(ValueError, match="at least two"):
        fit_ccs(np.zeros((1, 3)), np.zeros((1, 3)))
