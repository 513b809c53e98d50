"""Interventions at named sites have their expected effects on tiny models of four families,
in single forward passes, batched with padding, and during ``model.generate``."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import PreTrainedModel

from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import (
    add,
    capture,
    forward_with,
    intervene,
    logits_at,
    mean_ablate,
    replace,
    scale,
    tokenize,
    zero_ablate,
)
from tiny_models import tiny_model, tiny_tokenizer

ARCHS = ["gemma3", "llama", "gpt2", "gpt_neox"]
TEXTS = ["The capital of France is Paris.", "Yes", "If John has a pet, then John has a dog.", "A B C D"]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module", params=ARCHS)
def lm(request: pytest.FixtureRequest, tokenizer: Any) -> tuple[PreTrainedModel, Any]:
    return tiny_model(request.param, tokenizer), tokenizer


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    assert a.shape == b.shape, (a.shape, b.shape)
    return bool((a - b).abs().max() <= rel * max(1.0, float(b.abs().max())))


def resid_names(model: PreTrainedModel) -> list[str]:
    return [f"resid.{i}" for i in range(layout(model).n_layers)]


def test_zero_ablating_every_attention_and_mlp_leaves_the_embeddings(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    n = layout(model).n_layers
    ablate = [zero_ablate(f"{kind}.{i}") for i in range(n) for kind in ("attn", "mlp")]
    acts = capture(model, tok, TEXTS, ["embed", *resid_names(model)], positions="all", interventions=ablate)
    for name in resid_names(model):
        assert torch.equal(acts[name], acts["embed"]), name
    clean = capture(model, tok, TEXTS, "resid.0", positions="all")
    assert not torch.equal(clean["resid.0"], acts["embed"])


def test_adding_at_a_layer_changes_only_that_layer_and_later_ones(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    d = layout(model).d_model
    vector = torch.linspace(-3, 3, d)
    clean = capture(model, tok, TEXTS, resid_names(model), positions="all")
    steered = capture(model, tok, TEXTS, resid_names(model), positions="all", interventions=[add("resid.1", vector, scale=2.0)])
    assert torch.equal(steered["resid.0"], clean["resid.0"])
    assert close(steered["resid.1"], clean["resid.1"] + 2.0 * vector)
    for name in resid_names(model)[2:]:
        assert not close(steered[name], clean[name], rel=1e-3), name


def test_adding_at_the_last_token_only_touches_it_whatever_the_padding(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    vector = torch.ones(layout(model).d_model)
    clean = capture(model, tok, TEXTS, "resid.0", positions="all")
    for side in ("left", "right"):
        acts = capture(model, tok, TEXTS, "resid.0", positions="all", padding_side=side, interventions=[add("resid.0", vector, "last")])
        for i in range(len(TEXTS)):
            expected = clean.of("resid.0", i).clone()
            expected[-1] += vector
            assert close(acts.of("resid.0", i), expected), (side, i)


def test_scale_and_mean_ablation(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    clean = capture(model, tok, TEXTS, ["mlp.0", "resid.1"], positions="all")
    doubled = capture(model, tok, TEXTS, "resid.1", positions="all", interventions=[scale("resid.1", 2.0)])
    assert close(doubled["resid.1"], 2.0 * clean["resid.1"])
    mean = clean["mlp.0"].mean(0)
    acts = capture(model, tok, TEXTS, "mlp.0", positions="all", padding_side="left", interventions=[mean_ablate("mlp.0", mean, [0, -1])])
    for i in range(len(TEXTS)):
        got, before = acts.of("mlp.0", i), clean.of("mlp.0", i)
        assert close(got[0], mean) and close(got[-1], mean)
        assert close(got[1:-1], before[1:-1])  # other tokens keep their activation (layer 0's MLP sees only them)


def test_replacing_with_the_clean_activation_reproduces_the_clean_run(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    clean_texts = ["1 + 2 = 3", "2 + 2 = 4"]
    corrupt_texts = ["4 + 5 = 9", "7 + 1 = 8"]
    clean_batch, corrupt_batch = tokenize(tok, clean_texts), tokenize(tok, corrupt_texts)
    assert clean_batch.lengths == corrupt_batch.lengths  # same token count, so whole sequences can be patched
    sites = resolve_sites(model, [*resid_names(model)])
    clean = forward_with(model, clean_batch, capture=sites)
    corrupt = forward_with(model, corrupt_batch, capture=sites)
    patched = forward_with(model, corrupt_batch, capture=sites, interventions=[replace("resid.0", clean["resid.0"])])
    for name in resid_names(model):
        assert torch.equal(patched[name], clean[name]), name
        assert not torch.equal(corrupt[name], clean[name])


def test_per_row_position_tensors_patch_one_token_in_each_row(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    batch = tokenize(tok, TEXTS, padding_side="left")
    sites = resolve_sites(model, ["attn.1", "resid.1"])
    clean = forward_with(model, batch, capture=sites)
    where = torch.tensor([[1], [0], [-2], [3]])  # one position per row, in each text's own tokens
    value = torch.randn(len(TEXTS), 1, layout(model).d_model)
    patched = forward_with(model, batch, capture=sites, interventions=[replace("attn.1", value, where)])
    for row, position in enumerate(where[:, 0].tolist()):
        col = batch.token_index(row, position)
        assert torch.equal(patched["attn.1"][row, col], value[row, 0])
        others = [c for c in range(batch.real_tokens(row).start, batch.real_tokens(row).stop) if c != col]
        assert torch.equal(patched["attn.1"][row, others], clean["attn.1"][row, others])
        later = [c for c in others if c > col]  # attention lets the patch reach later tokens only
        earlier = [c for c in others if c < col]
        assert torch.equal(patched["resid.1"][row, earlier], clean["resid.1"][row, earlier])
        assert not close(patched["resid.1"][row, [col, *later]], clean["resid.1"][row, [col, *later]], rel=1e-3)


def test_intervene_steers_any_forward_call_like_forward_with(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    # not a constant vector: LayerNorm would subtract it again on GPT-2 and GPT-NeoX
    vector = 4.0 * torch.randn(layout(model).d_model, generator=torch.Generator().manual_seed(1))
    batch = tokenize(tok, TEXTS[:1])
    final = forward_with(model, batch, capture=resolve_sites(model, "final_norm"), interventions=[add("resid.0", vector)])
    with intervene(model, [add("resid.0", vector)]), torch.inference_mode():
        logits = model(input_ids=batch.input_ids).logits.float()
    assert close(logits, logits_at(model, final["final_norm"]), rel=1e-4)
    with torch.inference_mode():
        plain = model(input_ids=batch.input_ids).logits.float()
    assert not close(plain, logits, rel=1e-2)


def test_intervene_during_generate_then_restores_the_model(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    batch = tokenize(tok, ["The capital of France is", "Question: Is the sky blue? Answer:"], padding_side="left")
    settings: dict[str, Any] = {"max_new_tokens": 8, "do_sample": False, "pad_token_id": tok.pad_token_id}

    def generate() -> torch.Tensor:
        with torch.inference_mode():
            return model.generate(input_ids=batch.input_ids, attention_mask=batch.attention_mask, **settings)  # type: ignore[operator]

    baseline = generate()
    vector = torch.randn(layout(model).d_model, generator=torch.Generator().manual_seed(0))
    seen: list[tuple[int, ...]] = []
    steer = add("resid.0", 50.0 * vector)

    def spy(h: torch.Tensor, b: Any) -> torch.Tensor:
        seen.append(tuple(h.shape[:2]))
        return steer.edit(h, b)

    from oversight.interp.trace import Intervention

    with intervene(model, [Intervention("resid.0", spy)]):
        steered = generate()
    assert not torch.equal(steered, baseline)
    assert seen[0] == tuple(batch.input_ids.shape) and all(s == (2, 1) for s in seen[1:])  # prompt, then one token per step
    assert len(seen) == settings["max_new_tokens"]
    assert torch.equal(generate(), baseline)
