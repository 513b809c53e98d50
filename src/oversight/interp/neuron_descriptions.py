"""One-line descriptions of neurons written by a model, scored on held-out text.

The writer model reads a neuron's top contexts (the peak token marked ``[[…]]``) and
continues "the neuron fires on:". The description is then scored the way a simulator
would: the same model answers, for each held-out text, whether a neuron described so
would fire on it (loglikelihood of " Yes" minus " No"), and that score is compared with the
neuron's real maximum activation on the text: Spearman correlation, and AUROC for telling
the held-out texts in the neuron's top quarter from the rest.

Two controls: every description is also scored against the *other* neurons' activations
(a description that predicts its own neuron no better than the others' says nothing
specific), and a plain list of the neuron's peak tokens is scored the same way (what a
written description should beat). With a small base model as writer expect weak
descriptions.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
import torch
from scipy.stats import spearmanr

from oversight.interp.neurons import Neuron, NeuronResults, stream_neurons
from oversight.models.base import GenerationRequest, LoglikelihoodRequest, Model
from oversight.models.hf import HFModel
from oversight.monitors.evaluate import auroc

PROMPT = (
    "Below are excerpts of text where one neuron of a language model fires strongly. "
    "The token where it fires most is marked with [[ ]].\n\n{excerpts}\n\n"
    "Summary: in a few words, this neuron fires on the words \""
)
JUDGE = "A neuron of a language model fires on: {description}\n\nText: {text}\n\nDoes this neuron fire on the text? Answer:"
#: Held-out texts in a neuron's top quarter (by max activation) are its positives for AUROC.
TOP_FRACTION = 0.25


def excerpt(neuron: Neuron, limit: int = 8) -> str:
    lines = []
    for i, ctx in enumerate(neuron.contexts[:limit], start=1):
        text = "".join(ctx.tokens[: ctx.focus]) + "[[" + ctx.tokens[ctx.focus] + "]]" + "".join(ctx.tokens[ctx.focus + 1 :])
        lines.append(f"Excerpt {i}: {' '.join(text.split())}")
    return "\n".join(lines)


def write_descriptions(writer: Model, neurons: Sequence[Neuron], *, max_tokens: int = 16) -> list[str]:
    """The writer's words up to the closing quote (or line end), markers removed."""
    requests = [GenerationRequest(prompt=PROMPT.format(excerpts=excerpt(n)), max_tokens=max_tokens, stop=('"', "\n")) for n in neurons]
    texts = [r.text.replace("[[", "").replace("]]", "") for r in writer.generate(requests)]
    return [" ".join(t.split()).strip(" .") or "(nothing)" for t in texts]


def token_description(neuron: Neuron, limit: int = 5) -> str:
    """The baseline a written description should beat: the neuron's peak tokens, listed."""
    return "the tokens " + ", ".join(repr(t.strip() or t) for t, _ in neuron.top_tokens[:limit])


def max_per_text(model: HFModel, texts: Sequence[str], layer: int, neurons: Sequence[int], *, max_tokens: int = 128) -> torch.Tensor:
    """[texts, neurons]: each neuron's largest activation on each text (special tokens left out)."""
    out = torch.full((len(texts), len(neurons)), float("nan"))
    special = torch.tensor(list(getattr(model.tokenizer, "all_special_ids", [])), dtype=torch.long)
    chosen = torch.tensor(list(neurons), dtype=torch.long)
    for batch, raw in stream_neurons(model.model, model.tokenizer, texts, layer, max_tokens=max_tokens):
        keep = batch.attention_mask.bool() & ~torch.isin(batch.input_ids, special)
        acts = torch.where(keep[..., None], raw[..., chosen], float("-inf"))
        out[batch.indices] = acts.max(dim=1).values
    return out


