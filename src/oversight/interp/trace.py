"""Read and change activations of a local causal LM with plain PyTorch hooks.

Hooks are registered for one forward pass (or one ``with`` block) and always removed, even when
the pass raises, so the user's model object is never changed. A capture stops the forward pass
right after the deepest requested layer: the remaining layers and the output layer (69% of a Gemma
forward) never run.

Padding is explicit: each batch carries its token lengths and the side it was padded on, and
position ids are computed from the attention mask, so left and right padding both give the
activations of an unpadded run.

Attention patterns (``pattern.{i}``) exist only under eager attention: a pass that captures one
switches the model's attention implementation to eager for that pass and restores it after.

Activations come back on the CPU (captures) or on the model's device (:func:`forward_with`), in
float32 or bfloat16, never float16: Gemma's residual stream exceeds float16's range.

On CPU with glibc, a capture that keeps large activations costs a few percent more than the hooks
do unless freed memory is kept for reuse: call :func:`oversight.interp.memory.keep_freed_memory`
once at start (the CLI does).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext, suppress
from dataclasses import dataclass, field
from typing import Any, Literal

import torch
from torch import nn
from torch.utils.hooks import RemovableHandle
from transformers import PreTrainedModel

from oversight.errors import SpecError
from oversight.interp.sites import Site, layout, resolve_sites

PaddingSide = Literal["right", "left"]
#: "last" token, every token ("all"), token indices (negative counts from each text's end), or
#: one boolean mask per text.
Positions = Literal["last", "all"] | Sequence[int] | Sequence[Sequence[bool]]
#: An intervention's function: (activation [batch, tokens, width], batch) -> new activation.
EditFn = Callable[[torch.Tensor, "Batch"], torch.Tensor]

CACHE_DTYPES = (torch.float32, torch.bfloat16)


@dataclass
class Batch:
    """Token ids of several texts padded into one tensor, with what undoes the padding."""

    input_ids: torch.Tensor  # [batch, tokens]
    attention_mask: torch.Tensor  # [batch, tokens]; 1 for real tokens
    lengths: list[int]
    padding_side: PaddingSide
    indices: list[int] = field(default_factory=list)  # positions of these texts in the full input

    @property
    def position_ids(self) -> torch.Tensor:
        return (self.attention_mask.cumsum(-1) - 1).clamp(min=0)

    def token_index(self, row: int, position: int) -> int:
        """Column of the row's ``position``-th real token (negative counts from the end)."""
        length = self.lengths[row]
        if not -length <= position < length:
            raise IndexError(f"position {position} is outside text {self.indices[row] if self.indices else row} of {length} tokens")
        position %= length
        return position if self.padding_side == "right" else self.input_ids.shape[1] - length + position

    def last_index(self) -> torch.Tensor:
        return torch.tensor([self.token_index(r, -1) for r in range(len(self.lengths))])

    def real_tokens(self, row: int) -> slice:
        start = self.token_index(row, 0)
        return slice(start, start + self.lengths[row])


def tokenize(
    tokenizer: Any, texts: Sequence[str], *, padding_side: PaddingSide = "right", indices: Sequence[int] | None = None
) -> Batch:
    """Tokenize texts into one padded batch (special tokens as the model expects, e.g. BOS)."""
    encoded = [tokenizer(text)["input_ids"] for text in texts]
    return pad(encoded, pad_id=_pad_id(tokenizer), padding_side=padding_side, indices=indices)


def pad(
    token_ids: Sequence[Sequence[int]], *, pad_id: int, padding_side: PaddingSide = "right", indices: Sequence[int] | None = None
) -> Batch:
    lengths = [len(t) for t in token_ids]
    if min(lengths, default=1) == 0:
        raise ValueError("cannot run an empty text (zero tokens)")
    width = max(lengths)
    ids = torch.full((len(token_ids), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(token_ids), width), dtype=torch.long)
    for row, tokens in enumerate(token_ids):
        cols = slice(0, len(tokens)) if padding_side == "right" else slice(width - len(tokens), width)
        ids[row, cols] = torch.tensor(tokens, dtype=torch.long)
        mask[row, cols] = 1
    return Batch(ids, mask, lengths, padding_side, list(indices) if indices is not None else list(range(len(token_ids))))


@dataclass(frozen=True)
class Intervention:
    """Change the activation at a site during a forward pass (see :func:`replace`, :func:`add`…)."""

    site: str
    edit: EditFn


