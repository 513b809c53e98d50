"""Captured activations on disk: safetensors shards plus a small JSON manifest, written with bounded
memory, resumable, and read back lazily per site and per range of texts.

A directory holds ``manifest.json`` and ``shard-00000.safetensors``, … Shard ``k`` holds texts
``[k * texts_per_shard, (k + 1) * texts_per_shard)`` in input order. Per site a shard stores:

- ``"last"``: [texts, width]; token indices: [texts, k, width];
- ``"all"`` or masks: the selected tokens of its texts stacked, [tokens, width], with
  ``__offsets__`` ([texts + 1], within the shard) saying where each text starts;
- ``pattern.{i}``: every text's [heads, queries, keys] flattened into one vector, with
  ``<site>::shape`` ([texts, 3]).

and for every text its token ids (``__token_ids__`` / ``__token_offsets__``) and, for masks, the
mask. A shard is written to a temporary name and renamed, then listed in the manifest, so a killed
capture loses at most the shard in progress and the next run starts at the first missing shard.
Only one shard's activations are in memory at a time.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
from pydantic import BaseModel, ValidationError
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file
from transformers import PreTrainedModel

from oversight.errors import DataError, OversightError
from oversight.interp.sites import resolve_sites
from oversight.interp.trace import CACHE_DTYPES, Activations, PaddingSide, Positions, iter_capture

FORMAT = "oversight-activations/1"
MANIFEST = "manifest.json"
_DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}


class ShardEntry(BaseModel):
    file: str
    start: int  # first text (input order)
    stop: int  # one past the last text


class Manifest(BaseModel):
    """What a store holds; everything but ``shards`` must match for a capture to resume."""

    format: Literal["oversight-activations/1"] = "oversight-activations/1"
    model: str
    fingerprint: str
    sites: list[str]
    positions: Literal["last", "all", "mask"] | list[int]
    dtype: Literal["float32", "bfloat16"]
    padding_side: Literal["left", "right"]
    n_texts: int
    texts_per_shard: int
    inputs_sha256: str  # of the texts (and masks): a resumed run must read the same inputs
    shards: list[ShardEntry] = []

    @property
    def n_shards(self) -> int:
        return -(-self.n_texts // self.texts_per_shard)

    @property
    def complete(self) -> bool:
        return len(self.shards) == self.n_shards

    def header(self) -> dict[str, Any]:
        return self.model_dump(exclude={"shards"})


Progress = Callable[[int, int], None]  # (texts done, texts in all)


def write_activations(
    model: PreTrainedModel,
    tokenizer: Any,
    texts: Sequence[str],
    sites: str | Sequence[str],
    directory: str | Path,
    *,
    positions: Positions = "last",
    dtype: torch.dtype = torch.float32,
    batch_size: int = 16,
    texts_per_shard: int = 1024,
    padding_side: PaddingSide = "right",
    model_name: str = "",
    fingerprint: str | None = None,
    progress: Progress | None = None,
) -> ActivationStore:
    """Capture the sites for every text into ``directory``, shard by shard; resumes a partial store.

    ``fingerprint`` identifies the weights (``HFModel.info.fingerprint``); without it one is
    computed from the parameters. An existing store made with other settings is refused.
    """
    if dtype not in CACHE_DTYPES:
        raise OversightError(f"activations are stored as float32 or bfloat16, not {dtype} (Gemma's overflow float16)")
    if texts_per_shard < 1 or batch_size < 1:
        raise OversightError("texts_per_shard and batch_size must be at least 1")
    if not texts:
        raise OversightError("no texts to capture")
    resolved = resolve_sites(model, [sites] if isinstance(sites, str) else list(sites))
    names = [s.name for s in resolved]
    pattern_names = {s.name for s in resolved if s.hook == "weights"}
    masks = _masks(positions, texts)
    if fingerprint is None:
        from oversight.models.hf import tensors_fingerprint

        fingerprint = tensors_fingerprint(model)
    wanted = Manifest(
        model=model_name or type(model).__name__, fingerprint=fingerprint, sites=names,
        positions="mask" if masks is not None else positions,  # type: ignore[arg-type]
        dtype=str(dtype).removeprefix("torch."), padding_side=padding_side,  # type: ignore[arg-type]
        n_texts=len(texts), texts_per_shard=texts_per_shard, inputs_sha256=_inputs_hash(texts, masks),
    )
    root = Path(directory)
    manifest = _resume(root, wanted)
    done = {entry.start for entry in manifest.shards if (root / entry.file).is_file()}
    manifest.shards = [entry for entry in manifest.shards if entry.start in done]
    finished = sum(entry.stop - entry.start for entry in manifest.shards)
    if progress:
        progress(finished, len(texts))
    for k in range(manifest.n_shards):
        start, stop = k * texts_per_shard, min((k + 1) * texts_per_shard, len(texts))
        if start in done:
            continue
        shard_positions: Positions = masks[start:stop] if masks is not None else positions

        def step(n: int, before: int = finished) -> None:
            if progress:
                progress(before + n, len(texts))

        tensors = _capture_shard(model, tokenizer, texts[start:stop], names, pattern_names, shard_positions, dtype, batch_size, padding_side, step)
        entry = ShardEntry(file=f"shard-{k:05d}.safetensors", start=start, stop=stop)
        _atomic_save(tensors, root / entry.file, {"start": str(start), "stop": str(stop)})
        del tensors  # keep at most one shard in memory
        manifest.shards.append(entry)
        manifest.shards.sort(key=lambda e: e.start)
        _write_manifest(root, manifest)
        finished += stop - start
    return ActivationStore(root)


@dataclass
class ActivationStore:
    """A store on disk, read lazily: only the shards (and rows) a request needs are loaded."""

    directory: Path
    manifest: Manifest = field(init=False)

    def __post_init__(self) -> None:
        self.directory = Path(self.directory)
        self.manifest = read_manifest(self.directory)

    @property
    def sites(self) -> list[str]:
        return self.manifest.sites

    @property
    def n_texts(self) -> int:
        """Texts stored so far (all of them once the capture is complete)."""
        return sum(e.stop - e.start for e in self.manifest.shards)

    def read(self, sites: str | Sequence[str] | None = None, start: int = 0, stop: int | None = None) -> Activations:
        """Texts ``[start, stop)`` at the chosen sites (all by default), as an in-memory capture gives them."""
        names = self.sites if sites is None else [sites] if isinstance(sites, str) else list(sites)
        unknown = [n for n in names if n not in self.sites]
        if unknown:
            raise OversightError(f"{self.directory} has no site {', '.join(unknown)}; it holds {', '.join(self.sites)}")
        stop = self.manifest.n_texts if stop is None else stop
        if not 0 <= start <= stop <= self.manifest.n_texts:
            raise OversightError(f"text range [{start}, {stop}) is outside the {self.manifest.n_texts} texts of {self.directory}")
        parts = [self._read_shard(entry, names, max(start, entry.start), min(stop, entry.stop)) for entry in self._covering(start, stop)]
        return _join(parts, names, self.manifest.positions)

    def of(self, site: str, text: int) -> torch.Tensor:
        return self.read(site, text, text + 1).of(site, 0)

    def iter_texts(self, sites: str | Sequence[str] | None = None, batch: int | None = None) -> Iterator[tuple[int, Activations]]:
        """(first text, activations) for consecutive ranges of ``batch`` texts (a shard by default)."""
        step = batch or self.manifest.texts_per_shard
        for first in range(0, self.manifest.n_texts, step):
            yield first, self.read(sites, first, min(first + step, self.manifest.n_texts))

    def _covering(self, start: int, stop: int) -> list[ShardEntry]:
        entries = [e for e in self.manifest.shards if e.start < stop and e.stop > start]
        covered = sum(min(stop, e.stop) - max(start, e.start) for e in entries)
        if covered != stop - start:
            raise OversightError(f"{self.directory} is incomplete ({self.n_texts} of {self.manifest.n_texts} texts): re-run the capture to finish it")
        return entries

    def _read_shard(self, entry: ShardEntry, names: list[str], start: int, stop: int) -> dict[str, Any]:
        a, b = start - entry.start, stop - entry.start
        path = self.directory / entry.file
        out: dict[str, Any] = {}
        try:
            with safe_open(str(path), framework="pt") as f:
                keys = set(f.keys())
                token_offsets = f.get_tensor("__token_offsets__")
                ids = f.get_slice("__token_ids__")[int(token_offsets[a]) : int(token_offsets[b])]
                out["token_ids"] = _split(ids, (token_offsets[a : b + 1] - token_offsets[a]).tolist())
                if "__mask__" in keys:
                    mask = f.get_slice("__mask__")[int(token_offsets[a]) : int(token_offsets[b])]
                    out["masks"] = [m.tolist() for m in _split(mask, (token_offsets[a : b + 1] - token_offsets[a]).tolist())]
                offsets = f.get_tensor("__offsets__") if "__offsets__" in keys else None
                for name in names:
                    if f"{name}::shape" in keys:  # a pattern: flat, one [heads, queries, keys] per text
                        shapes = f.get_tensor(f"{name}::shape")
                        sizes = torch.cat([torch.zeros(1, dtype=torch.long), shapes.prod(1).cumsum(0)])
                        flat = f.get_slice(name)[int(sizes[a]) : int(sizes[b])]
                        pieces = _split(flat, (sizes[a : b + 1] - sizes[a]).tolist())
                        out[name] = [p.reshape(*s.tolist()) for p, s in zip(pieces, shapes[a:b], strict=True)]
                    elif offsets is not None:
                        out[name] = f.get_slice(name)[int(offsets[a]) : int(offsets[b])]
                        out["offsets"] = (offsets[a : b + 1] - offsets[a]).tolist()
                    else:
                        out[name] = f.get_slice(name)[a:b]
        except (OSError, KeyError, RuntimeError, SafetensorError) as e:
            raise DataError(f"unreadable shard ({e}); delete it and re-run the capture to rewrite it", path=path) from None
        return out


@dataclass(frozen=True)
class SiteSummary:
    """What one site of a store holds, and how large its activations are."""

    site: str
    shape: tuple[int, ...]  # per text ([width], [k, width], [tokens, width] written as -1, or [heads, -1, -1])
    rows: int  # vectors stored (texts, tokens or pattern rows)
    mean_norm: float  # mean L2 norm of a stored vector (a pattern row for patterns)
    max_abs: float
    mean_entropy: float | None = None  # patterns: mean entropy (nats) of an attention row

    def to_dict(self) -> dict[str, Any]:
        return {"site": self.site, "shape": list(self.shape), "rows": self.rows, "mean_norm": self.mean_norm,
                "max_abs": self.max_abs, **({"mean_entropy": self.mean_entropy} if self.mean_entropy is not None else {})}


def summarize(store: ActivationStore) -> list[SiteSummary]:
    """Per site: shape, count and norms, read shard by shard (bounded memory)."""
    totals: dict[str, list[float]] = {name: [0, 0.0, 0.0, 0.0] for name in store.sites}  # rows, norm sum, max, entropy sum
    shapes: dict[str, tuple[int, ...]] = {}
    patterns: set[str] = set()
    ragged = store.manifest.positions in ("all", "mask")
    for _, acts in store.iter_texts():
        for name in store.sites:
            if name in acts.patterns:  # one [heads, queries, keys] per text; keys differ in number
                blocks = [p.float().reshape(-1, p.shape[-1]) for p in acts.patterns[name]]
                totals[name][3] += sum(float(-(b * b.clamp_min(1e-30).log()).sum()) for b in blocks)
                heads, queries = acts.patterns[name][0].shape[:2]
                shapes[name] = (heads, -1 if ragged else queries, -1)
                patterns.add(name)
            else:
                blocks = [acts.sites[name].float().reshape(-1, acts.sites[name].shape[-1])]
                per_text = acts.sites[name].shape[1:]
                shapes[name] = (-1, *per_text) if ragged else tuple(per_text)
            for rows in blocks:
                totals[name][0] += rows.shape[0]
                totals[name][1] += float(rows.norm(dim=-1).sum())
                totals[name][2] = max(totals[name][2], float(rows.abs().max()) if rows.numel() else 0.0)
    out = []
    for name in store.sites:
        n, norm_sum, max_abs, entropy_sum = totals[name]
        entropy = entropy_sum / n if name in patterns and n else None
        out.append(SiteSummary(name, shapes.get(name, ()), int(n), norm_sum / n if n else 0.0, max_abs, entropy))
    return out


def read_manifest(directory: str | Path) -> Manifest:
    path = Path(directory) / MANIFEST
    if not path.is_file():
        raise OversightError(f"{directory} is not an activation store (no {MANIFEST})")
    try:
        return Manifest.model_validate_json(path.read_text())
    except ValidationError as e:
        first = e.errors()[0]
        raise DataError(first["msg"], path=path, field=".".join(str(p) for p in first["loc"])) from None


# -- internals ---------------------------------------------------------------------------------


def _resume(root: Path, wanted: Manifest) -> Manifest:
    if not (root / MANIFEST).exists():
        if root.exists() and any(root.iterdir()):
            raise OversightError(f"{root} exists and is not an activation store; choose an empty or new directory")
        root.mkdir(parents=True, exist_ok=True)
        _write_manifest(root, wanted)
        return wanted
    found = read_manifest(root)
    for key, value in wanted.header().items():
        if found.header()[key] != value:
            raise OversightError(
                f"{root / MANIFEST} was written with {key}={found.header()[key]!r}, this capture has {value!r}: "
                "use another directory, or delete this one to start over"
            )
    return found


def _write_manifest(root: Path, manifest: Manifest) -> None:
    tmp = root / (MANIFEST + ".tmp")
    tmp.write_text(json.dumps(manifest.model_dump(), indent=1) + "\n")
    os.replace(tmp, root / MANIFEST)


def _atomic_save(tensors: dict[str, torch.Tensor], path: Path, metadata: dict[str, str]) -> None:
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=metadata)
    os.replace(tmp, path)


def _capture_shard(
    model: PreTrainedModel, tokenizer: Any, texts: Sequence[str], names: list[str], pattern_names: set[str],
    positions: Positions, dtype: torch.dtype, batch_size: int, padding_side: PaddingSide, step: Callable[[int], None],
) -> dict[str, torch.Tensor]:
    """One shard's tensors, texts in input order."""
    per_text: dict[str, list[torch.Tensor]] = {}
    token_ids: list[torch.Tensor] = [torch.empty(0, dtype=torch.long)] * len(texts)
    done = 0
    for batch, found in iter_capture(model, tokenizer, texts, names, positions=positions, batch_size=batch_size, dtype=dtype, padding_side=padding_side):
        for name, tensors in found.items():
            slots = per_text.setdefault(name, [torch.empty(0)] * len(texts))
            for row, index in enumerate(batch.indices):
                slots[index] = tensors[row]
        for row, index in enumerate(batch.indices):
            token_ids[index] = batch.input_ids[row, batch.real_tokens(row)]
        done += len(batch.indices)
        step(done)
    out: dict[str, torch.Tensor] = {}
    ragged = not (positions == "last" or _is_index_list(positions))
    for name, tensors in per_text.items():
        if name in pattern_names:
            out[name] = torch.cat([t.reshape(-1) for t in tensors])
            out[f"{name}::shape"] = torch.tensor([list(t.shape) for t in tensors], dtype=torch.long)
        elif ragged:
            out[name] = torch.cat(tensors)
            out["__offsets__"] = _offsets([t.shape[0] for t in tensors])
        else:
            out[name] = torch.stack(tensors)
    out["__token_ids__"] = torch.cat(token_ids)
    out["__token_offsets__"] = _offsets([len(t) for t in token_ids])
    if ragged and positions != "all":
        out["__mask__"] = torch.cat([torch.as_tensor(m, dtype=torch.bool) for m in positions])
    return {k: v.contiguous() for k, v in out.items()}


