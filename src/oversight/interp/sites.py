"""Where things live inside a transformers causal LM: named sites over its modules.

Every family keeps the same pieces under different names (``model.layers`` / ``transformer.h`` /
``gpt_neox.layers``; ``self_attn`` / ``attn`` / ``attention``; ``down_proj`` / ``c_proj`` /
``dense_4h_to_h``). :class:`Layout` finds them once per model, so the rest of ``interp/`` speaks
in short, family-independent site names:

=================  =============================================================  ==============
site               what it captures                                               shape per token
=================  =============================================================  ==============
``embed``          the residual stream before the first layer (token embeddings,  d_model
                   scaled on Gemma, plus position embeddings on GPT-2)
``resid.{i}``      the residual stream after layer ``i`` (the layer's output)     d_model
``attn.{i}``       the attention block's output of layer ``i``                    d_model
``mlp.{i}``        the MLP block's output of layer ``i``                          d_model
``heads.{i}``      each head's output before the attention output projection      n_heads*head_dim
``neurons.{i}``    the MLP's hidden activations (input of its down projection)    d_mlp
``pattern.{i}``    attention probabilities of layer ``i`` (every head, query by   heads × keys
                   key); computed with eager attention for that pass, since fused
                   kernels never materialise them
``final_norm``     the final norm's output (what the output layer reads)          d_model
=================  =============================================================  ==============

On Gemma, ``attn.{i}`` and ``mlp.{i}`` are read before the post-attention / post-feedforward
norms, so the residual stream adds ``norm(attn.{i})``, not ``attn.{i}`` itself.

Any module path (``model.layers.3.self_attn.q_proj``) or glob over paths (``model.layers.*.mlp``)
is a site too; it captures the module's output.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
from dataclasses import dataclass
from typing import Literal

from torch import nn
from transformers import PreTrainedModel

from oversight.errors import SpecError

#: "weights": the attention module's second output (its probabilities), for pattern sites.
HookKind = Literal["output", "input", "weights"]

_ATTENTION = ("self_attn", "attn", "attention")
_ATTENTION_OUT = ("o_proj", "c_proj", "dense", "out_proj")
_MLP = ("mlp",)
_MLP_OUT = ("down_proj", "c_proj", "dense_4h_to_h", "fc2", "fc_out")
_FINAL_NORM = ("norm", "ln_f", "final_layer_norm", "final_layernorm")
_ALIAS = re.compile(r"^(resid|attn|mlp|heads|neurons|pattern)\.(-?\d+)$")


@dataclass(frozen=True)
class Site:
    """A place to read or change activations: a module and whether its input or output."""

    name: str  # as the user wrote it (alias or module path)
    module: str  # the module path inside the model
    hook: HookKind
    layer: int | None  # the decoder layer the site belongs to; None before/after the layers


@dataclass(frozen=True)
class Layout:
    """The paths of a causal LM's parts, found by looking at its modules."""

    layers: str  # path of the ModuleList of decoder layers
    n_layers: int
    embed: str
    final_norm: str | None
    attention: str  # child name of a layer
    attention_out: str  # child name of the attention module
    mlp: str
    mlp_out: str
    n_heads: int
    head_dim: int
    d_model: int

    def layer(self, i: int) -> str:
        return f"{self.layers}.{i}"


