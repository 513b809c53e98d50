"""Exact, fast loglikelihoods for a transformers causal LM.

lm-evaluation-harness runs every (context, choice) pair as its own sequence and projects
every position onto the vocabulary. The same numbers cost far less:

1. **Every distinct token prefix runs once.** Requests become token trees
   (:mod:`oversight.models.token_tree`): the choices of a question share their context,
   choices that start alike share those tokens, and the prefix common to a whole batch
   (an instruction, few-shot examples) runs once and serves every row through its keys
   and values. A tree runs in one pass: a 4D attention mask lets each token see exactly
   its ancestors (and, on sliding-window layers, only those within the window), and its
   position id is its position in its own sequence. Rows of similar length run together,
   so there is almost no padding.
2. **The output layer runs only where a token is scored**: on the one position per node
   that predicts a continuation token, once however many requests share that node.

A causal model's output at a position depends only on the tokens before it, so none of
this changes a number beyond float rounding; the engine checks once per model that a
tree pass and the split into body and output layer reproduce a plain forward pass, and
otherwise scores each request with a plain forward pass (slower, still exact).

**Batch invariance.** A request's numbers are bit for bit the same whatever else it is
scored with (and whether the shared prefix ran on its own), so a resumed or ``--limit``ed
run, or a monitor scoring one transcript, reproduces a full run's numbers exactly. Float
sums depend on their order, so the engine keeps every order fixed: a question's tokens
sit at the same key positions in every pass (its own row, context first); every matmul
has at least 16 rows (MKL's float32 kernels round differently below that); rows are
padded so that the attention kernel's query blocks are large enough for the same reason
(:func:`pass_width`); and masked zero keys fill the last vector of keys
(:class:`_AlignedCache`). This holds in float32, which is what the engine promises.

Tokenisation follows lm-evaluation-harness 0.4 exactly (trailing context whitespace
moves to the continuation; the continuation is the tail of ``encode(context +
continuation)`` after ``encode(context)``; an empty context is the BOS token), so the
numbers match it to float32 precision.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np
import torch
from transformers import DynamicCache, PreTrainedModel, PreTrainedTokenizerBase

from oversight.models.base import LoglikelihoodRequest, LoglikelihoodResult
from oversight.models.token_tree import CostModel, Row, layout, plan

#: The cost model, in token positions of the body (see token_tree.CostModel). Attention
#: visits every (query, key) pair of a row, masked or not: ~37k multiply-adds per pair for
#: Gemma 3 270M at the fused kernel's speed, against ~100M per position for the layers.
#: A call's cost (64 positions) also stands for the slower matmuls of small calls; it was
#: tuned on the benchmark tasks (3-5% faster than 8 or 128).
COST = CostModel(key=1 / 1100, call=64.0, max_tokens=2048)
#: Tree nodes planned and scored together; progress is reported after each such slice.
SLICE_TOKENS = 8192
#: Rows a matmul holds at least: MKL's float32 kernels round differently below 16 rows.
MIN_ROWS = 16
#: Query and key block sizes of torch's CPU flash-attention kernel, by query length.
ATTENTION_QUERY_BLOCKS = ((768, 256), (192, 64), (0, 32))
#: Keys per pass are padded to a multiple of this: the kernels' vectorised sums over keys
#: treat a partial last vector apart, which reorders the sum (8 is not enough on AVX-512).
KEY_ALIGN = 16
#: Rows projected onto the vocabulary at once (each row is vocab_size floats).
HEAD_ROWS = 256


@dataclass(frozen=True)
class EncodedRequest:
    context: tuple[int, ...]
    continuation: tuple[int, ...]


def encode_request(
    tokenizer: PreTrainedTokenizerBase,
    request: LoglikelihoodRequest,
    *,
    prefix_token_id: int,
    max_length: int,
) -> EncodedRequest:
    """Split a request into context and continuation tokens as lm-eval 0.4 does."""
    context, continuation = request.context, request.continuation
    if not continuation:
        raise ValueError("a loglikelihood request needs a non-empty continuation")
    if context == "":
        cont = tokenizer.encode(continuation, add_special_tokens=False)
        ctx = [prefix_token_id]
        if cont and cont[0] == prefix_token_id:  # the text itself starts with BOS
            ctx, cont = cont[:1], cont[1:]
    else:
        n_spaces = len(context) - len(context.rstrip())
        if n_spaces:
            continuation = context[-n_spaces:] + continuation
            context = context[:-n_spaces]
        whole = tokenizer.encode(context + continuation)
        ctx = tokenizer.encode(context)
        cont = whole[len(ctx) :]
    if not cont:
        raise ValueError(f"continuation {request.continuation!r} encodes to no tokens")
    # Keep the last max_length + 1 tokens, as lm-eval does; the final one is only a target.
    tokens = (ctx + cont)[-(max_length + 1) :]
    n_ctx = max(len(tokens) - len(cont), 1)
    return EncodedRequest(tuple(tokens[:n_ctx]), tuple(tokens[n_ctx:]))


def pass_width(width: int, n_rows: int, min_queries: int) -> int:
    """The padded length of a pass of ``n_rows`` rows, the longest ``width`` tokens long:
    every query block of the attention kernel holds at least ``min_queries`` queries (see
    :func:`query_minimum`), and the linear layers see at least MIN_ROWS rows. Padding sits
    after the real tokens, where the masks hide it."""
    width = max(width, min_queries, -(-MIN_ROWS // n_rows))
    while True:
        block = next(size for start, size in ATTENTION_QUERY_BLOCKS if width >= start)
        if not 0 < width % block < min_queries:
            return width
        width += min_queries - width % block


@functools.cache
def query_minimum(head_dim: int) -> int:
    """The fewest rows a float32 matmul of ``head_dim``-long rows may have for each row's
    products to round as in a larger matmul: MKL picks other kernels for small ones (11
    rows for head_dim 256, 3 for 64 on AVX-512). Measured once per size on random data."""
    generator = torch.Generator().manual_seed(0)
    queries = torch.randn(64, head_dim, generator=generator)
    keys = torch.randn(48, head_dim, generator=generator)
    reference = queries @ keys.T
    rows = 64
    while rows > 1 and torch.equal(queries[: rows - 1] @ keys.T, reference[: rows - 1]):
        rows -= 1
    return rows


class _AlignedCache(DynamicCache):
    """The keys and values of a tree pass: the shared prefix's, this pass's own, then
    zeros up to a multiple of KEY_ALIGN. The zeros are masked, so they weigh nothing; they
    make the attention kernel sum every question's keys in whole vectors, whatever the
    pass's length, at the cost of a few key columns rather than padded tokens."""

    def __init__(self, prefix: list[tuple[torch.Tensor, torch.Tensor]] | None, n_rows: int) -> None:
        data = [(k.expand(n_rows, -1, -1, -1), v.expand(n_rows, -1, -1, -1)) for k, v in prefix or []]
        super().__init__(ddp_cache_data=data or None)

    def update(
        self, key_states: torch.Tensor, value_states: torch.Tensor, layer_idx: int, *args: object, **kwargs: object
    ) -> tuple[torch.Tensor, torch.Tensor]:
        keys, values = super().update(key_states, value_states, layer_idx, *args, **kwargs)
        pad = -keys.shape[-2] % KEY_ALIGN
        if pad:
            keys = torch.cat([keys, keys.new_zeros((*keys.shape[:-2], pad, keys.shape[-1]))], dim=-2)
            values = torch.cat([values, values.new_zeros((*values.shape[:-2], pad, values.shape[-1]))], dim=-2)
        return keys, values


