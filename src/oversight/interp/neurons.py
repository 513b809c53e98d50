"""Which contexts make each MLP neuron of a layer fire most, over a corpus of any size.

A neuron is one unit of the MLP's hidden activation (the site ``neurons.{layer}``: the input
of the down projection). The search streams the corpus batch by batch and keeps, per neuron,
a running top-k of (activation, text, token) plus the activations and token ids of a small
window around each kept token. Each batch is merged with one ``topk`` over ``[neurons, 2k]``,
so memory is ``neurons x k x window`` whatever the corpus size; all activations are never
held.

Special tokens (BOS, padding) are not candidates by default: on Gemma the first token's
activations are outliers that would win every neuron's top-k and say nothing.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from oversight.interp.pages import Cell, Page, Table, color_scale, label, show_token
from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import Batch, forward_with, pad

#: Tokens kept before and after each top token, for showing its context.
DEFAULT_WINDOW = (12, 4)


@dataclass
class TopK:
    """Per neuron, the k largest activations seen so far, where they were and around them.

    Every tensor's size depends on the number of neurons, ``k`` and the window only.
    An empty slot has value ``-inf``.
    """

    values: torch.Tensor  # [n, k] float32
    texts: torch.Tensor  # [n, k] int64: index of the text in the corpus
    positions: torch.Tensor  # [n, k] int64: token index inside that text
    context_ids: torch.Tensor  # [n, k, w] int64; -1 outside the text
    context_acts: torch.Tensor  # [n, k, w] float32; NaN outside the text
    before: int
    after: int
    n_tokens: int = 0
    n_texts: int = 0  # texts merged so far
    sums: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.float64))  # [n]
    positives: torch.Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # [n]

    @classmethod
    def empty(cls, n_neurons: int, k: int, before: int = DEFAULT_WINDOW[0], after: int = DEFAULT_WINDOW[1]) -> TopK:
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        w = before + 1 + after
        return cls(
            values=torch.full((n_neurons, k), float("-inf")),
            texts=torch.full((n_neurons, k), -1, dtype=torch.long),
            positions=torch.full((n_neurons, k), -1, dtype=torch.long),
            context_ids=torch.full((n_neurons, k, w), -1, dtype=torch.long),
            context_acts=torch.full((n_neurons, k, w), float("nan")),
            before=before,
            after=after,
            sums=torch.zeros(n_neurons, dtype=torch.float64),
            positives=torch.zeros(n_neurons, dtype=torch.long),
        )

    @property
    def k(self) -> int:
        return int(self.values.shape[1])

    def nbytes(self) -> int:
        tensors = (self.values, self.texts, self.positions, self.context_ids, self.context_acts, self.sums, self.positives)
        return sum(t.numel() * t.element_size() for t in tensors)

    def update(self, acts: torch.Tensor, ids: torch.Tensor, texts: torch.Tensor, positions: torch.Tensor, candidate: torch.Tensor) -> None:
        """Merge one flattened batch: ``acts`` [L, n], per row its token id (-1 for padding),
        text index, token position and whether it may enter the top-k.

        Every candidate row must have ``before`` rows before it and ``after`` rows after it
        that belong to its own text or to padding (see :func:`flatten`).
        """
        n = self.values.shape[0]
        scores = torch.where(candidate[:, None], acts, float("-inf")).T  # [n, L]
        m = min(self.k, scores.shape[1])
        if m == 0:
            return
        top, index = scores.topk(m, dim=1)  # [n, m]
        offsets = torch.arange(-self.before, self.after + 1)
        window = (index[..., None] + offsets).clamp(0, acts.shape[0] - 1)  # [n, m, w]
        window_acts = acts.T.gather(1, window.reshape(n, -1)).reshape(window.shape)
        merged = torch.cat([self.values, top], dim=1).topk(self.k, dim=1)
        keep = merged.indices
        keep3 = keep[..., None].expand(-1, -1, window.shape[2])
        self.values = merged.values
        self.texts = torch.cat([self.texts, texts[index]], dim=1).gather(1, keep)
        self.positions = torch.cat([self.positions, positions[index]], dim=1).gather(1, keep)
        self.context_ids = torch.cat([self.context_ids, ids[window]], dim=1).gather(1, keep3)
        self.context_acts = torch.cat([self.context_acts, window_acts], dim=1).gather(1, keep3)
        real = acts[candidate]
        self.n_tokens += int(real.shape[0])
        self.sums += real.sum(0, dtype=torch.float64)
        self.positives += (real > 0).sum(0)


def flatten(
    raw: torch.Tensor, batch: Batch, before: int, after: int, special_ids: Sequence[int] = ()
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """A right-padded batch's activations [B, T, n] as rows for :meth:`TopK.update`.

    Each text gets ``before`` empty rows in front and ``after`` behind, so a window around
    any real token never reaches into another text.
    """
    if batch.padding_side != "right":
        raise ValueError("flatten expects a right-padded batch")
    rows, width, n = raw.shape
    acts = F.pad(raw.float(), (0, 0, before, after), value=float("nan")).reshape(-1, n)
    mask = F.pad(batch.attention_mask.cpu().bool(), (before, after), value=False)
    ids = torch.where(mask, F.pad(batch.input_ids.cpu(), (before, after), value=-1), -1)
    column = torch.arange(width + before + after) - before
    positions = column.expand(rows, -1)
    texts = torch.tensor(batch.indices, dtype=torch.long)[:, None].expand(-1, width + before + after)
    candidate = mask & ~torch.isin(ids, torch.tensor(list(special_ids), dtype=torch.long))
    return acts, ids.reshape(-1), texts.reshape(-1), positions.reshape(-1), candidate.reshape(-1)


def stream_neurons(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int,
    *,
    batch_size: int = 8,
    max_tokens: int = 256,
    truncated: list[int] | None = None,
) -> Iterator[tuple[Batch, torch.Tensor]]:
    """Each right-padded batch (``indices`` = positions in ``texts``) with its float32
    ``neurons.{layer}`` activations [B, T, n] on the CPU; texts are cut at ``max_tokens``
    tokens (their indices are appended to ``truncated``).

    Texts are tokenised and length-sorted a block at a time, so nothing grows with the corpus.
    """
    (site,) = resolve_sites(model, f"neurons.{layer}")
    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else (tokenizer.eos_token_id or 0)
    block = batch_size * 32
    for start in range(0, len(texts), block):
        encoded = {i: tokenizer(texts[i])["input_ids"] for i in range(start, min(start + block, len(texts)))}
        for i, ids in encoded.items():
            if len(ids) > max_tokens:
                encoded[i] = ids[:max_tokens]
                if truncated is not None:
                    truncated.append(i)
        order = sorted((i for i in encoded if encoded[i]), key=lambda i: len(encoded[i]))
        for b in range(0, len(order), batch_size):
            rows = order[b : b + batch_size]
            batch = pad([encoded[i] for i in rows], pad_id=int(pad_id), indices=rows)
            on_device = Batch(batch.input_ids.to(device), batch.attention_mask.to(device), batch.lengths, "right", batch.indices)
            raw = forward_with(model, on_device, capture=[site])[site.name]
            yield batch, raw.float().cpu()


@dataclass(frozen=True)
class Context:
    """One top activation: the text and token it occurred at, and the tokens around it."""

    activation: float
    text: int
    position: int
    tokens: list[str]
    #: The neuron's activation at each of ``tokens``.
    activations: list[float]
    #: Index in ``tokens`` of the token the activation belongs to.
    focus: int


@dataclass
class Neuron:
    index: int
    max: float
    mean: float
    #: Fraction of corpus tokens on which the neuron is positive.
    density: float
    contexts: list[Context]
    #: The tokens the top contexts peak on, most frequent first: (token, count).
    top_tokens: list[tuple[str, int]]
    description: str | None = None
    #: How well the description predicts held-out activations (see neuron_descriptions).
    description_score: dict[str, float] | None = None


@dataclass
class NeuronResults:
    model: str
    fingerprint: str
    layer: int
    site: str
    k: int
    n_texts: int
    n_tokens: int
    n_truncated: int
    max_tokens: int
    window: tuple[int, int]
    neurons: list[Neuron]
    #: False when the search was interrupted: the results cover the texts seen until then.
    complete: bool = True

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    def ranked(self, by: str = "max") -> list[Neuron]:
        """Neurons sorted by ``max`` (default), ``mean`` or ``density``, largest first."""
        return sorted(self.neurons, key=lambda n: getattr(n, by), reverse=True)


def find_top_activations(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int,
    *,
    k: int = 10,
    batch_size: int = 8,
    max_tokens: int = 256,
    window: tuple[int, int] = DEFAULT_WINDOW,
    skip_special: bool = True,
    progress: Callable[[int], None] | None = None,
    truncated: list[int] | None = None,
    buffers: TopK | None = None,
) -> TopK:
    """The running top-k of every neuron of ``neurons.{layer}`` over ``texts``.

    With ``buffers`` (from an earlier call) the texts are merged into it: a corpus can be
    fed in pieces, and an interrupted search keeps what it merged.
    """
    n_neurons = mlp_width(model, layer)
    buffers = buffers if buffers is not None else TopK.empty(n_neurons, k, *window)
    special = list(getattr(tokenizer, "all_special_ids", [])) if skip_special else []
    stream = stream_neurons(model, tokenizer, texts, layer, batch_size=batch_size, max_tokens=max_tokens, truncated=truncated)
    for batch, raw in stream:
        buffers.update(*flatten(raw, batch, window[0], window[1], special))
        buffers.n_texts += len(batch.indices)
        if progress is not None:
            progress(len(batch.indices))
    return buffers


def mlp_width(model: PreTrainedModel, layer: int) -> int:
    """The number of neurons of layer ``layer`` (the down projection's input width)."""
    (site,) = resolve_sites(model, f"neurons.{layer}")
    down = model.get_submodule(site.module)
    weight = getattr(down, "weight", None)
    if weight is None:
        raise ValueError(f"{site.module} has no weight to read the MLP width from")
    # nn.Linear stores [out, in]; GPT-2's Conv1D stores [in, out].
    return int(weight.shape[1] if isinstance(down, torch.nn.Linear) else weight.shape[0])


def neuron_search(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    layer: int,
    *,
    model_name: str = "",
    fingerprint: str = "",
    k: int = 10,
    batch_size: int = 8,
    max_tokens: int = 256,
    window: tuple[int, int] = DEFAULT_WINDOW,
    skip_special: bool = True,
    progress: Callable[[int], None] | None = None,
) -> NeuronResults:
    """Top-k contexts of every neuron of a layer over ``texts``, decoded and summarised.

    Ctrl-C stops the search early: the results then cover the texts seen so far
    (``complete`` is False).
    """
    resolve_sites(model, f"neurons.{layer}")  # a clear error for a layer out of range
    layer %= layout(model).n_layers
    truncated: list[int] = []
    buffers = TopK.empty(mlp_width(model, layer), k, *window)
    complete = True
    try:
        find_top_activations(
            model, tokenizer, texts, layer, k=k, batch_size=batch_size, max_tokens=max_tokens, window=window,
            skip_special=skip_special, progress=progress, truncated=truncated, buffers=buffers,
        )
    except KeyboardInterrupt:
        complete = False
    results = summarize(
        buffers, tokenizer, model_name=model_name, fingerprint=fingerprint, layer=layer, n_texts=buffers.n_texts,
        n_truncated=len(truncated), max_tokens=max_tokens,
    )
    results.complete = complete
    return results


def summarize(
    buffers: TopK,
    tokenizer: Any,
    *,
    model_name: str,
    fingerprint: str,
    layer: int,
    n_texts: int,
    n_truncated: int = 0,
    max_tokens: int = 256,
) -> NeuronResults:
    """Readable results from the buffers: decoded contexts, per-neuron statistics."""
    decode = _Decoder(tokenizer)
    neurons: list[Neuron] = []
    n_tokens = max(buffers.n_tokens, 1)
    for i in range(buffers.values.shape[0]):
        contexts: list[Context] = []
        counts: dict[str, int] = {}
        for j in range(buffers.k):
            value = float(buffers.values[i, j])
            if value == float("-inf"):
                break
            ids = buffers.context_ids[i, j]
            keep = (ids >= 0).nonzero().flatten().tolist()
            tokens = [decode(int(ids[c])) for c in keep]
            acts = [round(float(buffers.context_acts[i, j, c]), 4) for c in keep]
            focus = keep.index(buffers.before)
            contexts.append(Context(round(value, 4), int(buffers.texts[i, j]), int(buffers.positions[i, j]), tokens, acts, focus))
            counts[tokens[focus]] = counts.get(tokens[focus], 0) + 1
        neurons.append(Neuron(
            index=i,
            max=round(float(buffers.values[i, 0]), 4) if contexts else float("nan"),
            mean=round(float(buffers.sums[i]) / n_tokens, 5),
            density=round(float(buffers.positives[i]) / n_tokens, 5),
            contexts=contexts,
            top_tokens=sorted(counts.items(), key=lambda kv: -kv[1]),
        ))
    return NeuronResults(
        model=model_name, fingerprint=fingerprint, layer=layer, site=f"neurons.{layer}",
        k=buffers.k, n_texts=n_texts, n_tokens=buffers.n_tokens, n_truncated=n_truncated, max_tokens=max_tokens,
        window=(buffers.before, buffers.after), neurons=neurons,
    )


class _Decoder:
    """Token id -> its text, decoded once per id (contexts repeat tokens a lot)."""

    def __init__(self, tokenizer: Any) -> None:
        self.tokenizer = tokenizer
        self.seen: dict[int, str] = {}

    def __call__(self, token_id: int) -> str:
        if token_id not in self.seen:
            self.seen[token_id] = str(self.tokenizer.decode([token_id]))
        return self.seen[token_id]


def neurons_page(results: NeuronResults, *, show: int = 100, command: str | None = None) -> Page:
    """A browsable page: the index of the ``show`` most active neurons, then for each its top
    contexts aligned on the peak token (column 0), every token shaded by the activation."""
    shown = results.ranked()[:show]
    index_rows: list[list[str | int | float | bool | Cell | None]] = [
        [n.index, n.max, n.mean, n.density, ", ".join(f"{show_token(t)}×{c}" for t, c in n.top_tokens[:4]), n.description or ""]
        for n in shown
    ]
    tables = [Table(
        "Neurons", ["neuron", "max", "mean", "density", "peak tokens", "description"], index_rows,
        caption=f"The {len(shown)} neurons of {results.site} with the largest activations (of {len(results.neurons)}); "
                "density is the fraction of tokens where the neuron is positive.",
    )]
    offsets = range(-results.window[0], results.window[1] + 1)
    for n in shown:
        rows: list[list[str | int | float | bool | Cell | None]] = []
        for ctx in n.contexts:
            colors = color_scale([max(a, 0.0) for a in ctx.activations], "sequential", vmin=0.0, vmax=max(n.max, 1e-6))
            cells = {i - ctx.focus: Cell(label(tok, 16), title=f"{act:.3f}", color=col, mono=True)
                     for i, (tok, act, col) in enumerate(zip(ctx.tokens, ctx.activations, colors, strict=True))}
            rows.append([ctx.activation, ctx.text, *(cells.get(o, Cell("")) for o in offsets)])
        caption = f"peak tokens: {', '.join(show_token(t) for t, _ in n.top_tokens[:6])}"
        if n.description:
            caption += f"\ndescription: {n.description}"
            if n.description_score:
                caption += "  (" + ", ".join(f"{k} {v:.2f}" for k, v in n.description_score.items()) + ")"
        tables.append(Table(f"neuron {n.index} · max {n.max:.3g}", ["activation", "text", *(f"{o:+d}" if o else "▶0" for o in offsets)], rows, caption))
    return Page(
        title=f"Top-activating contexts of {results.site}",
        kind="neurons",
        description=(
            f"For each MLP neuron of layer {results.layer}, the {results.k} corpus tokens where it is most active, "
            f"with {results.window[0]} tokens before and {results.window[1]} after. Hover a token for its activation."
        ),
        summary=[
            ("model", results.model), ("layer", results.layer), ("neurons", len(results.neurons)),
            ("texts", results.n_texts), ("tokens", results.n_tokens),
            ("texts cut", f"{results.n_truncated} at {results.max_tokens} tokens"),
            ("dead neurons (never positive)", sum(1 for n in results.neurons if n.density == 0)),
        ],
        tables=tables,
        command=command,
        extra={"fingerprint": results.fingerprint},
    )