def replace(site: str, value: torch.Tensor, positions: Positions | torch.Tensor = "all") -> Intervention:
    """Write ``value`` at the positions: [width] for every row, or [batch, n_positions, width]."""
    return Intervention(site, lambda h, b: _write(h, b, positions, lambda old, row: _row_value(value, row, old)))


def add(site: str, vector: torch.Tensor, positions: Positions | torch.Tensor = "all", scale: float = 1.0) -> Intervention:
    """Add ``scale * vector`` (a direction, [width]) at the positions: the basis of steering."""
    return Intervention(site, lambda h, b: _write(h, b, positions, lambda old, row: old + scale * vector.to(old)))


def scale(site: str, factor: float, positions: Positions | torch.Tensor = "all") -> Intervention:
    return Intervention(site, lambda h, b: _write(h, b, positions, lambda old, row: old * factor))


def zero_ablate(site: str, positions: Positions | torch.Tensor = "all") -> Intervention:
    return Intervention(site, lambda h, b: _write(h, b, positions, lambda old, row: torch.zeros_like(old)))


def mean_ablate(site: str, mean: torch.Tensor, positions: Positions | torch.Tensor = "all") -> Intervention:
    """Replace with a mean activation ([width]), e.g. over a reference set of prompts."""
    return Intervention(site, lambda h, b: _write(h, b, positions, lambda old, row: mean.to(old).expand_as(old)))


@dataclass
class _Run:
    """The batch in flight: what the hooks need to know about padding."""

    batch: Batch | None = None


@contextmanager
def intervene(model: PreTrainedModel, interventions: Sequence[Intervention], *, batch: Batch | None = None) -> Iterator[_Run]:
    """Apply interventions to every forward pass inside the block; hooks are removed on exit.

    Set ``run.batch`` (the yielded object) before each pass when the edits depend on padding;
    without it (generation) each row is treated as unpadded.
    """
    run = _Run(batch)
    handles: list[RemovableHandle] = []
    try:
        for intervention in interventions:
            (site,) = _single_site(model, intervention.site)
            handles.append(_register(model, site, _editor(intervention.edit, run)))
        yield run
    finally:
        for handle in handles:
            handle.remove()


class _Stop(Exception):
    """Raised by the last capture hook: nothing after it is needed."""


def forward_with(
    model: PreTrainedModel,
    batch: Batch,
    *,
    capture: Sequence[Site] = (),
    interventions: Sequence[Intervention] = (),
    stop_early: bool = True,
) -> dict[str, torch.Tensor]:
    """One forward pass of the model's body with interventions applied; the raw [batch, tokens, width]
    activation of each captured site (detached, in the model's dtype); ``pattern.{i}`` sites give
    [batch, heads, tokens, tokens] attention probabilities.

    ``stop_early`` ends the pass after the deepest captured layer. The output layer never runs:
    use :func:`logits_at` on ``final_norm`` for logits at chosen positions.
    """
    found: dict[str, torch.Tensor] = {}
    stop_at = _stop_point(model, capture) if stop_early and capture else None
    handles: list[RemovableHandle] = []
    run = _Run(batch)
    patterns = any(site.hook == "weights" for site in capture)
    try:
        for intervention in interventions:
            (site,) = _single_site(model, intervention.site)
            handles.append(_register(model, site, _editor(intervention.edit, run)))
        for site in capture:
            handles.append(_register(model, site, _recorder(site, found)))
        if stop_at is not None:  # registered last, so it fires after every capture hook
            module, before = stop_at
            hook = model.get_submodule(module)
            handles.append(hook.register_forward_pre_hook(_raise_stop) if before else hook.register_forward_hook(_raise_stop))
        body = model.base_model
        eager: AbstractContextManager[None] = _eager_attention(model) if patterns else nullcontext()
        device = next(model.parameters()).device
        with torch.inference_mode(), eager, suppress(_Stop):
            body(input_ids=batch.input_ids.to(device), attention_mask=batch.attention_mask.to(device),
                 position_ids=batch.position_ids.to(device), use_cache=False)
    finally:
        for handle in handles:
            handle.remove()
    return found


