"""Local transformers weights: a directory, a GGUF file, or a hub id when online."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from oversight.models.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    ModelError,
    ModelInfo,
    truncate_at_stop,
)
from oversight.models.loglikelihood import LoglikelihoodEngine
from oversight.paths import cache_dir

DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16}
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".gguf")


@dataclass(frozen=True)
class TokenLogprob:
    """One prompt token with its logprob given the tokens before it (None for the first)."""

    token: str
    offset: int
    logprob: float | None
    top: dict[str, float]


def parse_dtype(name: str) -> torch.dtype:
    if name not in DTYPES:
        # float16 is refused on purpose: Gemma's activations overflow it.
        raise ModelError(f"unknown dtype {name!r}; choose one of {', '.join(DTYPES)}")
    return DTYPES[name]


def weights_fingerprint(path: Path) -> str:
    """sha256 over the weight files of a local model (names and bytes).

    Hashing a gigabyte takes seconds, so the result is remembered in the user's cache
    keyed by each file's path, size and modification time.
    """
    files = [path] if path.is_file() else sorted(p for p in path.iterdir() if p.suffix in WEIGHT_SUFFIXES)
    if not files:
        raise ModelError(f"no weight files ({', '.join(WEIGHT_SUFFIXES)}) in {path}")
    stamp = hashlib.sha256(
        json.dumps([[str(f.resolve()), f.stat().st_size, f.stat().st_mtime_ns] for f in files]).encode()
    ).hexdigest()
    remembered = cache_dir() / "fingerprints" / stamp
    if remembered.exists():
        return remembered.read_text().strip()
    h = hashlib.sha256()
    for f in files:
        h.update(f.name.encode())
        with f.open("rb") as fh:
            while block := fh.read(1 << 22):
                h.update(block)
    fingerprint = "sha256:" + h.hexdigest()
    remembered.parent.mkdir(parents=True, exist_ok=True)
    remembered.write_text(fingerprint + "\n")
    return fingerprint


def tensors_fingerprint(model: torch.nn.Module) -> str:
    """sha256 over a model's parameters and buffers, for models built in memory."""
    h = hashlib.sha256()
    for name, t in sorted(model.state_dict().items()):
        h.update(name.encode())
        h.update(t.detach().cpu().contiguous().view(torch.uint8).numpy().tobytes())
    return "sha256:" + h.hexdigest()


