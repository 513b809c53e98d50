"""Activation patching on tiny random models of each family: the algebra it must satisfy."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch

from oversight.errors import DataError, SpecError
from oversight.interp.pages import render_page
from oversight.interp.patching import (
    Patch,
    PromptPair,
    _patched_runs,
    activation_patching,
    logit_difference,
    pair_token_ids,
    patch_page,
    plan_patches,
    run_patches,
)
from oversight.interp.sites import resolve_sites
from oversight.interp.trace import forward_with, pad
from oversight.models.hf import HFModel
from oversight.models.registry import load_model

# Same token length in the tiny tokenizer; they differ at one token (" D" vs " 7", position 7).
PAIR = PromptPair("A B C D (A) true", "A B C 7 (A) true", "1", "0")
OTHER = PromptPair("A B C 5 (A) true", "A B C 9 (A) true", "1", "0")
DIFFERS_AT = 7
TOL = dict(rtol=1e-4, atol=1e-4)


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFModel:
    model = load_model(f"hf:{tiny_model_dir}")
    assert isinstance(model, HFModel)
    return model


def _setup(tiny: HFModel, pair: PromptPair = PAIR) -> tuple[list[int], list[int], int, int]:
    clean, corrupted = pair_token_ids(tiny.tokenizer, pair)
    answer = tiny.tokenizer(pair.answer, add_special_tokens=False)["input_ids"][0]
    wrong = tiny.tokenizer(pair.wrong, add_special_tokens=False)["input_ids"][0]
    return clean, corrupted, answer, wrong


def _n_layers(tiny: HFModel) -> int:
    return int(tiny.model.config.get_text_config().num_hidden_layers)


def test_reference_metrics_are_the_models_own_logit_differences(tiny: HFModel) -> None:
    clean, corrupted, answer, wrong = _setup(tiny)
    clean_value, corrupted_value, patched = run_patches(tiny.model, clean, corrupted, [], logit_difference(answer, wrong))
    with torch.inference_mode():
        logits = tiny.model(torch.tensor([clean, corrupted])).logits[:, -1].float()
    expected = (logits[:, answer] - logits[:, wrong]).tolist()
    assert clean_value == pytest.approx(expected[0], abs=1e-4)
    assert corrupted_value == pytest.approx(expected[1], abs=1e-4)
    assert patched.shape == (0,)
    assert abs(clean_value - corrupted_value) > 1e-3  # the pair differs, so the tests below mean something


def test_patching_identical_activations_changes_nothing(tiny: HFModel) -> None:
    """Before the first differing token clean and corrupted activations are equal (causal
    attention): patching them is patching nothing and gives the corrupted metric. Such patches
    are skipped, so check the premise by running a few of them through the hooks anyway."""
    clean, corrupted, answer, wrong = _setup(tiny)
    n = _n_layers(tiny)
    patches = [Patch(kind, layer, p) for kind in ("resid", "attn", "mlp") for layer in range(n) for p in range(DIFFERS_AT)]
    patches += [Patch("heads", layer, p, 0) for layer in range(n) for p in range(DIFFERS_AT)]
    steps: list[int] = []
    _, corrupted_value, patched = run_patches(tiny.model, clean, corrupted, patches, logit_difference(answer, wrong),
                                              progress=steps.append)
    assert np.all(patched == corrupted_value) and sum(steps) == len(patches)
    acts = {p.site: forward_with(tiny.model, pad([clean], pad_id=0), capture=resolve_sites(tiny.model, p.site))[p.site][0]
            for p in patches[::9]}
    through_hooks = _patched_runs(tiny.model, corrupted, patches[::9], acts, logit_difference(answer, wrong))
    np.testing.assert_allclose(through_hooks, corrupted_value, **TOL)


def test_final_layer_last_position_restores_the_clean_metric(tiny: HFModel) -> None:
    clean, corrupted, answer, wrong = _setup(tiny)
    last = _n_layers(tiny) - 1
    patches = [Patch("resid", last, len(clean) - 1), Patch("resid", last, DIFFERS_AT), Patch("resid", last, 0)]
    clean_value, corrupted_value, patched = run_patches(tiny.model, clean, corrupted, patches, logit_difference(answer, wrong))
    assert patched[0] == pytest.approx(clean_value, rel=1e-4, abs=1e-4)
    # After the last layer nothing mixes positions: other positions do nothing.
    np.testing.assert_allclose(patched[1:], corrupted_value, **TOL)


def test_whole_residual_at_any_layer_restores_the_clean_metric(tiny: HFModel) -> None:
    clean, corrupted, answer, wrong = _setup(tiny)
    patches = [Patch("resid", layer, None) for layer in range(_n_layers(tiny))]
    clean_value, _, patched = run_patches(tiny.model, clean, corrupted, patches, logit_difference(answer, wrong))
    np.testing.assert_allclose(patched, clean_value, **TOL)


def test_all_heads_of_a_layer_equal_its_attention_output(tiny: HFModel) -> None:
    """heads.{i} is the input of the (linear) output projection: patching all of it is patching
    the attention output, at all positions and at each one."""
    clean, corrupted, answer, wrong = _setup(tiny)
    patches = []
    for layer in range(_n_layers(tiny)):
        for position in (None, DIFFERS_AT, len(clean) - 1):
            patches += [Patch("heads", layer, position), Patch("attn", layer, position)]
    _, _, patched = run_patches(tiny.model, clean, corrupted, patches, logit_difference(answer, wrong))
    np.testing.assert_allclose(patched[0::2], patched[1::2], **TOL)


def test_batching_does_not_change_results(tiny: HFModel) -> None:
    clean, corrupted, answer, wrong = _setup(tiny)
    patches = [Patch("resid", 0, p) for p in range(len(clean))] + [Patch("heads", 0, None, h) for h in range(2)]
    metric = logit_difference(answer, wrong)
    _, _, one = run_patches(tiny.model, clean, corrupted, patches, metric, batch_size=1)
    _, _, many = run_patches(tiny.model, clean, corrupted, patches, metric, batch_size=5)
    np.testing.assert_allclose(one, many, **TOL)


def test_grids_normalised_effects_and_pair_averages(tiny: HFModel) -> None:
    n = _n_layers(tiny)
    steps: list[tuple[int, int]] = []
    single = activation_patching(tiny.model, tiny.tokenizer, [PAIR], ["resid", "attn", "mlp", "heads"],
                                 progress=lambda done, total: steps.append((done, total)))
    assert set(single.grids) == {"resid", "attn", "mlp", "heads"}
    resid = single.mean_effect("resid")
    assert resid.shape == (n, len(single.runs[0].clean_tokens))
    assert resid[-1, -1] == pytest.approx(1.0, abs=1e-3)  # last layer, last position: clean restored
    np.testing.assert_allclose(resid[:, :DIFFERS_AT], 0.0, atol=1e-3)  # identical prefix: no effect
    assert single.mean_effect("heads").shape == (n, tiny.model.config.get_text_config().num_attention_heads)
    assert single.runs[0].differing_positions == [DIFFERS_AT]
    assert steps[-1][0] == steps[-1][1] == sum(g.patched.size for g in single.grids.values())
    both = activation_patching(tiny.model, tiny.tokenizer, [PAIR, OTHER], ["resid"])
    other = activation_patching(tiny.model, tiny.tokenizer, [OTHER], ["resid"])
    np.testing.assert_allclose(both.mean_effect("resid"), (resid + other.mean_effect("resid")) / 2, atol=1e-6)
    assert np.isfinite(both.sem_effect("resid")[-1, -1])
    mean, _ = both.layer_profile("resid", "final")
    assert mean[-1] == pytest.approx(1.0, abs=1e-3)
    assert both.grids["resid"].columns[DIFFERS_AT].endswith("…")  # the token varies across pairs
    data = both.to_dict()
    assert len(data["pairs"]) == 2 and data["grids"]["resid"]["mean_effect"][-1][-1] == pytest.approx(1.0, abs=1e-3)
    assert abs(data["top"][0]["mean_effect"]) == pytest.approx(np.nanmax(np.abs(both.mean_effect("resid"))), abs=1e-6)
    per_grid = single.top_patches(2, per_grid=True)
    assert [g for g, _, _ in per_grid] == ["resid", "resid", "attn", "attn", "mlp", "mlp", "heads", "heads"]
    assert single.top_patches(3) == sorted(single.top_patches(3), key=lambda t: -abs(t[2]))


def test_heads_by_position_and_custom_metric(tiny: HFModel) -> None:
    answer = tiny.tokenizer("1", add_special_tokens=False)["input_ids"][0]

    def prob(logits: torch.Tensor) -> torch.Tensor:
        return torch.softmax(logits, dim=-1)[:, answer]

    result = activation_patching(tiny.model, tiny.tokenizer, [PromptPair(PAIR.clean, PAIR.corrupted)], ["heads"],
                                 head_positions="each", metric=prob, metric_name="p(1)", layers=[-1])
    grid = result.grids["heads.pos"]
    assert grid.rows[0] == f"L{_n_layers(tiny) - 1}.H0" and len(grid.columns) == len(result.runs[0].clean_tokens)
    assert result.metric_name == "p(1)" and 0 <= result.runs[0].clean_metric <= 1


def test_clear_errors(tiny: HFModel) -> None:
    with pytest.raises(DataError, match=r"same number of tokens.*\n  clean: .*\n  corrupted: "):
        activation_patching(tiny.model, tiny.tokenizer, [PromptPair("A B C D", "A B", "1", "0")])
    with pytest.raises(SpecError, match="unknown patching site"):
        plan_patches(tiny.model, 5, ["resid", "neurons"])
    with pytest.raises(SpecError, match="out of range"):
        activation_patching(tiny.model, tiny.tokenizer, [PAIR], layers=[42])
    with pytest.raises(DataError, match="no wrong token"):
        activation_patching(tiny.model, tiny.tokenizer, [PromptPair(PAIR.clean, PAIR.corrupted, "1")])
    with pytest.raises(DataError, match="same token"):
        activation_patching(tiny.model, tiny.tokenizer, [PromptPair(PAIR.clean, PAIR.corrupted, "1", "1")])
    with pytest.raises(DataError, match="same token length"):
        activation_patching(tiny.model, tiny.tokenizer, [PAIR, PromptPair("A B", "A 7", "1", "0")])
    same = activation_patching(tiny.model, tiny.tokenizer, [PromptPair(PAIR.clean, PAIR.clean, "1", "0")], layers=[0])
    assert "undefined" in same.warnings[0] and np.isnan(same.mean_effect("resid")).all()


def test_page(tiny: HFModel) -> None:
    result = activation_patching(tiny.model, tiny.tokenizer, [PAIR, OTHER], ["resid", "attn", "heads"])
    html = render_page(patch_page(result, model_name="tiny <b>", command="oversight patch"))
    assert html.count("<svg") == 4  # three grids and the layer profile
    assert "tiny &lt;b&gt;" in html and "Largest effects" in html