@contextmanager
def _eager_attention(model: PreTrainedModel) -> Iterator[None]:
    """Run the block's forward passes with eager attention, the only implementation that returns its
    probabilities; the model's own choice (sdpa, flash…) is restored on exit, even on error.

    The setting lives on the config objects the attention modules and mask builders read at call
    time, so switching it for one pass changes nothing else. (Not safe while another thread runs
    the same model object.)
    """
    configs = {id(m.config): m.config for m in model.modules() if isinstance(m, PreTrainedModel)}
    saved = {key: config._attn_implementation_internal for key, config in configs.items()}
    try:
        for config in configs.values():
            config._attn_implementation_internal = "eager"
        yield
    finally:
        for key, config in configs.items():
            config._attn_implementation_internal = saved[key]


def logits_at(model: PreTrainedModel, hidden: torch.Tensor) -> torch.Tensor:
    """The output layer (with Gemma's logit soft-capping) on final-norm activations [..., d_model]."""
    head = model.get_output_embeddings()
    with torch.inference_mode():
        logits = head(hidden.to(head.weight)).float()
    cap = getattr(model.config.get_text_config(), "final_logit_softcapping", None)
    return torch.tanh(logits / cap) * cap if cap else logits


@dataclass
class Activations:
    """Captured activations, one tensor per site.

    With ``positions="last"`` a site's tensor is [texts, width]; with token indices [texts, k,
    width]; with "all" or masks the tokens of all texts are stacked, [tokens, width], and text i
    is rows ``offsets[i]:offsets[i + 1]`` (see :meth:`of`). Attention patterns differ in size from
    text to text, so they are kept as one [heads, queries, keys] tensor per text in ``patterns``.
    """

    sites: dict[str, torch.Tensor]
    positions: Positions
    offsets: list[int] | None = None
    token_ids: list[list[int]] = field(default_factory=list)
    patterns: dict[str, list[torch.Tensor]] = field(default_factory=dict)

    def __getitem__(self, site: str) -> torch.Tensor:
        if site in self.patterns:
            raise KeyError(f"{site} holds one [heads, queries, keys] tensor per text: use .of({site!r}, i)")
        if site not in self.sites:
            raise KeyError(f"{site!r} was not captured; captured: {', '.join([*self.sites, *self.patterns])}")
        return self.sites[site]

    def of(self, site: str, text: int) -> torch.Tensor:
        """One text's activations at a site (its selected tokens, or its attention pattern)."""
        if site in self.patterns:
            return self.patterns[site][text]
        if self.offsets is None:
            return self[site][text]
        return self[site][self.offsets[text] : self.offsets[text + 1]]


def iter_capture(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    sites: str | Sequence[str],
    *,
    positions: Positions = "last",
    batch_size: int = 16,
    dtype: torch.dtype = torch.float32,
    padding_side: PaddingSide = "right",
    interventions: Sequence[Intervention] = (),
) -> Iterator[tuple[Batch, dict[str, list[torch.Tensor]]]]:
    """Capture batch by batch (for streaming to disk): each batch and, per site, one tensor per text
    ([width] for "last", [k, width] for indices, [tokens, width] for "all" or a mask; for
    ``pattern.{i}`` sites [heads, queries, keys] with the chosen positions as queries and all the
    text's tokens as keys)."""
    if dtype not in CACHE_DTYPES:
        raise ValueError(f"activations are cached as float32 or bfloat16, not {dtype} (Gemma's overflow float16)")
    chosen = resolve_sites(model, [sites] if isinstance(sites, str) else list(sites))
    if not texts:
        raise ValueError("no texts to capture")
    encoded = [tokenizer(text)["input_ids"] for text in texts]
    order = sorted(range(len(texts)), key=lambda i: len(encoded[i]))  # similar lengths pad less
    for start in range(0, len(order), batch_size):
        rows = order[start : start + batch_size]
        batch = pad([encoded[i] for i in rows], pad_id=_pad_id(tokenizer), padding_side=padding_side, indices=rows)
        raw = forward_with(model, batch, capture=chosen, interventions=interventions)
        yield batch, {
            site.name: (_select_pattern if site.hook == "weights" else _select)(raw[site.name], batch, positions, dtype)
            for site in chosen
        }


