"""Activation patching: which activations carry the difference between a clean and a corrupted prompt.

Run a clean prompt ("The Eiffel Tower is located in the city of" → " Paris") and a corrupted
one of the same token length ("The Colosseum is …" → " Rome"). Then run the corrupted prompt
again with one activation — the residual stream at one (layer, position), an attention or MLP
output, or one attention head's output — copied from the clean run, and measure how much of the
clean behaviour comes back. The metric is the logit difference between the two answers at the
last position (or any function of the final logits); the normalised effect is

    (patched − corrupted) / (clean − corrupted)

so 1 means "this activation alone restores the clean answer" and 0 means "no effect".

Every patched run is a row of a batch: one forward pass patches many (site, layer, position)
combinations at once, each row with its own site and position. A head's output is its slice of
the attention output projection's input (``heads.{i}``), so patching all heads of a layer at
once is exactly patching that layer's attention output (the projection is linear).
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import PreTrainedModel

from oversight.errors import DataError, SpecError
from oversight.interp.lens import TokenChoice, choose_token
from oversight.interp.pages import (
    Cell,
    Page,
    Plot,
    Series,
    Table,
    heatmap_svg,
    line_plot_svg,
    show_token,
)
from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import Batch, Intervention, forward_with, logits_at, pad
from oversight.rowfiles import jsonl_records

#: Final logits at the last position [batch, vocab] -> one number per row [batch].
Metric = Callable[[torch.Tensor], torch.Tensor]
SiteKind = Literal["resid", "attn", "mlp", "heads"]
SITE_KINDS: tuple[SiteKind, ...] = ("resid", "attn", "mlp", "heads")
HeadPositions = Literal["all", "each"]
Progress = Callable[[int, int], None]


def logit_difference(correct: int, wrong: int) -> Metric:
    """logit(correct) − logit(wrong): how strongly the model prefers the right answer."""

    def metric(logits: torch.Tensor) -> torch.Tensor:
        return logits[:, correct] - logits[:, wrong]

    return metric


@dataclass(frozen=True)
class PromptPair:
    """A clean prompt, a corrupted one of the same token length, and the two answers."""

    clean: str
    corrupted: str
    answer: str | None = None  # the clean prompt's answer (e.g. " Paris")
    wrong: str | None = None  # the corrupted prompt's answer (e.g. " Rome")


@dataclass(frozen=True)
class Patch:
    """One patched run: copy ``site`` (at ``position``, or every position when None; one head's
    slice when ``head`` is set) from the clean run into the corrupted run."""

    kind: SiteKind
    layer: int
    position: int | None
    head: int | None = None

    @property
    def site(self) -> str:
        return f"{self.kind}.{self.layer}"


@dataclass
class PairRun:
    """What one pair gave: its tokens, answers and the metric on the clean and corrupted runs."""

    pair: PromptPair
    clean_tokens: list[str]
    corrupted_tokens: list[str]
    answer: TokenChoice | None
    wrong: TokenChoice | None
    clean_metric: float
    corrupted_metric: float

    @property
    def differing_positions(self) -> list[int]:
        """Token positions where the clean and corrupted prompts differ (e.g. the subject)."""
        return [i for i, (a, b) in enumerate(zip(self.clean_tokens, self.corrupted_tokens, strict=True)) if a != b]


@dataclass
class PatchGrid:
    """The patched metric of every patch of one kind, as a [rows, columns] grid per pair."""

    name: str  # "resid", "attn", "mlp", "heads" (layer × head, all positions) or "heads.pos"
    rows: list[str]
    columns: list[str]
    patches: list[list[Patch]]  # [rows][columns]
    patched: np.ndarray  # [pairs, rows, columns]: the metric after patching

    def effect(self, clean: np.ndarray, corrupted: np.ndarray) -> np.ndarray:
        """Normalised effect per pair [pairs, rows, columns]; NaN where clean equals corrupted."""
        gap = (clean - corrupted)[:, None, None]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(np.abs(gap) > 1e-6, (self.patched - corrupted[:, None, None]) / gap, np.nan)


@dataclass
class PatchResult:
    """Patching results for one or more prompt pairs (effects are averaged over pairs)."""

    runs: list[PairRun]
    grids: dict[str, PatchGrid]
    metric_name: str
    warnings: list[str] = field(default_factory=list)

    @property
    def clean(self) -> np.ndarray:
        return np.array([r.clean_metric for r in self.runs])

    @property
    def corrupted(self) -> np.ndarray:
        return np.array([r.corrupted_metric for r in self.runs])

    def effects(self, grid: str) -> np.ndarray:
        """Normalised effects of one grid, per pair: [pairs, rows, columns]."""
        return self.grids[grid].effect(self.clean, self.corrupted)

    def mean_effect(self, grid: str) -> np.ndarray:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN cells (undefined effects)
            return np.nanmean(self.effects(grid), axis=0)

    def sem_effect(self, grid: str) -> np.ndarray:
        """Standard error of the mean effect across pairs (NaN with a single pair)."""
        return _sem(self.effects(grid))

    def top_patches(self, n: int = 10, *, per_grid: bool = False) -> list[tuple[str, Patch, float]]:
        """The patches with the largest mean |effect|: (grid, patch, effect), over all grids or
        ``n`` from each (the residual stream's trivially large effects would hide the rest)."""
        ranked: dict[str, list[tuple[str, Patch, float]]] = {}
        for name, grid in self.grids.items():
            mean = self.mean_effect(name)
            cells = [(name, patch, float(mean[r, c])) for r, row in enumerate(grid.patches)
                     for c, patch in enumerate(row) if np.isfinite(mean[r, c])]
            ranked[name] = sorted(cells, key=lambda t: -abs(t[2]))
        if per_grid:
            return [cell for cells in ranked.values() for cell in cells[:n]]
        return sorted((cell for cells in ranked.values() for cell in cells), key=lambda t: -abs(t[2]))[:n]

    def layer_profile(self, grid: str, where: Literal["last_differing", "final"]) -> tuple[np.ndarray, np.ndarray]:
        """Mean and standard error over pairs of the effect by layer at one position of each pair:
        the last token where its prompts differ (e.g. the subject's last token) or the final token."""
        g = self.grids[grid]
        positions = [p.position for p in g.patches[0]]
        effects = self.effects(grid)
        picked = []
        for i, run in enumerate(self.runs):
            target = (run.differing_positions or [len(run.clean_tokens) - 1])[-1] if where == "last_differing" else len(run.clean_tokens) - 1
            if target not in positions:
                raise SpecError(f"position {target} of pair {i + 1} was not patched")
            picked.append(effects[i, :, positions.index(target)])
        stacked = np.array(picked)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # all-NaN columns (undefined effects)
            return np.nanmean(stacked, axis=0), _sem(stacked)

    def to_dict(self) -> dict[str, Any]:
        def clean_floats(a: np.ndarray) -> list[Any]:
            out = np.round(a, 6).astype(object)
            out[~np.isfinite(a)] = None  # JSON has no NaN
            return list(out.tolist())

        return {
            "metric": self.metric_name,
            "pairs": [
                {"clean": r.pair.clean, "corrupted": r.pair.corrupted, "answer": r.pair.answer, "wrong": r.pair.wrong,
                 "answer_token": _choice_dict(r.answer), "wrong_token": _choice_dict(r.wrong),
                 "clean_tokens": r.clean_tokens, "corrupted_tokens": r.corrupted_tokens,
                 "differing_positions": r.differing_positions,
                 "clean_metric": r.clean_metric, "corrupted_metric": r.corrupted_metric}
                for r in self.runs
            ],
            "grids": {
                name: {
                    "rows": g.rows, "columns": g.columns,
                    "mean_effect": clean_floats(self.mean_effect(name)),
                    "sem_effect": clean_floats(self.sem_effect(name)),
                    "patched_metric": clean_floats(g.patched),
                }
                for name, g in self.grids.items()
            },
            "top": [{"grid": g, "site": p.site, "position": p.position, "head": p.head, "mean_effect": round(e, 6)}
                    for g, p, e in self.top_patches(5, per_grid=True)],
            "warnings": self.warnings,
        }


def pair_token_ids(tokenizer: Any, pair: PromptPair) -> tuple[list[int], list[int]]:
    """Token ids of both prompts; a clear error showing both tokenizations when lengths differ."""
    clean = list(tokenizer(pair.clean)["input_ids"])
    corrupted = list(tokenizer(pair.corrupted)["input_ids"])
    if len(clean) != len(corrupted):
        def show(ids: list[int]) -> str:
            return " | ".join(repr(tokenizer.decode([i])) for i in ids)

        raise DataError(
            f"clean and corrupted prompts must have the same number of tokens, got {len(clean)} and {len(corrupted)}:\n"
            f"  clean:     {show(clean)}\n  corrupted: {show(corrupted)}\n"
            "reword one of them (e.g. a subject of the same token length)",
            field="corrupted",
        )
    return clean, corrupted


class _PairRecord(BaseModel):
    """One line of a pairs file (JSONL): the boundary where user data becomes a PromptPair."""

    model_config = ConfigDict(extra="ignore")
    clean: str = Field(min_length=1)
    corrupted: str = Field(min_length=1)
    answer: str | None = None
    wrong: str | None = None


def load_pairs(path: str | Path, tokenizer: Any | None = None) -> list[PromptPair]:
    """Prompt pairs from a JSONL file with ``clean``, ``corrupted``, ``answer`` and ``wrong`` fields.

    With a tokenizer each pair's token lengths are checked too, so a mismatch names its line.
    """
    source = Path(path)
    pairs: list[PromptPair] = []
    for line, record in jsonl_records(source):
        try:
            parsed = _PairRecord.model_validate(record)
        except ValidationError as e:
            first = e.errors()[0]
            field = ".".join(str(x) for x in first["loc"]) or None
            raise DataError(first["msg"], path=source, line=line, field=field) from None
        pair = PromptPair(parsed.clean, parsed.corrupted, parsed.answer, parsed.wrong)
        if tokenizer is not None:
            try:
                pair_token_ids(tokenizer, pair)
            except DataError as e:
                raise DataError(e.reason, path=source, line=line, field=e.field) from None
        pairs.append(pair)
    if not pairs:
        raise DataError("no prompt pairs in the file (one JSON object per line: clean, corrupted, answer, wrong)", path=source)
    return pairs


def plan_patches(
    model: PreTrainedModel,
    n_tokens: int,
    sites: Sequence[str] = ("resid",),
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    head_positions: HeadPositions = "all",
) -> dict[str, tuple[list[str], list[str], list[list[Patch]]]]:
    """The grids to run: per grid, row labels, column labels and the patch of each cell."""
    lay = layout(model)
    unknown = [s for s in sites if s not in SITE_KINDS]
    if unknown or not sites:
        raise SpecError(f"unknown patching site(s) {', '.join(map(repr, unknown)) or '(none)'}; choose from {', '.join(SITE_KINDS)}")
    chosen_layers = list(range(lay.n_layers)) if layers is None else [_layer(i, lay.n_layers) for i in layers]
    cols = list(range(n_tokens)) if positions is None else [_position(p, n_tokens) for p in positions]
    grids: dict[str, tuple[list[str], list[str], list[list[Patch]]]] = {}
    layer_rows = [f"layer {i}" for i in chosen_layers]
    for kind in sites:
        if kind == "heads" and head_positions == "all":
            grids["heads"] = (layer_rows, [f"head {h}" for h in range(lay.n_heads)],
                              [[Patch("heads", i, None, h) for h in range(lay.n_heads)] for i in chosen_layers])
        elif kind == "heads":
            rows = [f"L{i}.H{h}" for i in chosen_layers for h in range(lay.n_heads)]
            grids["heads.pos"] = (rows, [str(p) for p in cols],
                                  [[Patch("heads", i, p, h) for p in cols] for i in chosen_layers for h in range(lay.n_heads)])
        else:
            grids[kind] = (layer_rows, [str(p) for p in cols], [[Patch(kind, i, p) for p in cols] for i in chosen_layers])  # type: ignore[arg-type]
    return grids


def activation_patching(
    model: PreTrainedModel,
    tokenizer: Any,
    pairs: Sequence[PromptPair],
    sites: Sequence[str] = ("resid",),
    *,
    layers: Sequence[int] | None = None,
    positions: Sequence[int] | None = None,
    head_positions: HeadPositions = "all",
    metric: Metric | None = None,
    metric_name: str | None = None,
    batch_size: int = 64,
    progress: Progress | None = None,
) -> PatchResult:
    """Patch every planned (site, layer, position[, head]) from clean into corrupted, per pair.

    Without ``metric`` each pair needs ``answer`` and ``wrong`` and the metric is their logit
    difference at the last position. Pairs are averaged cell by cell, so with per-position grids
    all pairs must have the same token length.
    """
    if not pairs:
        raise SpecError("no prompt pairs to patch")
    if batch_size < 1:
        raise SpecError(f"batch size must be at least 1, got {batch_size}")
    encoded = [pair_token_ids(tokenizer, pair) for pair in pairs]
    lengths = {len(c) for c, _ in encoded}
    per_position = any(s != "heads" for s in sites) or head_positions == "each"
    if per_position and len(lengths) > 1:
        detail = ", ".join(f"pair {i + 1}: {len(c)}" for i, (c, _) in enumerate(encoded))
        raise DataError(f"per-position patching averages pairs position by position, so all pairs need the same token length ({detail})")
    plan = plan_patches(model, len(encoded[0][0]), sites, layers=layers, positions=positions, head_positions=head_positions)
    flat = [p for _, _, cells in plan.values() for row in cells for p in row]
    warnings: list[str] = []
    runs: list[PairRun] = []
    patched_flat = np.zeros((len(pairs), len(flat)))
    total, done = len(pairs) * len(flat), 0
    for index, (pair, (clean_ids, corrupted_ids)) in enumerate(zip(pairs, encoded, strict=True)):
        answer, wrong, pair_metric = _pair_metric(tokenizer, pair, metric, index)
        for choice in (answer, wrong):
            if choice is not None and choice.warning:
                warnings.append(f"pair {index + 1}: {choice.warning}")

        def advance(n: int) -> None:
            nonlocal done
            done += n
            if progress:
                progress(done, total)

        clean_value, corrupted_value, patched_flat[index] = run_patches(
            model, clean_ids, corrupted_ids, flat, pair_metric, batch_size=batch_size, progress=advance)
        if abs(clean_value - corrupted_value) <= 1e-6:
            warnings.append(f"pair {index + 1}: clean and corrupted give the same metric ({clean_value:.4g}); its normalised effects are undefined")
        runs.append(PairRun(pair, _decode(tokenizer, clean_ids), _decode(tokenizer, corrupted_ids), answer, wrong,
                            clean_value, corrupted_value))
    grids: dict[str, PatchGrid] = {}
    offset = 0
    for name, (rows, cols, cells) in plan.items():
        size = len(rows) * len(cols)
        values = patched_flat[:, offset : offset + size].reshape(len(pairs), len(rows), len(cols))
        grids[name] = PatchGrid(name, rows, cols, cells, values)
        offset += size
    if per_position:
        _label_positions(grids, runs)
    name = metric_name or ("logit difference (answer − wrong) at the last position" if metric is None else "custom metric")
    return PatchResult(runs, grids, name, warnings)


def run_patches(
    model: PreTrainedModel,
    clean_ids: Sequence[int],
    corrupted_ids: Sequence[int],
    patches: Sequence[Patch],
    metric: Metric,
    *,
    batch_size: int = 64,
    progress: Callable[[int], None] | None = None,
) -> tuple[float, float, np.ndarray]:
    """The metric on the clean run, on the corrupted run, and on the corrupted run with each patch
    applied (one batch row per patch). The low-level step under :func:`activation_patching`.

    A patch that would copy exactly the values already there (e.g. any site before the first
    token where the prompts differ: causal attention makes those activations equal) changes
    nothing, so it is not run: its metric is the corrupted one.
    """
    if len(clean_ids) != len(corrupted_ids):
        raise DataError(f"clean and corrupted prompts must have the same number of tokens, got {len(clean_ids)} and {len(corrupted_ids)}")
    acts, clean_value, corrupted_value = _reference_runs(model, list(clean_ids), list(corrupted_ids), patches, metric)
    clean_acts = {site: both[0] for site, both in acts.items()}
    head_dim = layout(model).head_dim
    out = np.full(len(patches), corrupted_value)
    todo = [i for i, p in enumerate(patches) if not torch.equal(*(_patched_slice(acts[p.site][row], p, head_dim) for row in (0, 1)))]
    if progress and len(patches) > len(todo):
        progress(len(patches) - len(todo))
    for start in range(0, len(todo), batch_size):
        rows = todo[start : start + batch_size]
        out[rows] = _patched_runs(model, list(corrupted_ids), [patches[i] for i in rows], clean_acts, metric)
        if progress:
            progress(len(rows))
    return clean_value, corrupted_value, out


_GRID_TITLES = {
    "resid": "Residual stream by layer and position",
    "attn": "Attention output by layer and position",
    "mlp": "MLP output by layer and position",
    "heads": "Attention heads (all positions) by layer",
    "heads.pos": "Attention heads by position",
}


def patch_page(result: PatchResult, *, model_name: str = "", command: str | None = None) -> Page:
    """The patching results as an HTML page: one heatmap of mean normalised effect per grid, the
    effect by layer at the subject's last token and at the final token, and the pairs."""
    n = len(result.runs)
    figures: list[Plot] = []
    for name, grid in result.grids.items():
        mean = result.mean_effect(name)
        bound = max(1.0, float(np.nanmax(np.abs(mean))) if np.isfinite(mean).any() else 1.0)
        text = [[_two_places(v) for v in row] for row in mean] if mean.size <= 400 else None
        figures.append(Plot(
            _GRID_TITLES.get(name, name),
            heatmap_svg(mean, grid.rows, grid.columns, "", "normalised effect", "diverging", vmin=-bound, vmax=bound,
                        cell_text=text, xlabel="head" if name == "heads" else "position: token", plot_id=f"patch-{name}"),
            ("Mean over " + (f"{n} pairs" if n > 1 else "the pair") + " of (patched − corrupted) / (clean − corrupted): "
             "1 = patching this activation alone restores the clean answer, 0 = no effect. "
             + ("Tokens marked … differ between pairs (the first pair's is shown)." if n > 1 and name != "heads" else "")),
        ))
    series: dict[str, Series] = {}
    layers: list[int] = []
    for name in ("resid", "attn", "mlp"):
        if name not in result.grids:
            continue
        layers = [p.layer for p in (row[0] for row in result.grids[name].patches)]
        for where, label in (("last_differing", "last differing token"), ("final", "final token")):
            mean, sem = result.layer_profile(name, where)  # type: ignore[arg-type]
            band = (mean - 1.96 * sem, mean + 1.96 * sem) if n > 1 else (None, None)
            series[f"{name} @ {label}"] = (mean, band[0], band[1])
    if series:
        figures.append(Plot(
            "Effect by layer: last differing token vs final token",
            line_plot_svg(layers, series, xlabel="layer", ylabel="normalised effect", hline=0.0, plot_id="patch-profile",
                          width=6.4, height=3.2),
            "The last token where clean and corrupted differ is, for factual prompts, the subject's last token."
            + (" Bands: 95% intervals over pairs (mean ± 1.96 standard errors)." if n > 1 else ""),
        ))
    top_rows: list[list[str | int | float | bool | Cell | None]] = [
        [name, p.site, "all" if p.position is None else p.position, "—" if p.head is None else p.head, effect]
        for name, p, effect in result.top_patches(5, per_grid=True)
    ]
    pair_rows: list[list[str | int | float | bool | Cell | None]] = [
        [i + 1, r.pair.clean, r.pair.corrupted,
         Cell(show_token(r.answer.token), mono=True) if r.answer else "—", Cell(show_token(r.wrong.token), mono=True) if r.wrong else "—",
         len(r.clean_tokens), ", ".join(map(str, r.differing_positions)) or "none", r.clean_metric, r.corrupted_metric]
        for i, r in enumerate(result.runs)
    ]
    summary: list[tuple[str, str | int | float | bool | None]] = [
        ("model", model_name or "—"), ("metric", result.metric_name), ("pairs", n),
        ("mean clean metric", float(result.clean.mean())), ("mean corrupted metric", float(result.corrupted.mean())),
    ]
    for name in result.grids:
        best = max(((p, e) for g, p, e in result.top_patches(1_000_000, per_grid=True) if g == name), key=lambda t: t[1], default=None)
        if best is not None:
            patch, effect = best
            where = f"{patch.site}" + ("" if patch.position is None else f" @ position {patch.position}") + ("" if patch.head is None else f" head {patch.head}")
            summary.append((f"largest {name} effect", f"{effect:.3f} ({where})"))
    return Page(
        title="Activation patching" + (f" · {result.runs[0].pair.clean}" if n == 1 else f" · {n} prompt pairs"), kind="patch",
        description=("Each activation is copied from the clean run into the corrupted run, one at a time; the heatmaps show "
                     "how much of the clean behaviour each one restores."),
        summary=summary, figures=figures, notes=result.warnings, command=command,
        tables=[Table("Largest effects in each grid", ["grid", "site", "position", "head", "mean effect"], top_rows),
                Table("Prompt pairs", ["#", "clean", "corrupted", "answer", "wrong", "tokens", "differing positions",
                                       "clean metric", "corrupted metric"], pair_rows)],
        extra={"model": model_name} if model_name else {},
    )


# -- internals -----------------------------------------------------------------------------------


def _pair_metric(tokenizer: Any, pair: PromptPair, metric: Metric | None, index: int) -> tuple[TokenChoice | None, TokenChoice | None, Metric]:
    if metric is not None:
        answer = choose_token(tokenizer, pair.answer) if pair.answer else None
        wrong = choose_token(tokenizer, pair.wrong) if pair.wrong else None
        return answer, wrong, metric
    if not pair.answer or not pair.wrong:
        missing = "answer" if not pair.answer else "wrong"
        raise DataError(f"pair {index + 1} has no {missing} token: the logit-difference metric needs both answers", field=missing)
    answer, wrong = choose_token(tokenizer, pair.answer), choose_token(tokenizer, pair.wrong)
    if answer.token_id == wrong.token_id:
        raise DataError(f"pair {index + 1}: the answer {pair.answer!r} and the wrong answer {pair.wrong!r} start with the same token "
                        f"{answer.token!r}, so their logit difference is always 0", field="wrong")
    return answer, wrong, logit_difference(answer.token_id, wrong.token_id)


def _reference_runs(
    model: PreTrainedModel, clean_ids: list[int], corrupted_ids: list[int], plan: Sequence[Patch], metric: Metric
) -> tuple[dict[str, torch.Tensor], float, float]:
    """One batch of two rows (same length, so no padding): the activations the plan needs
    ([clean, corrupted] per site), and the metric on both prompts."""
    needed = sorted({p.site for p in plan})
    batch = _batch([clean_ids, corrupted_ids])
    capture = resolve_sites(model, [*needed, "final_norm"])
    found = forward_with(model, batch, capture=capture)
    values = metric(logits_at(model, found["final_norm"][:, -1])).tolist()
    return {site: found[site] for site in needed}, float(values[0]), float(values[1])


def _patched_runs(
    model: PreTrainedModel, corrupted_ids: list[int], chunk: list[Patch], clean: dict[str, torch.Tensor], metric: Metric
) -> np.ndarray:
    """Each patch as one row of a batch of the corrupted prompt; the metric per row."""
    batch = _batch([corrupted_ids] * len(chunk))
    by_site: dict[str, list[tuple[int, Patch]]] = {}
    for row, patch in enumerate(chunk):
        by_site.setdefault(patch.site, []).append((row, patch))
    head_dim = layout(model).head_dim
    interventions = [Intervention(site, _copy_from(clean[site], rows, head_dim)) for site, rows in by_site.items()]
    found = forward_with(model, batch, capture=resolve_sites(model, "final_norm"), interventions=interventions)
    return metric(logits_at(model, found["final_norm"][:, -1])).double().numpy()


def _copy_from(source: torch.Tensor, rows: list[tuple[int, Patch]], head_dim: int) -> Callable[[torch.Tensor, Batch], torch.Tensor]:
    """An edit writing the clean activation ``source`` [tokens, width] into the given rows."""

    def edit(h: torch.Tensor, _batch: Batch) -> torch.Tensor:
        h = h.clone()
        for row, patch in rows:
            cols, dims = _where(patch, head_dim)
            h[row, cols, dims] = source[cols, dims].to(h.dtype)
        return h

    return edit


def _where(patch: Patch, head_dim: int) -> tuple[slice | int, slice]:
    """The (token, feature) index of a patch within a [tokens, width] activation."""
    cols: slice | int = slice(None) if patch.position is None else patch.position
    dims = slice(None) if patch.head is None else slice(patch.head * head_dim, (patch.head + 1) * head_dim)
    return cols, dims


def _patched_slice(activation: torch.Tensor, patch: Patch, head_dim: int) -> torch.Tensor:
    cols, dims = _where(patch, head_dim)
    return activation[cols, dims]


def _batch(ids: list[list[int]]) -> Batch:
    return pad(ids, pad_id=0)  # rows share one length: nothing is padded


def _decode(tokenizer: Any, ids: list[int]) -> list[str]:
    return [tokenizer.decode([i]) for i in ids]


def _label_positions(grids: dict[str, PatchGrid], runs: list[PairRun]) -> None:
    """Column labels "position: token" from the first pair, marking tokens that vary across pairs."""
    for grid in grids.values():
        if grid.name == "heads":
            continue
        labels = []
        for column in grid.columns:
            p = int(column)
            clean = {r.clean_tokens[p] for r in runs}
            first = runs[0]
            token = first.clean_tokens[p] if first.clean_tokens[p] == first.corrupted_tokens[p] else f"{first.clean_tokens[p]}/{first.corrupted_tokens[p]}"
            labels.append(f"{p}: {token}" + (" …" if len(clean) > 1 else ""))
        grid.columns = labels


def _two_places(value: float) -> str:
    if not np.isfinite(value):
        return ""
    text = f"{value:.2f}"
    return "0.00" if text == "-0.00" else text


def _sem(values: np.ndarray) -> np.ndarray:
    """Standard error of the mean over the first axis, ignoring NaN; NaN with fewer than 2 values."""
    n = np.sum(np.isfinite(values), axis=0)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        sd = np.nanstd(values, axis=0, ddof=1) if values.shape[0] > 1 else np.full(values.shape[1:], np.nan)
    return np.where(n > 1, sd / np.sqrt(np.maximum(n, 1)), np.nan)


def _choice_dict(choice: TokenChoice | None) -> dict[str, Any] | None:
    return None if choice is None else {"text": choice.text, "id": choice.token_id, "token": choice.token, "pieces": choice.pieces}


def _layer(layer: int, n_layers: int) -> int:
    if not -n_layers <= layer < n_layers:
        raise SpecError(f"layer {layer} is out of range: this model has {n_layers} layers (0–{n_layers - 1})")
    return layer % n_layers


def _position(position: int, n_tokens: int) -> int:
    if not -n_tokens <= position < n_tokens:
        raise SpecError(f"position {position} is out of range: the prompts have {n_tokens} tokens (0–{n_tokens - 1})")
    return position % n_tokens
