"""The engine against a plain full-forward float32 log_softmax, request by request.

Every code path of the engine (shared-prefix pass, one question per row, packed rows,
continuations that share tokens, padding, Gemma's sliding window, the output layer's
argmax rule, the plain-forward fallback) is forced on tiny Gemma 3, Llama and GPT-2
models and compared with what lm-evaluation-harness computes: one forward pass over
context + continuation and ``log_softmax`` over the whole vocabulary.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from oversight.models.base import LoglikelihoodRequest
from oversight.models.hf import HFModel, load_hf
from oversight.models.loglikelihood import encode_request
from oversight.models.token_tree import CostModel
from tiny_models import save_tiny_model

REQUESTS = [
    LoglikelihoodRequest("Question: Is the sky blue? Answer:", " Yes"),
    LoglikelihoodRequest("Question: Is the sky blue? Answer:", " No"),
    LoglikelihoodRequest("Question: Is the sky blue? Answer:", " Yes, the sky is blue."),
    LoglikelihoodRequest("The capital of France is", " Paris"),
    LoglikelihoodRequest("The capital of France is", " Rome and not Paris"),
    LoglikelihoodRequest("The capital of France is ", "Paris"),  # trailing space moves over
    LoglikelihoodRequest("If John has a pet, then John has a dog. John does not have a dog. Does John have a pet?", " No"),
    LoglikelihoodRequest("", "The capital of Italy is Rome."),  # empty context: BOS
    LoglikelihoodRequest("A", " B C D"),
]

HEADER = "Question: Is the sky blue? Answer: Yes. The capital of France is Paris. "
#: One template: a long shared prefix, choices sharing their first tokens (" (A)", " (B)").
TEMPLATED = [
    LoglikelihoodRequest(HEADER + "Is the dog a pet? Answer:", " (A) Yes"),
    LoglikelihoodRequest(HEADER + "Is the dog a pet? Answer:", " (B) No, John has a dog and a pet"),
    LoglikelihoodRequest(HEADER + "Is the dog a pet? Answer:", " (A)"),
    LoglikelihoodRequest(HEADER + "The capital of Italy is", " Rome"),
    LoglikelihoodRequest(HEADER + "The capital of Italy is", " Paris and not Rome at all"),
    LoglikelihoodRequest(HEADER + "A", " B C D 1 2 3"),
    LoglikelihoodRequest(HEADER + "A", " B C"),
]


def reference(model: HFModel, request: LoglikelihoodRequest) -> tuple[float, bool]:
    """What lm-eval computes: one full forward, float32 log_softmax over every position."""
    enc = model.engine.encode(request)
    ids = torch.tensor([list(enc.context) + list(enc.continuation)])
    with torch.no_grad():
        logp = torch.log_softmax(model.model(input_ids=ids[:, :-1]).logits[0].float(), dim=-1)
    rows = logp[len(enc.context) - 1 :]
    cont = torch.tensor(enc.continuation)
    return float(rows[torch.arange(len(cont)), cont].double().sum()), bool((rows.argmax(-1) == cont).all())


def assert_matches_reference(model: HFModel, requests: list[LoglikelihoodRequest]) -> None:
    got = model.loglikelihood(requests)
    for request, result in zip(requests, got, strict=True):
        ref_ll, ref_greedy = reference(model, request)
        assert result.logprob == pytest.approx(ref_ll, abs=1e-4), request
        assert result.is_greedy == ref_greedy, request
        assert result.n_tokens == len(model.engine.encode(request).continuation)
    # the numbers are not all alike (the test would be vacuous on a constant model)
    assert len({round(r.logprob, 3) for r in got}) > len(requests) // 2


def test_engine_matches_full_forward(tiny_model_dir: Path) -> None:
    model = load_hf(str(tiny_model_dir))
    assert model.engine.exact_split and model.engine.trees
    assert_matches_reference(model, REQUESTS)


def test_gpt_neox_parallel_blocks_and_partial_rotary(tmp_path: Path) -> None:
    model = load_hf(str(save_tiny_model("gpt_neox", tmp_path)))
    assert model.engine.trees
    assert_matches_reference(model, TEMPLATED + REQUESTS)


def test_bfloat16_takes_the_tree_path(tiny_gemma_dir: Path) -> None:
    """In bfloat16 the self-check tolerates rounding, so the fast path stays on."""
    model = load_hf(str(tiny_gemma_dir), dtype="bfloat16")
    assert model.engine.exact_split and model.engine.trees
    for request, result in zip(TEMPLATED, model.loglikelihood(TEMPLATED), strict=True):
        assert result.logprob == pytest.approx(reference(model, request)[0], abs=0.1, rel=0.02)


@pytest.mark.parametrize(
    ("rows", "prefix"), [((0,), True), ((24,), True), ((256,), True), ((24,), False)],
    ids=["row-per-question", "packed", "one-row", "packed-no-prefix-pass"],
)
def test_every_layout_matches_full_forward(tiny_model_dir: Path, rows: tuple[int, ...], prefix: bool) -> None:
    """Shared prefix in its own pass or in the rows, one question per row or several packed
    into a row (sharing nodes), rows of different lengths padded in one call, one call per row."""
    model = load_hf(str(tiny_model_dir))
    model.engine.row_options, model.engine.prefix_options = rows, (prefix,)
    assert_matches_reference(model, TEMPLATED + REQUESTS[:6])
    model.engine.cost = CostModel(key=0.0, call=1e6, max_tokens=8)  # one row per call
    assert_matches_reference(model, TEMPLATED)


def test_layouts_agree_with_each_other(tiny_gemma_dir: Path) -> None:
    model = load_hf(str(tiny_gemma_dir))
    results = []
    for rows in [(0,), (16,), (512,)]:
        model.engine.row_options = rows
        results.append([r.logprob for r in model.loglikelihood(TEMPLATED + REQUESTS)])
    alone = [model.loglikelihood([r])[0].logprob for r in TEMPLATED + REQUESTS]
    for other in [*results[1:], alone]:
        assert other == pytest.approx(results[0], abs=1e-5)


def test_sliding_window_with_long_contexts_and_a_long_shared_prefix(tiny_gemma_dir: Path) -> None:
    """The tiny Gemma's sliding window is 64 tokens: contexts, rows and the shared prefix
    all pass it, so the sliding layers' masks must drop keys the plain pass drops."""
    model = load_hf(str(tiny_gemma_dir))
    assert model.engine.attention is not None and model.engine.attention.window == 64
    long_ctx = "The capital of France is Paris. " * 12
    requests = [
        LoglikelihoodRequest(long_ctx, " Rome and Paris"),
        LoglikelihoodRequest(long_ctx + "A", " B C"),
        LoglikelihoodRequest(long_ctx + "Question: Is the sky blue? Answer:", " (A) Yes"),
        LoglikelihoodRequest(long_ctx + "Question: Is the sky blue? Answer:", " (B) No " * 10),
        LoglikelihoodRequest("A", " B"),  # no shared prefix with the rest
    ]
    assert len(model.engine.encode(requests[0]).context) > 64
    for rows, prefix in [((0,), True), ((256,), True), ((256,), False)]:
        model.engine.row_options, model.engine.prefix_options = rows, (prefix,)
        assert_matches_reference(model, requests)
        assert_matches_reference(model, requests[:4])  # a shared prefix longer than the window