def capture(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    sites: str | Sequence[str],
    *,
    positions: Positions = "last",
    batch_size: int = 16,
    dtype: torch.dtype = torch.float32,
    padding_side: PaddingSide = "right",
    interventions: Sequence[Intervention] = (),
    progress: Callable[[int], None] | None = None,
) -> Activations:
    """Activations of the sites for every text, in memory, in the order of ``texts``."""
    pattern_sites = {s.name for s in resolve_sites(model, [sites] if isinstance(sites, str) else list(sites)) if s.hook == "weights"}
    per_text: dict[str, list[torch.Tensor | None]] = {}
    token_ids: list[list[int]] = [[] for _ in texts]
    for batch, found in iter_capture(
        model, tokenizer, texts, sites, positions=positions, batch_size=batch_size, dtype=dtype,
        padding_side=padding_side, interventions=interventions,
    ):
        for name, tensors in found.items():
            slots = per_text.setdefault(name, [None] * len(texts))
            for row, index in enumerate(batch.indices):
                slots[index] = tensors[row]
        for row, index in enumerate(batch.indices):
            token_ids[index] = batch.input_ids[row, batch.real_tokens(row)].tolist()
        if progress:
            progress(len(batch.indices))
    done = {name: [t for t in tensors if t is not None] for name, tensors in per_text.items()}
    ragged = not (positions == "last" or _is_index_list(positions))
    join = torch.cat if ragged else torch.stack
    sites_out = {name: join(tensors) for name, tensors in done.items() if name not in pattern_sites}
    offsets = None
    if ragged and done:
        name, tensors = next(iter(done.items()))
        offsets = [0]
        for t in tensors:  # the selected tokens of each text (a pattern's queries)
            offsets.append(offsets[-1] + t.shape[1 if name in pattern_sites else 0])
    patterns = {name: tensors for name, tensors in done.items() if name in pattern_sites}
    return Activations(sites_out, positions, offsets, token_ids, patterns)


# -- internals ---------------------------------------------------------------------------------


def _pad_id(tokenizer: Any) -> int:
    pad_id = tokenizer.pad_token_id
    return int(pad_id if pad_id is not None else tokenizer.eos_token_id or 0)


def _single_site(model: PreTrainedModel, name: str) -> list[Site]:
    sites = resolve_sites(model, name)
    if len(sites) != 1:
        raise ValueError(f"an intervention needs one site; {name!r} matches {len(sites)}")
    if sites[0].hook == "weights":
        raise SpecError(f"{name!r} can be captured, not edited: to change attention, edit heads.N or attn.N")
    return sites


