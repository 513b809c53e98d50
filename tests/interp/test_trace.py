"""Capture on tiny Gemma 3, Llama, GPT-2 and GPT-NeoX models: parity with the model's own
``output_hidden_states``, padding, every site kind, stop-early, clean hooks and clear errors."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import torch
from torch import nn
from transformers import PreTrainedModel

from oversight.errors import SpecError
from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import (
    capture,
    forward_with,
    intervene,
    iter_capture,
    pad,
    tokenize,
    zero_ablate,
)
from tiny_models import tiny_model, tiny_tokenizer

ARCHS = ["gemma3", "llama", "gpt2", "gpt_neox"]
TEXTS = [
    "The capital of France is Paris.",
    "Yes",
    "If John has a pet, then John has a dog. John does not have a dog.",
    "A B C D",
]


@pytest.fixture(scope="module")
def tokenizer() -> Any:
    return tiny_tokenizer()


@pytest.fixture(scope="module", params=ARCHS)
def lm(request: pytest.FixtureRequest, tokenizer: Any) -> tuple[PreTrainedModel, Any]:
    return tiny_model(request.param, tokenizer), tokenizer


def all_site_names(model: PreTrainedModel) -> list[str]:
    n = layout(model).n_layers
    return ["embed", *[f"{kind}.{i}" for kind in ("resid", "attn", "mlp", "heads", "neurons") for i in range(n)], "final_norm"]


def close(a: torch.Tensor, b: torch.Tensor, rel: float = 1e-5) -> bool:
    """Equal up to float32 rounding, relative to the size of the activations."""
    assert a.shape == b.shape, (a.shape, b.shape)
    return bool((a - b).abs().max() <= rel * max(1.0, float(b.abs().max())))


def hook_state(model: nn.Module) -> dict[str, tuple[tuple[int, ...], ...]]:
    """Every hook dict of every module (and the global ones), by key."""
    kinds = ("_forward_hooks", "_forward_pre_hooks", "_forward_hooks_with_kwargs", "_forward_pre_hooks_with_kwargs",
             "_forward_hooks_always_called", "_backward_hooks", "_backward_pre_hooks", "_state_dict_hooks")
    state = {name: tuple(tuple(getattr(m, kind)) for kind in kinds) for name, m in model.named_modules()}
    state["<global>"] = (tuple(nn.modules.module._global_forward_hooks), tuple(nn.modules.module._global_forward_pre_hooks))
    return state


def model_state(model: PreTrainedModel) -> tuple[dict[str, list[str]], dict[str, Any], str, bool]:
    attributes = {name: sorted(vars(m)) for name, m in model.named_modules()}
    return attributes, model.config.to_dict(), model.config._attn_implementation, model.training


# -- parity ------------------------------------------------------------------------------------


def test_unpadded_capture_equals_output_hidden_states_exactly(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    n = layout(model).n_layers
    sites = resolve_sites(model, ["embed", *[f"resid.{i}" for i in range(n)], "final_norm"])
    for text in TEXTS:
        ids = torch.tensor([tok(text)["input_ids"]])
        with torch.inference_mode():
            hidden = model(input_ids=ids, output_hidden_states=True).hidden_states
        raw = forward_with(model, tokenize(tok, [text]), capture=sites)
        assert len(hidden) == n + 1
        assert torch.equal(raw["embed"], hidden[0])
        for i in range(n - 1):
            assert torch.equal(raw[f"resid.{i}"], hidden[i + 1]), i
        # transformers puts the final norm's output in the last slot, not the last layer's
        assert torch.equal(raw["final_norm"], hidden[-1])
        assert not torch.equal(raw[f"resid.{n - 1}"], hidden[-1])


@pytest.mark.parametrize("side", ["left", "right"])
def test_padded_capture_equals_output_hidden_states_on_the_same_batch(lm: tuple[PreTrainedModel, Any], side: str) -> None:
    model, tok = lm
    n = layout(model).n_layers
    batch = tokenize(tok, TEXTS, padding_side=side)  # type: ignore[arg-type]
    raw = forward_with(model, batch, capture=resolve_sites(model, [f"resid.{i}" for i in range(n - 1)]))
    with torch.inference_mode():
        hidden = model(input_ids=batch.input_ids, attention_mask=batch.attention_mask, position_ids=batch.position_ids,
                       output_hidden_states=True).hidden_states
    for i in range(n - 1):
        for row in range(len(TEXTS)):
            real = batch.real_tokens(row)
            assert torch.equal(raw[f"resid.{i}"][row, real], hidden[i + 1][row, real])


# -- padding -----------------------------------------------------------------------------------


def test_left_right_and_unpadded_runs_give_the_same_activations(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    names = all_site_names(model)
    alone = [capture(model, tok, [text], names, positions="all") for text in TEXTS]
    for side in ("left", "right"):
        acts = capture(model, tok, TEXTS, names, positions="all", padding_side=side, batch_size=len(TEXTS))
        for name in names:
            for i in range(len(TEXTS)):
                assert close(acts.of(name, i), alone[i][name]), (side, name, i)
        assert acts.token_ids == [a.token_ids[0] for a in alone]


@pytest.mark.parametrize("positions", ["last", [0, -1, 1]])
def test_positions_pick_the_same_tokens_whatever_the_padding(lm: tuple[PreTrainedModel, Any], positions: Any) -> None:
    model, tok = lm
    everything = capture(model, tok, TEXTS, ["resid.1", "neurons.0"], positions="all")
    wanted = [-1] if positions == "last" else positions
    for side in ("left", "right"):
        acts = capture(model, tok, TEXTS, ["resid.1", "neurons.0"], positions=positions, padding_side=side, batch_size=3)
        for name in ("resid.1", "neurons.0"):
            expected = torch.stack([everything.of(name, i)[wanted] for i in range(len(TEXTS))])
            got = acts[name] if positions != "last" else acts[name][:, None]
            assert close(got, expected), (side, name)


def test_masks_select_the_same_tokens_whatever_the_padding(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    lengths = [len(tok(t)["input_ids"]) for t in TEXTS]
    masks = [[k % 2 == 0 for k in range(n)] for n in lengths]
    everything = capture(model, tok, TEXTS, "mlp.0", positions="all")
    for side in ("left", "right"):
        acts = capture(model, tok, TEXTS, "mlp.0", positions=masks, padding_side=side)
        for i, mask in enumerate(masks):
            assert close(acts.of("mlp.0", i), everything.of("mlp.0", i)[torch.tensor(mask)])
        assert acts.offsets == [0, *torch.tensor([sum(m) for m in masks]).cumsum(0).tolist()]


def test_a_mask_of_the_wrong_length_names_the_text(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    with pytest.raises(ValueError, match=r"text 1: mask has 2 entries"):
        capture(model, tok, TEXTS[:2], "resid.0", positions=[[True] * 50, [True, False]])


def test_iter_capture_yields_every_text_once_in_length_sorted_batches(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    seen: list[int] = []
    for batch, found in iter_capture(model, tok, TEXTS, ["resid.0", "attn.1"], batch_size=3):
        assert len(found["resid.0"]) == len(batch.indices) == len(found["attn.1"])
        seen += batch.indices
    assert sorted(seen) == list(range(len(TEXTS)))
    lengths = [len(tok(TEXTS[i])["input_ids"]) for i in seen]
    assert lengths == sorted(lengths)


# -- sites -------------------------------------------------------------------------------------


def test_every_site_kind_has_its_shape_and_meaning(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    lay = layout(model)
    batch = tokenize(tok, TEXTS)
    rows, tokens = batch.input_ids.shape
    module_path = f"{lay.layer(1)}.{lay.attention}.{lay.attention_out}"
    glob = f"{lay.layers}.*.{lay.mlp}"
    sites = resolve_sites(model, [*all_site_names(model), module_path, glob])
    raw = forward_with(model, batch, capture=sites)
    d_mlp = raw["neurons.0"].shape[-1]
    assert d_mlp > lay.d_model
    for i in range(lay.n_layers):
        for kind in ("resid", "attn", "mlp"):
            assert raw[f"{kind}.{i}"].shape == (rows, tokens, lay.d_model)
        assert raw[f"heads.{i}"].shape == (rows, tokens, lay.n_heads * lay.head_dim)
        assert raw[f"neurons.{i}"].shape == (rows, tokens, d_mlp)
        attention = model.get_submodule(f"{lay.layer(i)}.{lay.attention}")
        mlp = model.get_submodule(f"{lay.layer(i)}.{lay.mlp}")
        with torch.inference_mode():  # heads feed the output projection, neurons the down projection
            assert close(getattr(attention, lay.attention_out)(raw[f"heads.{i}"]), raw[f"attn.{i}"])
            assert close(getattr(mlp, lay.mlp_out)(raw[f"neurons.{i}"]), raw[f"mlp.{i}"])
        assert torch.equal(raw[f"{lay.layers}.{i}.{lay.mlp}"], raw[f"mlp.{i}"])  # the glob
        if model.config.model_type != "gemma3_text":  # Gemma norms attn/mlp before adding them
            before = raw["embed"] if i == 0 else raw[f"resid.{i - 1}"]
            assert close(before + raw[f"attn.{i}"] + raw[f"mlp.{i}"], raw[f"resid.{i}"], rel=1e-4)
    assert torch.equal(raw[module_path], raw["attn.1"])
    assert raw["embed"].shape == raw["final_norm"].shape == (rows, tokens, lay.d_model)
    with torch.inference_mode():
        embedded = model.get_input_embeddings()(batch.input_ids)
    if model.config.model_type in {"llama", "gpt_neox"}:  # no scaling, no position embeddings
        assert torch.equal(raw["embed"], embedded)


def test_negative_layers_count_from_the_end(lm: tuple[PreTrainedModel, Any]) -> None:
    model, _ = lm
    n = layout(model).n_layers
    (site,) = resolve_sites(model, "resid.-1")
    assert site.layer == n - 1 and site.module == layout(model).layer(n - 1)


def test_unknown_modules_list_near_matches(lm: tuple[PreTrainedModel, Any]) -> None:
    model, _ = lm
    lay = layout(model)
    typo = f"{lay.layer(0)}.{lay.attention[:-1]}"
    with pytest.raises(SpecError, match=r"no module named .* near matches: .*" + f"{lay.layer(0)}.{lay.attention}".replace(".", r"\.")):
        resolve_sites(model, typo)
    with pytest.raises(SpecError, match=r"near matches: .*resid.0"):
        resolve_sites(model, "resdi.0")
    with pytest.raises(SpecError, match=r"no module named 'nothing.like.it'"):
        resolve_sites(model, "nothing.like.it")


def test_layers_out_of_range_say_how_many_there_are(lm: tuple[PreTrainedModel, Any]) -> None:
    model, _ = lm
    n = layout(model).n_layers
    for name in (f"resid.{n}", f"mlp.{-n - 1}", "heads.99", "pattern.50"):
        with pytest.raises(SpecError, match=f"out of range: this model has {n} layers"):
            resolve_sites(model, name)


def test_float16_caches_are_refused(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    with pytest.raises(ValueError, match=r"float32 or bfloat16, not torch.float16"):
        capture(model, tok, TEXTS, "resid.0", dtype=torch.float16)
    acts = capture(model, tok, TEXTS, "resid.0", dtype=torch.bfloat16)
    assert acts["resid.0"].dtype == torch.bfloat16
    assert close(acts["resid.0"].float(), capture(model, tok, TEXTS, "resid.0")["resid.0"], rel=1e-2)


def test_missing_sites_and_empty_inputs_are_clear(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    acts = capture(model, tok, TEXTS, "resid.0")
    with pytest.raises(KeyError, match=r"'resid.1' was not captured; captured: resid.0"):
        acts["resid.1"]
    with pytest.raises(ValueError, match=r"no texts"):
        capture(model, tok, [], "resid.0")
    with pytest.raises(ValueError, match=r"empty text"):
        pad([[1, 2], []], pad_id=0)


# -- stop early --------------------------------------------------------------------------------


@pytest.fixture
def calls(lm: tuple[PreTrainedModel, Any]) -> Iterator[dict[str, int]]:
    """How often each decoder layer, the final norm and the output layer ran."""
    model, _ = lm
    lay = layout(model)
    counted = {f"layer{i}": model.get_submodule(lay.layer(i)) for i in range(lay.n_layers)}
    counted["norm"] = model.get_submodule(lay.final_norm or "")
    counted["head"] = model.get_output_embeddings()
    counts = dict.fromkeys(counted, 0)

    def counter(name: str) -> Any:
        return lambda *_: counts.__setitem__(name, counts[name] + 1)

    handles = [m.register_forward_hook(counter(name)) for name, m in counted.items()]
    yield counts
    for handle in handles:
        handle.remove()


def test_stop_early_skips_later_layers_and_the_head(lm: tuple[PreTrainedModel, Any], calls: dict[str, int]) -> None:
    model, tok = lm
    n = layout(model).n_layers
    batch = tokenize(tok, TEXTS)

    def ran(**kwargs: Any) -> list[str]:
        calls.update(dict.fromkeys(calls, 0))
        forward_with(model, batch, **kwargs)
        return [name for name, count in calls.items() if count]

    layers = [f"layer{i}" for i in range(n)]
    assert ran(capture=resolve_sites(model, ["resid.1", "attn.0"])) == layers[:2]
    assert ran(capture=resolve_sites(model, "neurons.0")) == layers[:1]
    assert ran(capture=resolve_sites(model, "embed")) == []
    assert ran(capture=resolve_sites(model, "resid.1"), stop_early=False) == [*layers, "norm"]
    assert ran(capture=resolve_sites(model, "final_norm")) == [*layers, "norm"]  # never the head
    raw = forward_with(model, batch, capture=resolve_sites(model, ["embed", "resid.1"]))
    assert set(raw) == {"embed", "resid.1"}


# -- the model is left as it was ---------------------------------------------------------------


def test_hooks_are_removed_and_the_model_is_unchanged(lm: tuple[PreTrainedModel, Any]) -> None:
    model, tok = lm
    hooks, before = hook_state(model), model_state(model)
    weights = {k: v.clone() for k, v in model.state_dict().items()}
    n = layout(model).n_layers
    capture(model, tok, TEXTS, [*all_site_names(model), *[f"pattern.{i}" for i in range(n)]], positions="all")
    forward_with(model, tokenize(tok, TEXTS), capture=resolve_sites(model, "resid.0"), interventions=[zero_ablate("mlp.0")])
    with intervene(model, [zero_ablate("attn.0")]), torch.inference_mode():
        model(input_ids=tokenize(tok, TEXTS[:1]).input_ids)
    assert hook_state(model) == hooks
    assert model_state(model) == before
    after = model.state_dict()
    assert all(torch.equal(after[k], v) for k, v in weights.items())


class Boom(Exception):
    pass


def explode(h: torch.Tensor, _batch: Any) -> torch.Tensor:
    raise Boom


def test_hooks_are_removed_after_an_error(lm: tuple[PreTrainedModel, Any]) -> None:
    from oversight.interp.trace import Intervention

    model, tok = lm
    hooks, before = hook_state(model), model_state(model)
    batch = tokenize(tok, TEXTS)
    with pytest.raises(Boom):  # an edit raising inside the forward pass
        forward_with(model, batch, capture=resolve_sites(model, ["resid.1", "pattern.1"]),
                     interventions=[zero_ablate("mlp.0"), Intervention("attn.1", explode)])
    assert hook_state(model) == hooks and model_state(model) == before
    with pytest.raises(SpecError):  # a bad site after good ones were registered
        forward_with(model, batch, capture=resolve_sites(model, "resid.1"), interventions=[zero_ablate("mlp.0"), zero_ablate("mlp.99")])
    assert hook_state(model) == hooks
    with pytest.raises(Boom), intervene(model, [zero_ablate("attn.0"), Intervention("mlp.0", explode)]), torch.inference_mode():
        model(input_ids=batch.input_ids)
    with pytest.raises(RuntimeError, match=r"user code"), intervene(model, [zero_ablate("attn.0")]):
        raise RuntimeError("user code")
    assert hook_state(model) == hooks and model_state(model) == before
