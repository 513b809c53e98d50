"""Contrast-Consistent Search (Burns, Ye, Klein and Steinhardt 2022), written from the paper.

Each statement is completed both ways (``x+`` with the "true" answer, ``x-`` with the "false"
answer) and the model's hidden states of the two completions are read. Steps:

1. **Per-class normalisation.** Subtract the mean of all ``x+`` states from each ``x+`` state and the
   mean of all ``x-`` states from each ``x-`` state (optionally divide by each side's std), so the
   probe cannot tell the two sides apart by the answer token alone. The means and stds are those of
   the training items and are kept, so the probe applies unchanged to new items.
2. **A linear probe with a sigmoid**, ``p(x) = sigmoid(w·x + b)``, trained full-batch on
   ``L = mean[(p(x+) - (1 - p(x-)))²] + mean[min(p(x+), p(x-))²]`` — consistency (the two answers'
   probabilities sum to one) plus confidence (one of them is near zero, ruling out p = 0.5).
3. **Random restarts**: several initialisations trained side by side (one weight row each; the
   loss is a sum over restarts, so their gradients are independent), keeping the lowest loss.
4. **Prediction**: the credence ``(p(x+) + 1 - p(x-)) / 2``; above 0.5 is one class.

CCS is unsupervised, so which side of the direction means "true" is unknown. Here the sign is
chosen on the **training** labels (the orientation with the higher training accuracy) and then
fixed: test labels are never used to orient the probe. (The paper's released code scores each
test set with ``max(acc, 1 - acc)``, which picks the sign on test labels and inflates accuracy near
chance.) Without training labels the probe stays unoriented and says so (``sign = 0``).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from numpy.typing import NDArray

Array = NDArray[np.float64]


@dataclass
class CCSProbe:
    mean_pos: Array
    mean_neg: Array
    std_pos: Array
    std_neg: Array
    weight: Array  # [d] in normalised space
    bias: float
    #: +1: credence > 0.5 means true; -1: it means false; 0: not oriented (no training labels).
    sign: int
    loss: float
    restart_losses: list[float] = field(default_factory=list)

    def normalise(self, x_pos: NDArray[Any], x_neg: NDArray[Any]) -> tuple[Array, Array]:
        return ((np.asarray(x_pos, np.float64) - self.mean_pos) / self.std_pos,
                (np.asarray(x_neg, np.float64) - self.mean_neg) / self.std_neg)

    def raw_credence(self, x_pos: NDArray[Any], x_neg: NDArray[Any]) -> Array:
        """(p(x+) + 1 - p(x-)) / 2, before orientation."""
        zp, zn = self.normalise(x_pos, x_neg)
        p_pos, p_neg = _sigmoid(zp @ self.weight + self.bias), _sigmoid(zn @ self.weight + self.bias)
        return np.asarray(0.5 * (p_pos + 1.0 - p_neg), dtype=np.float64)

    def credence(self, x_pos: NDArray[Any], x_neg: NDArray[Any]) -> Array:
        """P(the statement is true), oriented by the sign chosen on training labels."""
        raw = self.raw_credence(x_pos, x_neg)
        return raw if self.sign >= 0 else 1.0 - raw

    def predict(self, x_pos: NDArray[Any], x_neg: NDArray[Any]) -> NDArray[np.int64]:
        return (self.credence(x_pos, x_neg) > 0.5).astype(np.int64)

    @property
    def direction(self) -> Array:
        """Unit direction in (per-side std-scaled) activation space, oriented towards "true" on x+."""
        raw = self.weight / self.std_pos * (self.sign or 1)
        return np.asarray(raw / (np.linalg.norm(raw) or 1.0), dtype=np.float64)


def _sigmoid(z: NDArray[Any]) -> Array:
    return np.asarray(1.0 / (1.0 + np.exp(-np.clip(z, -500, 500))), dtype=np.float64)


def ccs_loss(p_pos: torch.Tensor, p_neg: torch.Tensor) -> torch.Tensor:
    """Consistency + confidence, averaged over items (last dimension); one value per restart."""
    consistency = (p_pos - (1.0 - p_neg)) ** 2
    confidence = torch.minimum(p_pos, p_neg) ** 2
    return (consistency + confidence).mean(-1)


def fit_ccs(
    x_pos: NDArray[Any],
    x_neg: NDArray[Any],
    labels: NDArray[Any] | list[int] | None = None,
    *,
    restarts: int = 10,
    epochs: int = 1000,
    lr: float = 1e-2,
    weight_decay: float = 0.01,
    normalise_std: bool = True,
    seed: int = 0,
) -> CCSProbe:
    """Train CCS on paired hidden states [n, d]; ``labels`` (1 true) only orient the result."""
    xp, xn = np.asarray(x_pos, np.float64), np.asarray(x_neg, np.float64)
    (probe,) = fit_ccs_layers(xp[None], xn[None], labels, restarts=restarts, epochs=epochs, lr=lr,
                              weight_decay=weight_decay, normalise_std=normalise_std, seed=seed)
    return probe


def fit_ccs_layers(
    x_pos: NDArray[Any],
    x_neg: NDArray[Any],
    labels: NDArray[Any] | list[int] | None = None,
    *,
    restarts: int = 10,
    epochs: int = 1000,
    lr: float = 1e-2,
    weight_decay: float = 0.01,
    normalise_std: bool = True,
    seed: int = 0,
) -> list[CCSProbe]:
    """One CCS probe per layer from states [layers, n, d], all trained in one batched loop (every
    layer and restart is an independent row of the same optimisation)."""
    xp, xn = np.asarray(x_pos, np.float64), np.asarray(x_neg, np.float64)
    if xp.ndim != 3 or xp.shape != xn.shape:
        raise ValueError(f"x+ and x- must both be [layers, n, d]; got {xp.shape} and {xn.shape}")
    if xp.shape[1] < 2:
        raise ValueError("CCS needs at least two contrast pairs")
    if restarts < 1 or epochs < 1:
        raise ValueError(f"restarts and epochs must be >= 1, got {restarts} and {epochs}")
    mean_pos, mean_neg = xp.mean(1, keepdims=True), xn.mean(1, keepdims=True)
    std_pos = _safe_std(xp) if normalise_std else np.ones_like(mean_pos)
    std_neg = _safe_std(xn) if normalise_std else np.ones_like(mean_neg)
    zp = torch.from_numpy((xp - mean_pos) / std_pos).float()  # [L, n, d]
    zn = torch.from_numpy((xn - mean_neg) / std_neg).float()
    layers, _, d = zp.shape
    gen = torch.Generator().manual_seed(seed)
    # Initialised like torch's nn.Linear: U(-1/sqrt(d), 1/sqrt(d)).
    bound = 1.0 / d**0.5
    w = ((torch.rand(layers, d, restarts, generator=gen) * 2 - 1) * bound).requires_grad_()
    b = ((torch.rand(layers, 1, restarts, generator=gen) * 2 - 1) * bound).requires_grad_()
    opt = torch.optim.AdamW([w, b], lr=lr, weight_decay=weight_decay)

    def losses() -> torch.Tensor:  # [layers, restarts]
        p_pos = torch.sigmoid(torch.bmm(zp, w) + b)  # [L, n, restarts]
        p_neg = torch.sigmoid(torch.bmm(zn, w) + b)
        return ccs_loss(p_pos.transpose(1, 2), p_neg.transpose(1, 2))

    with _one_thread():
        for _ in range(epochs):
            opt.zero_grad()
            losses().sum().backward()
            opt.step()
        with torch.no_grad():
            final = losses()
            weights, biases = w.detach().double().numpy(), b.detach().double().numpy()
    probes = []
    for layer in range(layers):
        best = int(torch.argmin(final[layer]))
        probe = CCSProbe(
            mean_pos[layer, 0], mean_neg[layer, 0], std_pos[layer, 0], std_neg[layer, 0],
            weights[layer, :, best].copy(), float(biases[layer, 0, best]), 0, float(final[layer, best]),
            [float(v) for v in final[layer]],
        )
        if labels is not None:
            probe.sign = orient(probe, xp[layer], xn[layer], labels)
        probes.append(probe)
    return probes


def orient(probe: CCSProbe, x_pos: NDArray[Any], x_neg: NDArray[Any], labels: NDArray[Any] | list[int]) -> int:
    """+1 or -1: the orientation with the higher accuracy on these (training) items."""
    y = np.asarray(labels).astype(int)
    if y.shape != (np.asarray(x_pos).shape[0],):
        raise ValueError(f"{y.shape[0]} labels for {np.asarray(x_pos).shape[0]} pairs")
    agree = float(((probe.raw_credence(x_pos, x_neg) > 0.5).astype(int) == y).mean())
    return 1 if agree >= 0.5 else -1


@contextmanager
def _one_thread() -> Iterator[None]:
    """Thousands of small steps run several times faster on one thread (measured 5-20x on a busy
    2-core machine: the thread pool's hand-offs cost more than the arithmetic); restored after."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


def _safe_std(x: Array) -> Array:
    """Std over items ([layers, n, d] -> [layers, 1, d]); constant features keep scale 1."""
    std = x.std(1, keepdims=True)
    floor = 1e-8 * np.maximum(std.max(-1, keepdims=True), 1e-30)
    return np.asarray(np.where(std > floor, std, 1.0), dtype=np.float64)
