"""Logit lens and activation patching on the default model (Gemma 3 270M): one factual pair."""

from __future__ import annotations

import pytest

from oversight.interp.lens import logit_lens
from oversight.interp.patching import (
    Patch,
    PromptPair,
    logit_difference,
    pair_token_ids,
    run_patches,
)
from oversight.models.default import load_default
from oversight.models.hf import HFModel

pytestmark = pytest.mark.e2e

PAIR = PromptPair("The Eiffel Tower is located in the city of", "The Colosseum is located in the city of", " Paris", " Rome")


@pytest.fixture(scope="module")
def gemma() -> HFModel:
    return load_default()


def test_lens_reads_paris_after_the_last_layer(gemma: HFModel) -> None:
    result = logit_lens(gemma.model, gemma.tokenizer, PAIR.clean, target=" Paris", layers=[0, -1], positions=[-1])
    assert result.target is not None and result.target.pieces == [" Paris"] and not result.warnings
    assert result.top_tokens[-1][0][0] == " Paris"
    assert result.target_ranks is not None and int(result.target_ranks[-1, 0]) == 1
    assert result.target_probs is not None and result.target_probs[0, 0] < 0.01  # not yet after layer 0


def test_patching_restores_the_clean_answer_where_it_should(gemma: HFModel) -> None:
    clean, corrupted = pair_token_ids(gemma.tokenizer, PAIR)  # both 10 tokens: <bos> The [subject ×2] is located …
    paris, rome = (gemma.tokenizer(t, add_special_tokens=False)["input_ids"][0] for t in (" Paris", " Rome"))
    last_layer = gemma.model.config.get_text_config().num_hidden_layers - 1
    patches = [Patch("resid", last_layer, len(clean) - 1), Patch("resid", 6, 3), Patch("resid", 6, 5)]
    clean_value, corrupted_value, patched = run_patches(gemma.model, clean, corrupted, patches, logit_difference(paris, rome))
    assert clean_value > 0 > corrupted_value  # Paris wins on the clean prompt, Rome on the corrupted one
    assert patched[0] == pytest.approx(clean_value, abs=1e-3)  # the final token after the last layer: all of it
    effect = (patched[1:] - corrupted_value) / (clean_value - corrupted_value)
    # Mid-layer residual at the subject's last token (" Tower") carries much of the fact; a
    # later token of the template (" located") carries none of it.
    assert effect[0] > 0.3 and abs(effect[1]) < 0.05
