"""The logit lens: read the residual stream after every layer as if it were the last one.

At each (layer, position) the final norm and the output layer are applied to the residual stream,
giving a next-token distribution per layer: where a prediction forms, and what the model
"thinks" on the way there. After the last layer the lens is the model's own output.

One forward pass captures every layer's residual (the body only; the output layer never runs
on the whole sequence); the output layer then runs only at the requested positions, one layer
at a time, so memory stays at one [positions, vocabulary] block however many layers there are.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from transformers import PreTrainedModel

from oversight.errors import SpecError
from oversight.interp.pages import (
    Cell,
    Page,
    Plot,
    Table,
    color_scale,
    heatmap_svg,
    line_plot_svg,
    show_token,
)
from oversight.interp.sites import layout, residual_sites
from oversight.interp.trace import forward_with, logits_at, tokenize

#: Logits computed per output-layer call (rows × vocabulary): 128 MB of float32 at a time.
_LOGITS_PER_CHUNK = 2**25


@dataclass(frozen=True)
class TokenChoice:
    """A token chosen by its text: the id used, and how the text tokenized."""

    text: str
    token_id: int
    token: str  # the decoded token the id stands for
    pieces: list[str]  # every token of the text; more than one means only the first is used

    @property
    def warning(self) -> str | None:
        if len(self.pieces) == 1:
            return None
        return (f"{self.text!r} is {len(self.pieces)} tokens ({' | '.join(map(repr, self.pieces))}); "
                f"using the first, {self.token!r}")


def choose_token(tokenizer: Any, text: str) -> TokenChoice:
    """The id of the first token of ``text`` (no special tokens); a clear error if it has none.

    Leading spaces matter: " Paris" (a word after a space) and "Paris" are different tokens.
    """
    ids = tokenizer(text, add_special_tokens=False)["input_ids"]
    if not ids:
        raise SpecError(f"{text!r} has no tokens; give the answer as text, e.g. ' Paris' with its leading space")
    pieces = [tokenizer.decode([i]) for i in ids]
    return TokenChoice(text, int(ids[0]), pieces[0], pieces)


@dataclass
class LensResult:
    """Next-token predictions read from the residual stream after each layer.

    Arrays are indexed [layer row, position column]; ``layers`` names the rows (layer indices)
    and ``positions`` the columns (token indices into ``tokens``).
    """

    text: str
    tokens: list[str]
    token_ids: list[int]
    layers: list[int]
    positions: list[int]
    top_ids: np.ndarray  # [layers, positions, k]
    top_tokens: list[list[list[str]]]
    top_probs: np.ndarray  # [layers, positions, k]
    entropy: np.ndarray  # [layers, positions], nats
    target: TokenChoice | None = None
    target_probs: np.ndarray | None = None  # [layers, positions]
    target_ranks: np.ndarray | None = None  # [layers, positions]; 1 = the top token
    target_logits: np.ndarray | None = None
    warnings: list[str] = field(default_factory=list)

    @property
    def k(self) -> int:
        return int(self.top_ids.shape[-1])

    def first_layer_on_top(self, position: int = -1) -> int | None:
        """The first layer after which the target is the top token at the ``position``-th column
        (and stays on top through the last layer shown); None if it never settles there."""
        if self.target_ranks is None:
            return None
        ranks = self.target_ranks[:, position]
        for i in range(len(ranks)):
            if (ranks[i:] == 1).all():
                return self.layers[i]
        return None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "text": self.text,
            "tokens": self.tokens,
            "token_ids": self.token_ids,
            "layers": self.layers,
            "positions": self.positions,
            "top_k": [
                [
                    [{"token": t, "id": int(i), "prob": float(p)} for t, i, p in zip(toks, ids, probs, strict=True)]
                    for toks, ids, probs in zip(row_toks, row_ids, row_probs, strict=True)
                ]
                for row_toks, row_ids, row_probs in zip(self.top_tokens, self.top_ids, self.top_probs, strict=True)
            ],
            "entropy": self.entropy.round(6).tolist(),
            "warnings": self.warnings,
        }
        if self.target is not None and self.target_probs is not None and self.target_ranks is not None:
            out["target"] = {
                "text": self.target.text, "id": self.target.token_id, "token": self.target.token,
                "pieces": self.target.pieces,
                "prob": self.target_probs.tolist(), "rank": self.target_ranks.astype(int).tolist(),
                "logit": None if self.target_logits is None else self.target_logits.round(6).tolist(),
                "first_layer_on_top_at_last_position": self.first_layer_on_top(-1),
            }
        return out


def logit_lens(
    model: PreTrainedModel,
    tokenizer: Any,
    text: str,
    *,
    target: str | None = None,
    top_k: int = 5,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
) -> LensResult:
    """The logit lens of one text: top-k tokens and, with ``target``, its probability and rank,
    at every chosen layer (all by default; negative counts from the end) and position (all)."""
    lay = layout(model)
    if lay.final_norm is None:
        raise SpecError(f"{type(model).__name__} has no final norm module: the logit lens needs one")
    if top_k < 1:
        raise SpecError(f"top-k must be at least 1, got {top_k}")
    chosen_layers = _layers(layers, lay.n_layers)
    batch = tokenize(tokenizer, [text])
    length = batch.lengths[0]
    cols = _positions(positions, length)
    choice = choose_token(tokenizer, target) if target is not None else None
    sites = residual_sites(model, sorted(set(chosen_layers)))
    resid = forward_with(model, batch, capture=sites)
    norm = model.get_submodule(lay.final_norm)
    vocab = int(model.get_output_embeddings().weight.shape[0])
    vocab_k = min(top_k, vocab)
    n_rows, n_cols = len(chosen_layers), len(cols)
    # Every (layer, position) is one row; the output layer runs on many rows per call, so its
    # weights (the whole vocabulary) are read once per chunk rather than once per layer.
    hidden = torch.cat([resid[f"resid.{layer}"][0, cols] for layer in chosen_layers])  # [layers*positions, d]
    chunk = max(1, _LOGITS_PER_CHUNK // vocab)
    top_ids = np.zeros((n_rows * n_cols, vocab_k), dtype=np.int64)
    top_probs = np.zeros((n_rows * n_cols, vocab_k), dtype=np.float64)
    entropy = np.zeros(n_rows * n_cols)
    target_probs, target_ranks, target_logits = np.zeros(n_rows * n_cols), np.zeros(n_rows * n_cols, dtype=np.int64), np.zeros(n_rows * n_cols)
    for start in range(0, hidden.shape[0], chunk):
        span = slice(start, start + chunk)
        with torch.inference_mode():
            logits = logits_at(model, norm(hidden[span]))  # [rows, vocab], float32
        probs = torch.softmax(logits, dim=-1)
        best = probs.topk(vocab_k, dim=-1)
        top_ids[span] = best.indices.numpy()
        top_probs[span] = best.values.double().numpy()
        entropy[span] = (-(probs * torch.log_softmax(logits, dim=-1)).nansum(-1)).double().numpy()
        if choice is not None:
            chosen = logits[:, choice.token_id]
            target_logits[span] = chosen.double().numpy()
            target_probs[span] = probs[:, choice.token_id].double().numpy()
            # rank 1 is the top token; ties count in the target's favour
            target_ranks[span] = ((logits > chosen[:, None]).sum(-1) + 1).numpy()
        del logits, probs
    grid = (n_rows, n_cols)
    ids = batch.input_ids[0].tolist()
    warnings = [w for w in [choice.warning if choice else None] if w]
    ids_grid, probs_grid = top_ids.reshape(*grid, vocab_k), top_probs.reshape(*grid, vocab_k)
    top_tokens = [[[tokenizer.decode([int(i)]) for i in cell] for cell in row] for row in ids_grid]
    return LensResult(
        text, [tokenizer.decode([i]) for i in ids], ids, chosen_layers, cols, ids_grid, top_tokens, probs_grid,
        entropy.reshape(grid), choice,
        target_probs.reshape(grid) if choice else None, target_ranks.reshape(grid) if choice else None,
        target_logits.reshape(grid) if choice else None, warnings,
    )


def lens_page(result: LensResult, *, model_name: str = "", command: str | None = None) -> Page:
    """The lens as an HTML page: heatmaps (target probability, top-1 probability with the top
    token written in each cell), the target's rank across layers, and a grid of top tokens
    with the top-k in each cell's tooltip."""
    rows = [f"layer {layer}" for layer in result.layers]
    cols = [f"{p}: {result.tokens[p]}" for p in result.positions]
    top1 = [[cell[0] for cell in row] for row in result.top_tokens]
    figures: list[Plot] = []
    summary: list[tuple[str, str | int | float | bool | None]] = [
        ("model", model_name or "—"), ("text", result.text), ("tokens", len(result.tokens)),
        ("layers shown", f"{result.layers[0]}–{result.layers[-1]}" if result.layers else "none"),
        ("top-1 after the last layer shown", show_token(result.top_tokens[-1][-1][0])),
    ]
    if result.target is not None and result.target_probs is not None and result.target_ranks is not None:
        t = result.target
        first = result.first_layer_on_top(-1)
        summary += [
            ("target", f"{show_token(t.text)} → token {t.token_id} {show_token(t.token)}"),
            ("target probability at the last position, last layer", float(result.target_probs[-1, -1])),
            ("target rank at the last position, last layer", int(result.target_ranks[-1, -1])),
            ("first layer from which the target stays on top (last position)", "never" if first is None else first),
        ]
        figures.append(Plot(
            f"Probability of {show_token(t.token)}",
            heatmap_svg(result.target_probs, rows, cols, "", f"p({show_token(t.token)})", "sequential", vmin=0.0, vmax=1.0,
                        cell_text=top1, xlabel="position: token", plot_id="lens-target"),
            "Each cell: the lens's probability of the target token (colour) and its top-1 token (text).",
        ))
        last = result.target_ranks[:, -1].astype(float)
        figures.append(Plot(
            "Target across layers at the last position",
            line_plot_svg(result.layers, {"probability": (result.target_probs[:, -1], None, None),
                                          "top-1 probability": (result.top_probs[:, -1, 0], None, None)},
                          xlabel="layer", ylabel="probability", ylim=(0.0, 1.0), plot_id="lens-target-line"),
            "Target rank by layer: " + ", ".join(f"{layer}: {int(r)}" for layer, r in zip(result.layers, last, strict=True)),
        ))
    figures.append(Plot(
        "Top-1 probability",
        heatmap_svg(result.top_probs[:, :, 0], rows, cols, "", "top-1 probability", "sequential", vmin=0.0, vmax=1.0,
                    cell_text=top1, xlabel="position: token", plot_id="lens-top1"),
        "Each cell: the probability of the lens's most likely next token, which is written in it.",
    ))
    grid_colors = color_scale(result.top_probs[:, :, 0].ravel(), "sequential", vmin=0.0, vmax=1.0)
    grid_rows: list[list[str | int | float | bool | Cell | None]] = []
    for r, layer in enumerate(result.layers):
        cells: list[str | int | float | bool | Cell | None] = [f"layer {layer}"]
        for c in range(len(result.positions)):
            tip = "\n".join(f"{show_token(tok)}  {p:.3f}" for tok, p in zip(result.top_tokens[r][c], result.top_probs[r, c], strict=True))
            if result.target_probs is not None and result.target_ranks is not None and result.target is not None:
                tip += f"\ntarget {show_token(result.target.token)}: p={result.target_probs[r, c]:.3g}, rank {int(result.target_ranks[r, c])}"
            cells.append(Cell(show_token(result.top_tokens[r][c][0]), title=tip, color=grid_colors[r * len(result.positions) + c], mono=True))
        grid_rows.append(cells)
    tables = [Table(
        "Top tokens by layer and position", ["", *cols], grid_rows,
        f"Top-1 token per cell, coloured by its probability; hover a cell for the top {result.k}.",
    )]
    last_rows: list[list[str | int | float | bool | Cell | None]] = []
    for r, layer in enumerate(result.layers):
        row: list[str | int | float | bool | Cell | None] = [layer]
        row += [Cell(f"{show_token(tok)} {p:.3f}", mono=True) for tok, p in zip(result.top_tokens[r][-1], result.top_probs[r, -1], strict=True)]
        if result.target_probs is not None and result.target_ranks is not None:
            row += [float(result.target_probs[r, -1]), int(result.target_ranks[r, -1])]
        last_rows.append(row)
    columns = ["layer", *[f"top {i + 1}" for i in range(result.k)]]
    if result.target_probs is not None:
        columns += ["target p", "target rank"]
    tables.append(Table(f"Last position ({show_token(result.tokens[result.positions[-1]])})", columns, last_rows))
    return Page(
        title=f"Logit lens · {result.text}", kind="lens",
        description=("The residual stream after each layer, read through the model's final norm and output layer: "
                     "the next-token distribution the model would give if it stopped at that layer."),
        summary=summary, figures=figures, tables=tables, notes=result.warnings, command=command,
        extra={"model": model_name} if model_name else {},
    )


def _layers(layers: Sequence[int] | None, n_layers: int) -> list[int]:
    if layers is None:
        return list(range(n_layers))
    out = []
    for layer in layers:
        if not -n_layers <= layer < n_layers:
            raise SpecError(f"layer {layer} is out of range: this model has {n_layers} layers (0–{n_layers - 1})")
        out.append(layer % n_layers)
    if not out:
        raise SpecError("no layers chosen")
    return out


def _positions(positions: Sequence[int] | None, length: int) -> list[int]:
    if positions is None:
        return list(range(length))
    out = []
    for p in positions:
        if not -length <= p < length:
            raise SpecError(f"position {p} is out of range: the text has {length} tokens (0–{length - 1})")
        out.append(p % length)
    if not out:
        raise SpecError("no positions chosen")
    return out
