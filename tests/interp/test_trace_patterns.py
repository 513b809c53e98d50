"""Attention patterns (``pattern.{i}``) equal transformers' own ``output_attentions`` under eager
attention, whatever the padding, and leave the model's attention implementation as it was."""

from __future__ import annotations

from typing import Any

import pytest
import torch
from transformers import PreTrainedModel

from oversight.errors import SpecError
from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import (
    Intervention,
    capture,
    forward_with,
    intervene,
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
    model = tiny_model(request.param, tokenizer)
    assert model.config._attn_implementation == "sdpa"  # the fused default, which returns no probabilities
    return model, tokenizer


@pytest.fixture(scope="module")
def eager_attentions(lm: tuple[PreTrainedModel, Any]) -> list[tuple[torch.Tensor, ...]]:
    """transformers' own attention probabilities, each text alone, from an eager copy of the model."""
    model, tok = lm
    eager = type(model)(model.config.__class__.from_dict({**model.config.to_dict(), "_attn_implementation": "eager"}))
    eager.load_state_dict(model.state_dict())
    eager.set_attn_implementation("eager")
    eager.eval()
    out = []
    for text in TEXTS:
        with torch.inference_mode():
            out.append(eager(input_ids=torch.tensor([tok(text)["input_ids"]]), output_attentions=True).attentions)
    return out


def pattern_names(model: PreTrainedModel) -> list[str]:
    return [f"pattern.{i}" for i in range(layout(model).n_layers)]


def test_patterns_equal_output_attentions_with_any_padding(
    lm: tuple[PreTrainedModel, Any], eager_attentions: list[tuple[torch.Tensor, ...]]
) -> None:
    model, tok = lm
    lay = layout(model)
    for side in ("left", "right"):
        acts = capture(model, tok, TEXTS, pattern_names(model), positions="all", padding_side=side, batch_size=4)
        for i, reference in enumerate(eager_attentions):
            n_tokens = len(tok(TEXTS[i])["input_ids"])
            for layer in range(lay.n_layers):
                got = acts.of(f"pattern.{layer}", i)
                assert got.shape == (lay.n_heads, n_tokens, n_tokens)
                assert torch.allclose(got, reference[layer][0], atol=2e-6), (side, i, layer)
    assert model.config._attn_implementation == "sdpa"


def test_pattern_rows_are_causal_distributions(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    acts = capture(model, tok, TEXTS, "pattern.0", positions="all", padding_side="left")
    for i in range(len(TEXTS)):
        p = acts.of("pattern.0", i)
        assert torch.allclose(p.sum(-1), torch.ones(p.shape[:2]), atol=1e-5)
        assert torch.equal(p.triu(1), torch.zeros_like(p))  # no token attends to a later one


def test_chosen_positions_pick_query_rows(
    lm: tuple[PreTrainedModel, Any], eager_attentions: list[tuple[torch.Tensor, ...]]
) -> None:
    model, tok = lm
    last = capture(model, tok, TEXTS, ["pattern.1", "resid.1"], positions="last", padding_side="left")
    picked = capture(model, tok, TEXTS, "pattern.1", positions=[0, -1])
    for i, reference in enumerate(eager_attentions):
        full = reference[1][0]
        assert torch.allclose(last.of("pattern.1", i), full[:, -1:], atol=2e-6)
        assert torch.allclose(picked.of("pattern.1", i), full[:, [0, -1]], atol=2e-6)
    assert last["resid.1"].shape == (len(TEXTS), layout(model).d_model)  # other sites stack as usual
    with pytest.raises(KeyError, match=r"use .of"):
        last["pattern.1"]


def test_raw_patterns_and_a_restored_implementation_even_on_error(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    batch = tokenize(tok, TEXTS)
    raw = forward_with(model, batch, capture=resolve_sites(model, ["pattern.0", "resid.0"]))
    assert raw["pattern.0"].shape == (len(TEXTS), layout(model).n_heads, *batch.input_ids.shape[1:] * 2)

    def explode(h: torch.Tensor, _b: Any) -> torch.Tensor:
        raise RuntimeError("inside the pass")

    with pytest.raises(RuntimeError, match=r"inside the pass"):
        forward_with(model, batch, capture=resolve_sites(model, "pattern.1"), interventions=[Intervention("mlp.0", explode)])
    assert model.config._attn_implementation == "sdpa"
    assert all(getattr(m, "config", model.config)._attn_implementation == "sdpa" for m in model.modules() if isinstance(m, PreTrainedModel))


def test_patterns_see_interventions_but_cannot_be_edited(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    clean = capture(model, tok, TEXTS, "pattern.1", positions="all")
    ablated = capture(model, tok, TEXTS, "pattern.1", positions="all", interventions=[zero_ablate("attn.0"), zero_ablate("mlp.0")])
    assert not torch.allclose(clean.of("pattern.1", 0), ablated.of("pattern.1", 0), atol=1e-3)
    with pytest.raises(SpecError, match=r"can be captured, not edited"), intervene(model, [zero_ablate("pattern.0")]):
        pass