class HFModel:
    """A transformers causal LM behind the :class:`~oversight.models.base.Model` interface."""

    backend = "hf"

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        spec: str,
        fingerprint: str | None = None,
        generation_batch_size: int = 8,
        max_length: int = 2048,
    ) -> None:
        self.model = model.eval()
        self.tokenizer = tokenizer
        self.engine = LoglikelihoodEngine(model, tokenizer, max_length=max_length)
        self.generation_batch_size = generation_batch_size
        dtype = next(model.parameters()).dtype
        self._info = ModelInfo(
            spec=spec,
            backend=self.backend,
            fingerprint=fingerprint or tensors_fingerprint(model),
            n_parameters=sum(p.numel() for p in model.parameters()),
            dtype=str(dtype).removeprefix("torch."),
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def has_chat_template(self) -> bool:
        return bool(getattr(self.tokenizer, "chat_template", None))

    def loglikelihood(
        self,
        requests: Sequence[LoglikelihoodRequest],
        progress: Callable[[int], None] | None = None,
    ) -> list[LoglikelihoodResult]:
        return self.engine.score(requests, progress=progress)

    def render_prompt(self, request: GenerationRequest) -> str:
        """The text the model continues: the prompt, or the chat through the chat template."""
        if not request.is_chat:
            return request.prompt
        messages = [{"role": m.role, "content": m.content} for m in request.messages]
        if self.has_chat_template:
            text = self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
            return str(text)
        # Base models have no template: a plain transcript they can continue.
        lines = [f"{m['role'].capitalize()}: {m['content']}" for m in messages]
        return "\n".join([*lines, "Assistant:"])

    @torch.inference_mode()
    def generate(
        self,
        requests: Sequence[GenerationRequest],
        progress: Callable[[int], None] | None = None,
    ) -> list[GenerationResult]:
        results: list[GenerationResult | None] = [None] * len(requests)
        # Greedy requests batch (same settings → one call); sampled ones run alone with
        # their own seed so a sample's text does not depend on its batch-mates.
        order = sorted(range(len(requests)), key=lambda i: len(requests[i].prompt) + len(requests[i].messages))
        greedy = [i for i in order if requests[i].temperature == 0]
        sampled = [i for i in order if requests[i].temperature > 0]
        batches: list[list[int]] = []
        by_settings: dict[tuple[int, tuple[str, ...]], list[int]] = {}
        for i in greedy:
            by_settings.setdefault((requests[i].max_tokens, requests[i].stop), []).append(i)
        for members in by_settings.values():
            bs = self.generation_batch_size
            batches += [members[k : k + bs] for k in range(0, len(members), bs)]
        batches += [[i] for i in sampled]
        for batch in batches:
            for i, r in zip(batch, self._generate_batch([requests[i] for i in batch]), strict=True):
                results[i] = r
            if progress is not None:
                progress(len(batch))
        return [r for r in results if r is not None]

    def _generate_batch(self, batch: list[GenerationRequest]) -> list[GenerationResult]:
        first = batch[0]
        prompts = [self.render_prompt(r) for r in batch]
        tok = self.tokenizer
        old_side = tok.padding_side
        tok.padding_side = "left"
        try:
            enc = tok(prompts, return_tensors="pt", padding=True)
        finally:
            tok.padding_side = old_side
        device = next(self.model.parameters()).device
        kwargs: dict[str, object] = {
            "max_new_tokens": first.max_tokens,
            "pad_token_id": tok.pad_token_id if tok.pad_token_id is not None else tok.eos_token_id,
        }
        if first.temperature > 0:
            torch.manual_seed(first.seed)
            kwargs.update(do_sample=True, temperature=first.temperature, top_p=first.top_p, top_k=0)
        else:
            kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
        if first.stop:
            kwargs.update(stop_strings=list(first.stop), tokenizer=tok)
        if first.max_tokens == 0:
            return [GenerationResult("", "length") for _ in batch]
        out = self.model.generate(
            input_ids=enc.input_ids.to(device), attention_mask=enc.attention_mask.to(device), **kwargs
        )
        new_tokens = out[:, enc.input_ids.shape[1] :]
        results = []
        for row in new_tokens:
            ids = row.tolist()
            eos_hit = tok.eos_token_id is not None and tok.eos_token_id in ids
            if eos_hit:
                ids = ids[: ids.index(tok.eos_token_id)]
            text = str(tok.decode(ids, skip_special_tokens=True))
            text, stopped = truncate_at_stop(text, first.stop)
            hit_limit = not (stopped or eos_hit) and len(ids) >= first.max_tokens
            results.append(GenerationResult(text, "length" if hit_limit else "stop"))
        return results

    @torch.inference_mode()
    def prompt_logprobs(self, text: str, top_k: int = 0) -> list[TokenLogprob]:
        """Every token of ``text`` with its logprob under the model (for ``echo`` in the server)."""
        enc = self.tokenizer(text, return_offsets_mapping=True)
        ids: list[int] = enc["input_ids"]
        offsets = [int(o[0]) for o in enc["offset_mapping"]]
        device = next(self.model.parameters()).device
        logits = self.model(input_ids=torch.tensor([ids], device=device)).logits[0].float()
        logp = torch.log_softmax(logits, dim=-1)
        out = []
        for k, tid in enumerate(ids):
            token = str(self.tokenizer.decode([tid]))
            if k == 0:
                out.append(TokenLogprob(token, offsets[k], None, {}))
                continue
            row = logp[k - 1]
            top: dict[str, float] = {}
            if top_k:
                vals, idx = row.topk(top_k)
                top = {str(self.tokenizer.decode([int(j)])): float(v) for v, j in zip(vals, idx, strict=True)}
            out.append(TokenLogprob(token, offsets[k], float(row[tid]), top))
        return out


def load_hf(target: str, *, dtype: str = "float32", spec: str | None = None) -> HFModel:
    """Load ``hf:<dir | file.gguf | hub id>``; GGUF files go through the safetensors cache."""
    from oversight.models.gguf_cache import convert_gguf  # local import: heavy and rarely needed

    torch_dtype = parse_dtype(dtype)
    path = Path(target).expanduser()
    spec = spec or f"hf:{target}"
    if path.suffix == ".gguf":
        if not path.is_file():
            raise ModelError(f"GGUF file not found: {path}")
        path = convert_gguf(path)
    if path.is_dir():
        if not (path / "config.json").exists():
            raise ModelError(f"{path} has no config.json; is it a transformers model directory?")
        return HFModel(*load_pretrained_dir(path, torch_dtype), spec=spec, fingerprint=weights_fingerprint(path))
    if path.exists():
        raise ModelError(f"{path} is neither a model directory nor a .gguf file")
    # Not on disk: a hub id, which needs the network.
    try:
        model = AutoModelForCausalLM.from_pretrained(target, dtype=torch_dtype)
        tokenizer = AutoTokenizer.from_pretrained(target)
    except OSError as e:
        raise ModelError(
            f"could not load {target!r}: it is not a local path, and the Hugging Face hub "
            f"did not provide it ({e.__class__.__name__}). Download the weights and pass "
            "hf:/path/to/dir, or use `default`."
        ) from None
    revision = getattr(model.config, "_commit_hash", None) or "unknown"
    return HFModel(model, tokenizer, spec=spec, fingerprint=f"hub:{target}@{revision}")


def load_pretrained_dir(path: Path, dtype: torch.dtype) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    from oversight.models.fast_tokenizer import load_tokenizer

    model = AutoModelForCausalLM.from_pretrained(path, dtype=dtype)
    return model, load_tokenizer(path)
