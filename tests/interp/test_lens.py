"""The logit lens on tiny random models of each family: exact at the last layer, consistent ranks."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from oversight.errors import SpecError
from oversight.interp.lens import choose_token, lens_page, logit_lens
from oversight.interp.pages import render_page
from oversight.models.hf import HFModel
from oversight.models.registry import load_model

TEXT = "The capital of France is Paris. The capital of Italy is"


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFModel:
    model = load_model(f"hf:{tiny_model_dir}")
    assert isinstance(model, HFModel)
    return model


def _own_logits(model: HFModel, ids: list[int]) -> torch.Tensor:
    with torch.inference_mode():
        return model.model(torch.tensor([ids])).logits[0].float()


def test_last_layer_lens_is_the_models_own_output(tiny: HFModel) -> None:
    result = logit_lens(tiny.model, tiny.tokenizer, TEXT, target="1", top_k=7)
    assert result.target is not None and result.target_probs is not None and result.target_logits is not None
    logits = _own_logits(tiny, result.token_ids)
    probs = torch.softmax(logits, dim=-1)
    best = probs.topk(7, dim=-1)
    # Exact: the same norm, the same output layer, the same float32 arithmetic.
    assert np.array_equal(result.top_ids[-1], best.indices.numpy())
    assert np.array_equal(result.top_probs[-1], best.values.double().numpy())
    assert np.array_equal(result.target_logits[-1], logits[:, result.target.token_id].double().numpy())
    assert np.array_equal(result.target_probs[-1], probs[:, result.target.token_id].double().numpy())
    assert result.layers == list(range(tiny.model.config.get_text_config().num_hidden_layers))
    assert result.positions == list(range(len(result.token_ids)))


def test_ranks_and_probabilities_agree_with_the_top_k(tiny: HFModel) -> None:
    result = logit_lens(tiny.model, tiny.tokenizer, TEXT, target="1", top_k=5)
    assert result.target is not None and result.target_probs is not None and result.target_ranks is not None
    assert np.all(np.diff(result.top_probs, axis=-1) <= 0)  # sorted, most likely first
    assert np.all(result.target_probs <= result.top_probs[..., 0] + 1e-12)
    assert np.all(result.target_ranks >= 1)
    assert np.all(result.entropy >= 0)
    target = result.target.token_id
    for r in range(len(result.layers)):
        for c in range(len(result.positions)):
            ids = list(result.top_ids[r, c])
            rank = int(result.target_ranks[r, c])
            if target in ids:
                assert rank == ids.index(target) + 1
                assert result.target_probs[r, c] == result.top_probs[r, c, ids.index(target)]
            else:
                assert rank > result.k
    # The rank at the last layer is the rank in the model's own sorted logits.
    logits = _own_logits(tiny, result.token_ids)[-1]
    assert int(result.target_ranks[-1, -1]) == int((logits > logits[target]).sum()) + 1


def test_chosen_layers_and_positions_and_their_errors(tiny: HFModel) -> None:
    full = logit_lens(tiny.model, tiny.tokenizer, TEXT, top_k=3)
    part = logit_lens(tiny.model, tiny.tokenizer, TEXT, top_k=3, layers=[0, -1], positions=[1, -1])
    assert part.layers == [0, full.layers[-1]] and part.positions == [1, len(full.tokens) - 1]
    assert np.array_equal(part.top_ids, full.top_ids[[0, -1]][:, [1, -1]])
    assert part.target is None and part.target_probs is None and "target" not in part.to_dict()
    with pytest.raises(SpecError, match="out of range"):
        logit_lens(tiny.model, tiny.tokenizer, TEXT, layers=[99])
    with pytest.raises(SpecError, match="position 500 is out of range"):
        logit_lens(tiny.model, tiny.tokenizer, TEXT, positions=[500])
    with pytest.raises(SpecError, match="top-k"):
        logit_lens(tiny.model, tiny.tokenizer, TEXT, top_k=0)


def test_multi_token_target_warns_and_uses_the_first(tiny: HFModel) -> None:
    choice = choose_token(tiny.tokenizer, " Paris")
    assert len(choice.pieces) > 1 and choice.warning is not None and "using the first" in choice.warning
    result = logit_lens(tiny.model, tiny.tokenizer, TEXT, target=" Paris")
    assert result.target is not None and result.target.token_id == choice.token_id
    assert result.warnings == [choice.warning]
    with pytest.raises(SpecError, match="no tokens"):
        choose_token(tiny.tokenizer, "")


def test_page_and_json(tiny: HFModel) -> None:
    result = logit_lens(tiny.model, tiny.tokenizer, "<script>alert(1)</script> is", target="1", top_k=3)
    data = result.to_dict()
    assert len(data["top_k"]) == len(result.layers) and len(data["top_k"][0]) == len(result.positions)
    assert len(data["top_k"][0][0]) == 3 and {"token", "id", "prob"} <= set(data["top_k"][0][0][0])
    assert data["target"]["rank"][-1][-1] == int(result.target_ranks[-1, -1])  # type: ignore[index]
    html = render_page(lens_page(result, model_name="tiny", command="oversight lens"))
    assert "<script>alert" not in html and "&lt;script&gt;" in html
    assert html.count("<svg") == 3  # target heatmap, target line, top-1 heatmap