def _join(parts: list[dict[str, Any]], names: list[str], positions: str | list[int]) -> Activations:
    token_ids = [t.tolist() for part in parts for t in part["token_ids"]]
    patterns = {n: [p for part in parts for p in part[n]] for n in names if parts and isinstance(parts[0][n], list)}
    dense = [n for n in names if n not in patterns]
    sites = {n: torch.cat([part[n] for part in parts]) for n in dense} if parts else {}
    offsets = None
    kept: Positions
    if positions in ("all", "mask"):
        offsets = [0]
        if dense:
            for part in parts:
                offsets += [offsets[-1] + c for c in part["offsets"][1:]]
        else:  # only patterns: each text's selected queries
            offsets += torch.tensor([p.shape[1] for p in next(iter(patterns.values()))], dtype=torch.long).cumsum(0).tolist()
        kept = "all" if positions == "all" else [m for part in parts for m in part["masks"]]
    else:
        kept = positions  # type: ignore[assignment]
    return Activations(sites, kept, offsets, token_ids, patterns)


def _masks(positions: Positions, texts: Sequence[str]) -> list[list[bool]] | None:
    if isinstance(positions, str) or _is_index_list(positions):
        return None
    masks = [[bool(keep) for keep in m] for m in positions if not isinstance(m, int)]
    if len(masks) != len(texts):
        raise OversightError(f"{len(masks)} masks for {len(texts)} texts: give one mask per text")
    return masks


def _inputs_hash(texts: Sequence[str], masks: list[list[bool]] | None) -> str:
    h = hashlib.sha256()
    for text in texts:
        data = text.encode()
        h.update(len(data).to_bytes(8, "little") + data)
    if masks is not None:
        for mask in masks:
            h.update(bytes([2, *map(int, mask)]))
    return h.hexdigest()


def _is_index_list(positions: object) -> bool:
    return isinstance(positions, Sequence) and not isinstance(positions, str) and all(isinstance(p, int) for p in positions)


def _offsets(sizes: list[int]) -> torch.Tensor:
    return torch.tensor([0, *sizes], dtype=torch.long).cumsum(0)


def _split(flat: torch.Tensor, offsets: list[int]) -> list[torch.Tensor]:
    return [flat[offsets[i] : offsets[i + 1]] for i in range(len(offsets) - 1)]