@dataclass(frozen=True)
class _Attention:
    """How the model's layers attend: which mask kinds it takes, and the sliding window."""

    kinds: tuple[str, ...]  # "full_attention" and/or "sliding_attention"
    window: int | None
    #: Pass ``{kind: mask}`` (models with both kinds) rather than a single mask.
    as_mapping: bool


def _attention_of(model: PreTrainedModel) -> _Attention | None:
    """The model's attention pattern, or None when trees cannot express it."""
    config = model.config
    window = getattr(config, "sliding_window", None)
    if getattr(config, "use_sliding_window", True) is False:
        window = None
    layer_types = getattr(config, "layer_types", None)
    if layer_types:
        kinds = tuple(sorted(set(layer_types)))
        if not set(kinds) <= {"full_attention", "sliding_attention"}:
            return None
        if "sliding_attention" in kinds and window is None:
            return None
        return _Attention(kinds, window, as_mapping=len(kinds) > 1)
    return _Attention(("sliding_attention",) if window else ("full_attention",), window, as_mapping=False)


class LoglikelihoodEngine:
    """Scores loglikelihood requests on one model; see the module docstring for how."""

    def __init__(
        self,
        model: PreTrainedModel,
        tokenizer: PreTrainedTokenizerBase,
        *,
        max_length: int = 2048,
        cost: CostModel = COST,
    ) -> None:
        self.model = model
        self.tokenizer = tokenizer
        self.max_length = max_length
        #: Whether a slice's shared prefix may / may not run as its own pass (both: by cost).
        self.prefix_options: tuple[bool, ...] = (True, False)
        self.cost = cost
        bos = tokenizer.bos_token_id
        prefix = bos if bos is not None else tokenizer.eos_token_id
        if prefix is None:
            raise ValueError("tokenizer has neither a BOS nor an EOS token to condition on")
        self.prefix_token_id: int = int(prefix)
        self.body = model.base_model
        head = model.get_output_embeddings()
        if head is None:
            raise ValueError(f"{type(model).__name__} has no output embeddings")
        self.head: torch.nn.Module = head
        self.device: torch.device = next(model.parameters()).device
        self.dtype: torch.dtype = next(model.parameters()).dtype
        self.softcap: float | None = getattr(model.config, "final_logit_softcapping", None)
        weight = getattr(head, "weight", None)
        self.hidden_size = int(weight.shape[-1]) if isinstance(weight, torch.Tensor) else int(model.config.hidden_size)
        self.attention = _attention_of(model)
        #: transformers 5.x renamed the forward's ``past_key_values`` to ``cache`` (the old
        #: name warns, then goes); older releases know only the old one.
        self._cache_arg = "cache" if "cache" in inspect.signature(self.body.forward).parameters else "past_key_values"
        config = model.config
        head_dim = getattr(config, "head_dim", None) or config.hidden_size // config.num_attention_heads
        self.min_queries = query_minimum(int(head_dim)) if self.dtype == torch.float32 else MIN_ROWS
        self._last_prefix: tuple[tuple[int, ...], list[tuple[torch.Tensor, torch.Tensor]]] | None = None
        #: Logits of HEAD_ROWS rows, kept between calls: a fresh 268 MB block (Gemma) would
        #: cost ~65k page faults each time.
        self._head_buffer: torch.Tensor | None = None
        self.exact_split, self.trees = self._self_check()

    # ------------------------------------------------------------------ self-check
    @torch.inference_mode()
    def _self_check(self) -> tuple[bool, bool]:
        """Check once, on a few made-up token sequences, that the engine's shortcuts give
        what a plain forward pass gives: ``(exact_split, trees)``.

        * ``exact_split``: the output layer applied to the body's hidden state is the
          model's own logits (some architectures scale logits in their forward);
        * ``trees``: a tree pass (shared-prefix cache, rows with several trees, shared
          nodes, padding, 4D masks, position ids) gives each token the hidden state a
          plain pass over its own sequence gives it.

        A failed check makes the engine score each request with a plain forward pass
        (slower, still exact).
        """
        vocab = int(getattr(self.model.config, "vocab_size", 0) or 0)
        if vocab < 8:
            return False, False
        a, b, c, d, e = (self.prefix_token_id, *(t % vocab for t in (3, 5, 6, 7)))
        pairs = [((a, b, c), (d, e, b, c)), ((a, b, c), (e, d)), ((a, b, d, e), (c,)), ((a, b, d), (b, c, c))]
        sequences = [list(ctx + cont[:-1]) for ctx, cont in pairs]
        # Right padding changes no earlier position of a causal model, so one plain pass.
        width = max(len(s) for s in sequences)
        ids = torch.tensor([s + [a] * (width - len(s)) for s in sequences], device=self.device)
        plain = self.body(input_ids=ids).last_hidden_state
        last = len(sequences[0]) - 1
        full = self.model(input_ids=ids[:1, : last + 1]).logits[0, last]
        if not self._close(self._logits(plain[0, last]), full):
            return False, False
        if self.attention is None:
            return True, False
        lay = layout(pairs)  # a prefix, rows of different lengths, shared nodes, padding
        try:
            hidden, _ = self._run_rows(lay.rows, self._prefix_cache(lay.prefix))
        except (TypeError, ValueError, RuntimeError):  # no position_ids, 4D masks or caches
            return True, False
        finally:
            self._last_prefix = None
        for k, ((ctx, _), targets) in enumerate(zip(pairs, lay.targets, strict=True)):
            expected = plain[k, len(ctx) - 1 : len(sequences[k])]
            tree = torch.stack([hidden[t.row, t.node] for t in targets])
            if not self._close(tree, expected):
                return True, False
        return True, True

    def _close(self, got: torch.Tensor, expected: torch.Tensor) -> bool:
        """Equal up to rounding: 1e-4 in float32; in 16-bit types, 5% of the largest value
        (the checks look for a wrong mask or position, which changes values wholesale)."""
        got, expected = got.float(), expected.float()
        if self.dtype == torch.float32:
            return bool(torch.allclose(got, expected, atol=1e-4, rtol=1e-4))
        return bool((got - expected).abs().max() <= 0.05 * expected.abs().max())

    # ------------------------------------------------------------------ scoring
    def encode(self, request: LoglikelihoodRequest) -> EncodedRequest:
        return encode_request(
            self.tokenizer, request, prefix_token_id=self.prefix_token_id, max_length=self.max_length
        )

    @torch.inference_mode()
    def score(
        self,
        requests: Sequence[LoglikelihoodRequest],
        progress: Callable[[int], None] | None = None,
    ) -> list[LoglikelihoodResult]:
        encoded = [self.encode(r) for r in requests]
        results: list[LoglikelihoodResult | None] = [None] * len(requests)
        for indices in self._slices(encoded):
            part = [encoded[i] for i in indices]
            scored = self._score_trees(part) if self.trees else self._score_full(part)
            for i, result in zip(indices, scored, strict=True):
                results[i] = result
            if progress is not None:
                progress(len(indices))
        return [r for r in results if r is not None]

    def _slices(self, encoded: list[EncodedRequest]) -> list[list[int]]:
        """Request indices in slices of about SLICE_TOKENS tokens, questions kept whole.

        Sorting by context tokens puts questions from one template side by side, so each
        slice's shared prefix is as long as it can be.
        """
        order = sorted(range(len(encoded)), key=lambda i: (encoded[i].context, i))
        slices: list[list[int]] = []
        current: list[int] = []
        tokens = 0
        for k, i in enumerate(order):
            e = encoded[i]
            new_question = k == 0 or e.context != encoded[order[k - 1]].context
            if new_question and current and tokens >= SLICE_TOKENS:
                slices.append(current)
                current, tokens = [], 0
            current.append(i)
            tokens += (len(e.context) if new_question else 0) + len(e.continuation)
        if current:
            slices.append(current)
        return slices

    def _score_trees(self, part: list[EncodedRequest]) -> list[LoglikelihoodResult]:
        chosen = plan(
            [(e.context, e.continuation) for e in part],
            cost=self.cost, prefix_options=self.prefix_options,
            pad=lambda width: pass_width(width, MIN_ROWS, self.min_queries),
        )
        lay = chosen.layout
        # One hidden state per node that predicts a target, and one output per (node, token).
        slot: dict[tuple[int, int], int] = {}
        pair: dict[tuple[int, int], int] = {}
        for targets in lay.targets:
            for t in targets:
                k = slot.setdefault((t.row, t.node), len(slot))
                pair.setdefault((k, t.token), len(pair))
        by_row: dict[int, list[int]] = {}
        for row, node in slot:
            by_row.setdefault(row, []).append(node)
        needed = torch.empty((len(slot), self.hidden_size), dtype=self.dtype, device=self.device)
        prefix = self._prefix_cache(lay.prefix) if lay.prefix else None
        for call in chosen.calls:
            hidden, _ = self._run_rows([lay.rows[r] for r in call], prefix)
            where = [(k, node, slot[(r, node)]) for k, r in enumerate(call) for node in by_row.get(r, [])]
            if where:
                k_, node_, slot_ = (torch.tensor(x, device=self.device) for x in zip(*where, strict=True))
                needed[slot_] = hidden[k_, node_]
        logprob_t, greedy_t = self._target_logprobs(needed, list(pair))
        logprob, greedy = logprob_t.tolist(), greedy_t.tolist()
        results = []
        for targets in lay.targets:
            ks = [pair[(slot[(t.row, t.node)], t.token)] for t in targets]
            total = sum(logprob[k] for k in ks)  # float32 log-probs summed in double
            results.append(LoglikelihoodResult(total, all(greedy[k] for k in ks), len(ks)))
        return results

    # ------------------------------------------------------------------ the body
    def _prefix_cache(self, prefix: tuple[int, ...]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Keys and values of every layer for the shared prefix (batch size 1).

        The last prefix is kept: an eval sends its questions in chunks, and the chunks of
        one template share the same prefix.
        """
        if self._last_prefix is not None and self._last_prefix[0] == prefix:
            return self._last_prefix[1]
        row = Row()
        row.insert(prefix)
        _, cache = self._run_rows([row], None)  # its layers keep every position: no config
        n = len(prefix)
        kv = [(getattr(layer, "keys", None), getattr(layer, "values", None)) for layer in cache.layers]
        out = [(k[:, :, :n], v[:, :, :n]) for k, v in kv if isinstance(k, torch.Tensor) and isinstance(v, torch.Tensor)]
        self._last_prefix = (prefix, out)
        return out

    def _run_rows(
        self, rows: list[Row], prefix: list[tuple[torch.Tensor, torch.Tensor]] | None
    ) -> tuple[torch.Tensor, DynamicCache]:
        """Hidden states ``[len(rows), width, hidden]`` of token trees after the prefix's
        cached keys and values, and the pass's cache (the prefix's and its own)."""
        assert self.attention is not None
        n = len(rows)
        n_prefix = 0 if prefix is None else int(prefix[0][0].shape[-2])
        width = pass_width(max(len(r) for r in rows), n, self.min_queries)
        ids = np.full((n, width), self.prefix_token_id, dtype=np.int64)
        depth = np.zeros((n, width), dtype=np.int64)
        real = np.zeros((n, width), dtype=bool)
        # ancestors[r, i, j]: node j is node i or one of its ancestors in row r
        ancestors = np.zeros((n, width, width), dtype=bool)
        for r, row in enumerate(rows):
            k = len(row)
            ids[r, :k] = row.tokens
            depth[r, :k] = row.depths
            real[r, :k] = True
            a = ancestors[r]
            for i, parent in enumerate(row.parents):
                if parent >= 0:
                    a[i] = a[parent]
                a[i, i] = True
            a[np.arange(k, width), np.arange(k, width)] = True  # padding sees itself only: no NaN
        positions = depth + n_prefix
        masks = {kind: self._mask(kind, ancestors, real, positions, n_prefix) for kind in self.attention.kinds}
        mask_arg: torch.Tensor | dict[str, torch.Tensor] = (
            masks if self.attention.as_mapping else masks[self.attention.kinds[0]]
        )
        cache = _AlignedCache(prefix, n)
        out = self.body(
            input_ids=torch.from_numpy(ids).to(self.device),
            attention_mask=mask_arg,
            position_ids=torch.from_numpy(positions).to(self.device),
            use_cache=True,
            **{self._cache_arg: cache},
        )
        hidden: torch.Tensor = out.last_hidden_state
        return hidden, cache

    def _mask(
        self, kind: str, ancestors: np.ndarray, real: np.ndarray, positions: np.ndarray, n_prefix: int
    ) -> torch.Tensor:
        """Additive 4D mask ``[rows, 1, width, keys]`` (0 where a token may look), ``keys`` being
        ``n_prefix + width`` rounded up to KEY_ALIGN as :class:`_AlignedCache` pads them."""
        assert self.attention is not None
        seen_prefix = np.broadcast_to(real[:, :, None], (*real.shape, n_prefix))
        allowed = np.concatenate([seen_prefix, ancestors], axis=-1)
        if kind == "sliding_attention" and self.attention.window is not None:
            key_pos = np.concatenate(
                [np.broadcast_to(np.arange(n_prefix), (real.shape[0], n_prefix)), positions], axis=-1
            )
            # as transformers' sliding_window_overlay: a key at most window - 1 tokens back
            allowed = allowed & (positions[:, :, None] - key_pos[:, None, :] < self.attention.window)
        n_keys = allowed.shape[-1]
        mask = torch.full((*allowed.shape[:-1], n_keys + -n_keys % KEY_ALIGN), torch.finfo(self.dtype).min, dtype=self.dtype)
        mask[..., :n_keys].masked_fill_(torch.from_numpy(allowed), 0.0)  # the rest: _AlignedCache's zeros
        return mask.unsqueeze(1).to(self.device)

    # ------------------------------------------------------------------ the output layer
    def _logits(self, hidden: torch.Tensor) -> torch.Tensor:
        logits: torch.Tensor = self.head(hidden)
        if self.softcap is not None:
            logits = torch.tanh(logits / self.softcap) * self.softcap
        return logits

    @torch.inference_mode()
    def _target_logprobs(
        self, hidden: torch.Tensor, pairs: list[tuple[int, int]]
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """For each (hidden row, token): the token's log-softmax, and whether it is the argmax.

        The log-softmax is torch's own float32 kernel over the whole vocabulary, the one
        lm-eval calls: summing 262k exponentials in float32 leaves a rounding error of up
        to ~1e-4 nats, and only the same kernel reproduces it. ``is_greedy`` compares the
        target's logit with the row maximum (argmax's first-index rule decides ties), which
        is much cheaper than an argmax over the vocabulary.
        """
        order = sorted(range(len(pairs)), key=lambda k: pairs[k][0])
        back = torch.tensor(order, device=hidden.device)
        rows = torch.tensor([pairs[k][0] for k in order], device=hidden.device)
        tokens = torch.tensor([pairs[k][1] for k in order], device=hidden.device)
        logprob = torch.empty(len(pairs), dtype=torch.float32, device=hidden.device)
        greedy = torch.empty(len(pairs), dtype=torch.bool, device=hidden.device)
        weight, bias = getattr(self.head, "weight", None), getattr(self.head, "bias", None)
        # A plain float32 Linear head writes its logits into one reused buffer.
        plain = type(self.head) is torch.nn.Linear and self.dtype == torch.float32
        n = hidden.shape[0]
        buffer = None
        if plain and isinstance(weight, torch.Tensor):
            shape = (HEAD_ROWS, weight.shape[0])
            if self._head_buffer is None or self._head_buffer.shape != shape:
                self._head_buffer = torch.empty(shape, dtype=torch.float32, device=hidden.device)
            buffer = self._head_buffer
        bounds = torch.searchsorted(rows, torch.arange(0, n + HEAD_ROWS, HEAD_ROWS, device=hidden.device)).tolist()
        if n < MIN_ROWS:  # see MIN_ROWS; the extra rows are never read
            hidden = torch.cat([hidden, hidden.new_zeros((MIN_ROWS - n, hidden.shape[1]))])
        for b, start in enumerate(range(0, n, HEAD_ROWS)):
            block = hidden[start : start + HEAD_ROWS]
            if block.shape[0] < MIN_ROWS:  # a short last block borrows rows before it
                block, start = hidden[-MIN_ROWS:], hidden.shape[0] - MIN_ROWS
            if buffer is not None and isinstance(weight, torch.Tensor):
                logits = torch.mm(block, weight.t(), out=buffer[: block.shape[0]])
                if isinstance(bias, torch.Tensor):
                    logits += bias
                if self.softcap is not None:
                    logits = torch.tanh(logits / self.softcap) * self.softcap
            else:
                logits = self._logits(block).float()
            lo, hi = bounds[b], bounds[b + 1]
            r, t = rows[lo:hi] - start, tokens[lo:hi]
            top = logits.amax(dim=1)
            hit = logits[r, t] == top[r]
            # argmax takes the first maximum: a target tied with an earlier token is not it
            for k, row, token in zip(*(x.tolist() for x in (hit.nonzero().squeeze(1), r[hit], t[hit])), strict=True):
                if token and bool(logits[row, :token].amax() == top[row]):
                    hit[k] = False
            torch.log_softmax(logits, dim=-1, out=logits)
            logprob[back[lo:hi]] = logits[r, t]
            greedy[back[lo:hi]] = hit
        return logprob, greedy

    # ------------------------------------------------------------------ fallback
    def _score_full(self, part: list[EncodedRequest]) -> list[LoglikelihoodResult]:
        """One plain forward per request, for models the tree pass does not fit."""
        results = []
        for e in part:
            ids = torch.tensor([list(e.context) + list(e.continuation[:-1])], device=self.device)
            logp = torch.log_softmax(self.model(input_ids=ids).logits[0].float(), dim=-1)
            rows = logp[len(e.context) - 1 :]
            toks = torch.tensor(e.continuation, device=self.device)
            total = float(rows[torch.arange(len(toks)), toks].double().sum())
            greedy = bool((rows.argmax(-1) == toks).all())
            results.append(LoglikelihoodResult(total, greedy, len(toks)))
        return results