def test_is_greedy_on_the_models_own_continuations(tiny_model_dir: Path) -> None:
    """Continuations the model generates greedily: some must come out greedy (so the
    test is not vacuous), and every flag must equal the reference argmax check."""
    model = load_hf(str(tiny_model_dir))
    requests = []
    for context in ["The capital of France is", "Question: Is the sky blue? Answer:", "A B C", "User: please"]:
        ids = model.tokenizer(context, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.model.generate(ids, max_new_tokens=3, do_sample=False, pad_token_id=0)
        for n in (1, 3):
            requests.append(LoglikelihoodRequest(context, model.tokenizer.decode(out[0, ids.shape[1] : ids.shape[1] + n])))
    got = model.loglikelihood(requests)
    for request, result in zip(requests, got, strict=True):
        assert result.is_greedy == reference(model, request)[1], request
    assert any(r.is_greedy for r in got)


def test_argmax_ties_go_to_the_first_token(tiny_gemma_dir: Path) -> None:
    """Two vocabulary rows made identical give every position two equal top logits:
    like ``argmax``, only the lower token id counts as greedy."""
    model = load_hf(str(tiny_gemma_dir))
    engine = model.engine
    hidden = torch.randn(3, engine.hidden_size)
    with torch.no_grad():
        weight = engine.head.weight
        weight[10] = weight[20] = hidden[0] * 50  # tokens 10 and 20 top row 0
    with torch.no_grad():
        ref = torch.log_softmax(engine._logits(hidden).float(), dim=-1)
    pairs = [(0, 10), (0, 20), (1, 7), (2, int(ref[2].argmax()))]
    logprob, greedy = engine._target_logprobs(hidden, pairs)
    argmax = ref.argmax(dim=-1)
    assert argmax[0] == 10
    assert greedy.tolist() == [bool(argmax[r] == t) for r, t in pairs] == [True, False, bool(argmax[1] == 7), True]
    # float32 rounding: ~1e-5 absolute at a logprob of -117
    assert logprob.tolist() == pytest.approx([float(ref[r, t]) for r, t in pairs], rel=1e-6, abs=1e-6)


def test_plain_forward_fallback_is_exact(tiny_gemma_dir: Path) -> None:
    model = load_hf(str(tiny_gemma_dir))
    model.engine.trees = False  # as for an architecture the tree self-check rejects
    assert_matches_reference(model, REQUESTS[:5])


def test_progress_reports_every_request(tiny_gemma_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import oversight.models.loglikelihood as engine_module

    monkeypatch.setattr(engine_module, "SLICE_TOKENS", 16)  # several slices
    model = load_hf(str(tiny_gemma_dir))
    seen: list[int] = []
    model.loglikelihood(TEMPLATED + REQUESTS, progress=seen.append)
    assert len(seen) > 1 and sum(seen) == len(TEMPLATED + REQUESTS)


def test_tokenisation_follows_lm_eval(tiny_gemma_dir: Path) -> None:
    model = load_hf(str(tiny_gemma_dir))
    tok = model.tokenizer
    enc = encode_request(tok, LoglikelihoodRequest("The capital of France is ", "Paris"), prefix_token_id=2, max_length=2048)
    assert enc.context == tuple(tok.encode("The capital of France is"))
    assert enc.context[0] == tok.bos_token_id
    whole = tok.encode("The capital of France is Paris")
    assert enc.continuation == tuple(whole[len(enc.context) :])
    empty = encode_request(tok, LoglikelihoodRequest("", "Paris"), prefix_token_id=2, max_length=2048)
    assert empty.context == (2,)
    truncated = encode_request(tok, LoglikelihoodRequest("A B C D " * 50, "Paris"), prefix_token_id=2, max_length=16)
    assert len(truncated.context) + len(truncated.continuation) == 17
