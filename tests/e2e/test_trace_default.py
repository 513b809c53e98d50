"""Tracing the real default model (Gemma 3 270M): parity with its own hidden states and attention
probabilities, padding on either side, and a model left as it was."""

from __future__ import annotations

import pytest
import torch

from oversight.interp.sites import residual_sites, resolve_sites
from oversight.interp.trace import capture, forward_with, tokenize
from oversight.models.default import load_default
from oversight.models.hf import HFModel

pytestmark = pytest.mark.e2e

TEXTS = ["The capital of France is", "If John has a pet, then John has a dog. John does not have a dog."]


@pytest.fixture(scope="module")
def gemma() -> HFModel:
    return load_default()


def test_residuals_equal_output_hidden_states_bit_for_bit(gemma: HFModel) -> None:
    model = gemma.model
    batch = tokenize(gemma.tokenizer, TEXTS, padding_side="left")
    raw = forward_with(model, batch, capture=[*residual_sites(model), *resolve_sites(model, ["embed", "final_norm"])])
    with torch.inference_mode():
        hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                       output_hidden_states=True).hidden_states
    assert len(hidden) == 19
    assert torch.equal(raw["embed"], hidden[0]) and torch.equal(raw["final_norm"], hidden[-1])
    for i in range(17):
        assert torch.equal(raw[f"resid.{i}"], hidden[i + 1]), i


def test_padding_side_does_not_change_activations_or_patterns(gemma: HFModel) -> None:
    sites = ["resid.5", "resid.17", "pattern.5"]
    alone = [capture(gemma.model, gemma.tokenizer, [t], sites, positions="all") for t in TEXTS]
    for side in ("left", "right"):
        acts = capture(gemma.model, gemma.tokenizer, TEXTS, sites, positions="all", padding_side=side)
        for i, single in enumerate(alone):
            for name in sites:
                got, want = acts.of(name, i), single.of(name, 0)
                assert (got - want).abs().max() <= 1e-5 * max(1.0, float(want.abs().max())), (side, name, i)
    assert gemma.model.config._attn_implementation == "sdpa"


def test_patterns_equal_eager_output_attentions(gemma: HFModel) -> None:
    model = gemma.model
    ids = torch.tensor([gemma.tokenizer(TEXTS[1])["input_ids"]])
    acts = capture(model, gemma.tokenizer, [TEXTS[1]], ["pattern.0", "pattern.5"], positions="all")
    before = model.config._attn_implementation
    try:
        model.set_attn_implementation("eager")
        with torch.inference_mode():
            attentions = model(input_ids=ids, output_attentions=True).attentions
    finally:
        model.set_attn_implementation(before)
    for layer in (0, 5):
        assert torch.allclose(acts.of(f"pattern.{layer}", 0), attentions[layer][0], atol=1e-6)