def _register(model: PreTrainedModel, site: Site, fn: Callable[[torch.Tensor], torch.Tensor | None]) -> RemovableHandle:
    module = model.get_submodule(site.module)
    if site.hook == "input":

        def pre_hook(_m: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> tuple[tuple[Any, ...], dict[str, Any]] | None:
            if not args:  # some families pass the hidden states by keyword
                new = fn(kwargs["hidden_states"])
                return None if new is None else (args, {**kwargs, "hidden_states": new})
            new = fn(args[0])
            return None if new is None else ((new, *args[1:]), kwargs)

        return module.register_forward_pre_hook(pre_hook, with_kwargs=True)

    if site.hook == "weights":

        def weights_hook(_m: nn.Module, _args: tuple[Any, ...], output: Any) -> None:
            weights = output[1] if isinstance(output, tuple) and len(output) > 1 else None
            if weights is None:
                raise SpecError(f"{site.module} returned no attention probabilities even with eager attention; {site.name} is not supported for this model")
            fn(weights)

        return module.register_forward_hook(weights_hook)

    def hook(_m: nn.Module, _args: tuple[Any, ...], output: Any) -> Any:
        tensor = output[0] if isinstance(output, tuple) else output
        new = fn(tensor)
        if new is None:
            return None
        return (new, *output[1:]) if isinstance(output, tuple) else new

    return module.register_forward_hook(hook)


def _recorder(site: Site, found: dict[str, torch.Tensor]) -> Callable[[torch.Tensor], None]:
    def record(tensor: torch.Tensor) -> None:
        found[site.name] = tensor.detach()

    return record


def _raise_stop(*_: Any) -> None:
    raise _Stop


def _editor(edit: EditFn, run: _Run) -> Callable[[torch.Tensor], torch.Tensor]:
    def apply(tensor: torch.Tensor) -> torch.Tensor:
        batch = run.batch if run.batch is not None and run.batch.input_ids.shape[:2] == tensor.shape[:2] else _unpadded(tensor)
        return edit(tensor, batch)

    return apply


def _unpadded(tensor: torch.Tensor) -> Batch:
    rows, tokens = tensor.shape[:2]
    ones = torch.ones((rows, tokens), dtype=torch.long)
    return Batch(ones, ones, [tokens] * rows, "right", list(range(rows)))


def _stop_point(model: PreTrainedModel, sites: Sequence[Site]) -> tuple[str, bool] | None:
    """(module, before it runs?) after which nothing else is needed, or None if the pass must finish."""
    lay = layout(model)
    if any(s.layer is None and s.name != "embed" for s in sites):
        return None  # final_norm or a module outside the layers: run to the end
    layers = [s.layer for s in sites if s.layer is not None]
    if not layers:  # only the embeddings: stop as layer 0 is about to run
        return lay.layer(0), True
    return lay.layer(max(layers)), False


def _is_index_list(positions: object) -> bool:
    return isinstance(positions, Sequence) and not isinstance(positions, str) and all(isinstance(p, int) for p in positions)


def _select(raw: torch.Tensor, batch: Batch, positions: Positions, dtype: torch.dtype) -> list[torch.Tensor]:
    out: list[torch.Tensor] = []
    for row in range(len(batch.lengths)):
        if positions == "last":
            picked = raw[row, batch.token_index(row, -1)]
        elif positions == "all":
            picked = raw[row, batch.real_tokens(row)]
        elif _is_index_list(positions):
            picked = raw[row, [batch.token_index(row, int(p)) for p in positions]]  # type: ignore[arg-type]
        else:
            mask = torch.as_tensor(positions[batch.indices[row]], dtype=torch.bool)
            if mask.shape[0] != batch.lengths[row]:
                raise ValueError(f"text {batch.indices[row]}: mask has {mask.shape[0]} entries for {batch.lengths[row]} tokens")
            picked = raw[row, batch.real_tokens(row)][mask]
        out.append(picked.to("cpu", dtype, copy=True))  # a copy: never a view of the whole batch
    return out


def _select_pattern(raw: torch.Tensor, batch: Batch, positions: Positions, dtype: torch.dtype) -> list[torch.Tensor]:
    """[heads, queries, keys] per text from [batch, heads, tokens, tokens]: padding cut from both axes."""
    out: list[torch.Tensor] = []
    for row in range(len(batch.lengths)):
        keys = raw[row][:, :, batch.real_tokens(row)]
        if positions == "all":
            cols = list(range(batch.real_tokens(row).start, batch.real_tokens(row).stop))
        else:
            cols = _positions_of(batch, positions, row)
            if not (positions == "last" or _is_index_list(positions)):
                _check_mask(positions, batch, row)
        out.append(keys[:, cols].to("cpu", dtype, copy=True))
    return out


def _check_mask(positions: Any, batch: Batch, row: int) -> None:
    mask = positions[batch.indices[row]]
    if len(mask) != batch.lengths[row]:
        raise ValueError(f"text {batch.indices[row]}: mask has {len(mask)} entries for {batch.lengths[row]} tokens")


def _positions_of(batch: Batch, positions: Positions | torch.Tensor, row: int) -> list[int]:
    if isinstance(positions, torch.Tensor):
        flat = positions.reshape(len(batch.lengths), -1)[row].tolist()
        return [batch.token_index(row, int(p)) for p in flat]
    if positions == "all":
        span = batch.real_tokens(row)
        return list(range(span.start, span.stop))
    if positions == "last":
        return [batch.token_index(row, -1)]
    if _is_index_list(positions):
        return [batch.token_index(row, int(p)) for p in positions]  # type: ignore[arg-type]
    mask = positions[batch.indices[row]]
    start = batch.token_index(row, 0)
    return [start + i for i, keep in enumerate(mask) if keep]  # type: ignore[arg-type]


def _write(
    h: torch.Tensor, batch: Batch, positions: Positions | torch.Tensor, new: Callable[[torch.Tensor, int], torch.Tensor]
) -> torch.Tensor:
    h = h.clone()  # never write into a tensor the model may still read
    for row in range(h.shape[0]):
        cols = _positions_of(batch, positions, row)
        if cols:
            h[row, cols] = new(h[row, cols], row).to(h)
    return h


def _row_value(value: torch.Tensor, row: int, old: torch.Tensor) -> torch.Tensor:
    if value.dim() == 1:
        return value.expand_as(old)
    return value[row].reshape(old.shape)