def judge_scores(judge: Model, descriptions: Sequence[str], texts: Sequence[str], progress: Callable[[int], None] | None = None) -> np.ndarray:
    """[descriptions, texts]: log P(" Yes") - log P(" No") that a neuron so described fires on the text."""
    requests = [
        LoglikelihoodRequest(JUDGE.format(description=d, text=" ".join(t.split())[:600]), answer)
        for d in descriptions for t in texts for answer in (" Yes", " No")
    ]
    results = judge.loglikelihood(requests, progress=progress)
    lp = np.array([r.logprob for r in results]).reshape(len(descriptions), len(texts), 2)
    return np.asarray(lp[..., 0] - lp[..., 1])


def _scores(predicted: np.ndarray, actual: np.ndarray) -> tuple[float, float]:
    """Spearman correlation and top-quarter AUROC; NaN where the activations do not vary."""
    if np.ptp(actual) == 0 or np.ptp(predicted) == 0:
        return float("nan"), float("nan")
    rho = float(spearmanr(predicted, actual).statistic)
    threshold = np.quantile(actual, 1 - TOP_FRACTION)
    labels = (actual >= threshold).astype(int)
    return rho, auroc(labels, predicted) if 0 < labels.sum() < len(labels) else float("nan")


def describe_neurons(
    model: HFModel,
    results: NeuronResults,
    heldout: Sequence[str],
    *,
    n: int = 10,
    writer: Model | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> dict[str, Any]:
    """Describe the ``n`` most active neurons and score each description on ``heldout``.

    Sets ``description`` and ``description_score`` on those neurons of ``results`` and
    returns a summary with the mismatched-description control.
    """
    writer = writer or model
    chosen = [neuron for neuron in results.ranked()[:n] if neuron.contexts]
    if not chosen or len(heldout) < 4:
        raise ValueError("describing neurons needs neurons with contexts and at least 4 held-out texts")
    total = len(chosen) * (1 + 4 * len(heldout))
    done = 0

    def advance(k: int, what: str) -> None:
        nonlocal done
        done += k
        if progress is not None:
            progress(done, total, what)

    descriptions = write_descriptions(writer, chosen)
    baselines = [token_description(x) for x in chosen]
    advance(len(chosen), "describing neurons")
    actual = max_per_text(model, heldout, results.layer, [x.index for x in chosen], max_tokens=results.max_tokens).numpy()
    predicted = judge_scores(writer, descriptions + baselines, heldout, progress=lambda k: advance(k, "scoring descriptions"))
    rows: list[dict[str, Any]] = []
    matched: list[float] = []
    mismatched: list[float] = []
    tokens: list[float] = []
    for i, neuron in enumerate(chosen):
        rho, area = _scores(predicted[i], actual[:, i])
        base_rho, base_area = _scores(predicted[len(chosen) + i], actual[:, i])
        neuron.description = descriptions[i]
        neuron.description_score = {"spearman": round(rho, 4), "auroc": round(area, 4)}
        rows.append({"neuron": neuron.index, "description": descriptions[i], "spearman": rho, "auroc": area,
                     "token_list": baselines[i], "token_list_spearman": base_rho, "token_list_auroc": base_area})
        matched.append(rho)
        tokens.append(base_rho)
        mismatched += [_scores(predicted[i], actual[:, j])[0] for j in range(len(chosen)) if j != i]
    return {
        "summary": {
            "writer": writer.info.spec, "n_neurons": len(chosen), "n_heldout": len(heldout),
            "mean_spearman": _mean(matched),
            "mean_auroc": _mean([r["auroc"] for r in rows]),
            "mismatched_mean_spearman": _mean(mismatched),
            "token_list_mean_spearman": _mean(tokens),
            "token_list_mean_auroc": _mean([r["token_list_auroc"] for r in rows]),
        },
        "neurons": rows,
    }


def _mean(values: Sequence[float]) -> float | None:
    """Mean over the defined values; None when there are none."""
    finite = [v for v in values if not np.isnan(v)]
    return float(np.mean(finite)) if finite else None