def layout(model: PreTrainedModel) -> Layout:
    """Find the decoder layers and their parts; a clear error for models that are not causal LMs."""
    config = model.config.get_text_config() if hasattr(model, "config") else None
    if config is None:
        raise SpecError(f"{type(model).__name__} is not a transformers model (it has no config)")
    n_layers = int(getattr(config, "num_hidden_layers", 0) or getattr(config, "n_layer", 0))
    modules = dict(model.named_modules())
    layer_lists = [name for name, m in modules.items() if isinstance(m, nn.ModuleList) and len(m) == n_layers]
    if not layer_lists:
        raise SpecError(f"cannot find the {n_layers} decoder layers of {type(model).__name__}")
    layers = layer_lists[0]
    first = modules[f"{layers}.0"]
    attention = _child(first, _ATTENTION, f"{layers}.0", "attention")
    mlp = _child(first, _MLP, f"{layers}.0", "MLP")
    attention_out = _child(getattr(first, attention), _ATTENTION_OUT, f"{layers}.0.{attention}", "attention output projection")
    mlp_out = _child(getattr(first, mlp), _MLP_OUT, f"{layers}.0.{mlp}", "MLP down projection")
    parent = layers.rsplit(".", 1)[0] if "." in layers else ""
    final_norm = next((f"{parent}.{n}".lstrip(".") for n in _FINAL_NORM if f"{parent}.{n}".lstrip(".") in modules), None)
    embedding = model.get_input_embeddings()
    embed = next(name for name, m in modules.items() if m is embedding)
    n_heads = int(getattr(config, "num_attention_heads", 0) or getattr(config, "n_head", 0))
    d_model = int(getattr(config, "hidden_size", 0) or getattr(config, "n_embd", 0))
    head_dim = int(getattr(config, "head_dim", 0) or d_model // n_heads)
    return Layout(layers, n_layers, embed, final_norm, attention, attention_out, mlp, mlp_out, n_heads, head_dim, d_model)


def resolve_sites(model: PreTrainedModel, names: str | list[str] | tuple[str, ...]) -> list[Site]:
    """Sites for aliases, module paths and globs, in the order given; unknown names list near matches."""
    lay = layout(model)
    modules = [name for name, _ in model.named_modules() if name]
    wanted = [names] if isinstance(names, str) else list(names)
    sites: list[Site] = []
    for name in wanted:
        for site in _resolve_one(name, lay, modules):
            if site not in sites:
                sites.append(site)
    return sites


def residual_sites(model: PreTrainedModel, layers: list[int] | None = None) -> list[Site]:
    """The residual stream after each chosen layer (all by default)."""
    n = layout(model).n_layers
    return resolve_sites(model, [f"resid.{i}" for i in (range(n) if layers is None else layers)])


def _resolve_one(name: str, lay: Layout, modules: list[str]) -> list[Site]:
    if name == "embed":
        return [Site(name, lay.layer(0), "input", None)]
    if name == "final_norm":
        if lay.final_norm is None:
            raise SpecError("this model has no final norm module")
        return [Site(name, lay.final_norm, "output", None)]
    if m := _ALIAS.match(name):
        kind, i = m.group(1), int(m.group(2))
        if not -lay.n_layers <= i < lay.n_layers:
            raise SpecError(f"layer {i} is out of range: this model has {lay.n_layers} layers (0–{lay.n_layers - 1})")
        i %= lay.n_layers
        layer = lay.layer(i)
        site = {
            "resid": Site(name, layer, "output", i),
            "attn": Site(name, f"{layer}.{lay.attention}", "output", i),
            "mlp": Site(name, f"{layer}.{lay.mlp}", "output", i),
            "heads": Site(name, f"{layer}.{lay.attention}.{lay.attention_out}", "input", i),
            "neurons": Site(name, f"{layer}.{lay.mlp}.{lay.mlp_out}", "input", i),
            "pattern": Site(name, f"{layer}.{lay.attention}", "weights", i),
        }[kind]
        return [site]
    matches = [m for m in modules if fnmatch.fnmatchcase(m, name)] if any(c in name for c in "*?[") else [m for m in modules if m == name]
    if not matches:
        near = difflib.get_close_matches(name, [*modules, "embed", "final_norm", "resid.0", "attn.0", "mlp.0", "heads.0", "neurons.0", "pattern.0"], n=5, cutoff=0.5)
        hint = f"; near matches: {', '.join(near)}" if near else "; use resid.N, attn.N, mlp.N, heads.N, neurons.N, pattern.N, embed, final_norm or a module path"
        raise SpecError(f"no module named {name!r} in this model{hint}")
    return [Site(m, m, "output", _layer_of(m, lay)) for m in matches]


def _layer_of(module: str, lay: Layout) -> int | None:
    prefix = lay.layers + "."
    if not module.startswith(prefix):
        return None
    return int(module[len(prefix):].split(".", 1)[0])


def _child(module: nn.Module, candidates: tuple[str, ...], where: str, what: str) -> str:
    for name in candidates:
        if hasattr(module, name) and isinstance(getattr(module, name), nn.Module):
            return name
    children = ", ".join(n for n, _ in module.named_children())
    raise SpecError(f"cannot find the {what} in {where} (children: {children})")
