"""What a model says versus what its activations know: zero-shot, CCS and supervised probes on
the same items, per layer.

For every statement the contrast template gives a prompt (the template up to the answer) and a
contrast pair ``x+`` / ``x-`` (the prompt completed with the "true" and the "false" answer). One
capture pass over the pairs reads, at every chosen layer,

* the last token of ``x+`` and of ``x-`` — what CCS (and the "logistic on pairs" baseline) read;
* the prompt's token at the probe position inside ``x+`` — by causality this *is* the prompt's
  activation (the tokens after it cannot change it), so the supervised probes, which read the
  prompt alone as a monitor will, cost no second pass. Where the prompt's tokens are not a prefix
  of the pair's (an answer glued to the previous word), the prompts get a pass of their own.

Zero-shot is the model's own answer: ``log P(true answer | prompt) - log P(false answer | prompt)``
through the models' loglikelihood interface, predicted true when positive; "calibrated" moves that
cut to the one with the best *training* accuracy (a base model often prefers one answer).

Splits are by group (:func:`~oversight.interp.contrast.split_by_group`): every method fits on the
``fit`` items, the best layer of each method is the one with the highest ``validation`` accuracy,
and ``test`` is only ever scored. CCS never sees labels while it trains; the fit labels only orient it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch

from oversight.interp.ccs import fit_ccs_layers
from oversight.interp.contrast import ContrastTemplate, Dataset, Split, split_by_group
from oversight.interp.probes import (
    Accuracy,
    Array,
    Position,
    accuracy,
    best_threshold,
    fit_logistic,
    fit_mean_difference,
    prompt_features,
)
from oversight.interp.trace import capture
from oversight.models.base import LoglikelihoodRequest

METHODS = ("zero_shot", "zero_shot_calibrated", "ccs", "logistic", "mean_difference", "logistic_pairs")
#: Called with (stage, done, total).
StageProgress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ContrastFeatures:
    """Per site, [n, d] arrays: the prompt's activation and the last token of x+ and x-."""

    prompt: dict[str, Array]
    pos: dict[str, Array]
    neg: dict[str, Array]
    shared_pass: bool  # prompt features came from the pairs' pass


@dataclass(frozen=True)
class MethodScore:
    validation: Accuracy | None
    test: Accuracy

    def to_dict(self) -> dict[str, Any]:
        return {"validation": self.validation.to_dict() if self.validation else None, "test": self.test.to_dict()}


@dataclass
class Comparison:
    dataset: str
    n: int
    split: Split
    template: ContrastTemplate
    position: Position
    sites: list[str]
    zero_shot: dict[str, MethodScore]  # "zero_shot", "zero_shot_calibrated"
    per_site: dict[str, dict[str, MethodScore]]  # site -> method -> score
    best: dict[str, str]  # method -> site chosen on validation
    details: dict[str, Any] = field(default_factory=dict)

    def best_score(self, method: str) -> MethodScore:
        return self.zero_shot[method] if method in self.zero_shot else self.per_site[self.best[method]][method]

    def to_json(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "n": self.n,
            "split": self.split.to_dict(),
            "template": self.template.to_dict(),
            "position": self.position,
            "zero_shot": {k: v.to_dict() for k, v in self.zero_shot.items()},
            "per_layer": [{"site": s, **{m: v.to_dict() for m, v in scores.items()}} for s, scores in self.per_site.items()],
            "best": {m: {"site": self.best[m], **self.best_score(m).to_dict()} for m in self.best},
            "best_layer_rule": "highest validation accuracy (earliest layer among ties); test is never used to choose",
            "details": self.details,
        }


def contrast_features(
    model: Any,
    tokenizer: Any,
    texts: Sequence[str],
    template: ContrastTemplate,
    sites: Sequence[str],
    *,
    position: Position = "last",
    batch_size: int = 16,
    progress: Callable[[int], None] | None = None,
) -> ContrastFeatures:
    """Prompt and pair activations of each site in one pass over the 2n completed texts."""
    prompts = [template.prompt(t) for t in texts]
    pairs = [template.pair(t) for t in texts]
    pair_texts = [p for p, _ in pairs] + [n for _, n in pairs]
    prompt_ids = [tokenizer(p)["input_ids"] for p in prompts]
    pair_ids = [tokenizer(t)["input_ids"] for t in pair_texts]
    n = len(texts)
    shared = all(pair_ids[i][: len(prompt_ids[i])] == prompt_ids[i] and len(pair_ids[i]) > len(prompt_ids[i]) for i in range(n))
    masks: list[list[bool]] = []
    for i, ids in enumerate(pair_ids):
        mask = [False] * len(ids)
        mask[-1] = True
        if shared and i < n:
            length = len(prompt_ids[i])
            index = length - 1 if position == "last" else int(position)
            if not -length <= index < length:
                raise IndexError(f"position {position} is outside prompt {i} of {length} tokens")
            mask[index % length] = True
        masks.append(mask)
    acts = capture(model, tokenizer, pair_texts, list(sites), positions=masks, batch_size=batch_size,
                   dtype=torch.float32, progress=progress)
    assert acts.offsets is not None
    prompt: dict[str, Array] = {}
    pos: dict[str, Array] = {}
    neg: dict[str, Array] = {}
    for site, tensor in acts.sites.items():
        rows = tensor.float().numpy().astype(np.float64)
        last = np.asarray(acts.offsets[1:]) - 1
        pos[site], neg[site] = rows[last[:n]], rows[last[n:]]
        if shared:
            prompt[site] = rows[np.asarray(acts.offsets[:n])]  # the first marked token of each x+
    if not shared:
        prompt = prompt_features(model, tokenizer, prompts, sites, position=position, batch_size=batch_size, progress=progress)
    return ContrastFeatures(prompt, pos, neg, shared)


def zero_shot_margins(
    lm: Any, texts: Sequence[str], template: ContrastTemplate, *, progress: Callable[[int], None] | None = None
) -> Array:
    """log P(true answer | prompt) - log P(false answer | prompt) per statement."""
    requests = []
    for text in texts:
        prompt = template.prompt(text)
        requests += [LoglikelihoodRequest(prompt, template.continuation(a)) for a in template.answers]
    results = lm.loglikelihood(requests, progress=progress)
    ll = np.asarray([r.logprob for r in results], dtype=np.float64).reshape(len(texts), 2)
    return np.asarray(ll[:, 0] - ll[:, 1], dtype=np.float64)


def compare(
    lm: Any,
    dataset: Dataset,
    sites: Sequence[str],
    *,
    template: ContrastTemplate | None = None,
    position: Position = "last",
    restarts: int = 10,
    epochs: int = 1000,
    seed: int = 0,
    test_fraction: float = 0.3,
    validation_fraction: float = 0.25,
    batch_size: int = 16,
    progress: StageProgress | None = None,
) -> Comparison:
    """Zero-shot, CCS, logistic, mean difference (and logistic on the CCS features) on one split."""
    template = template or ContrastTemplate()
    split = split_by_group(dataset.statements, test_fraction=test_fraction, validation_fraction=validation_fraction, seed=seed)
    y = np.asarray(dataset.labels, dtype=np.int64)
    fit, val, test = (np.asarray(i, dtype=np.int64) for i in (split.fit, split.validation, split.test))
    timings: dict[str, float] = {}

    def tick(stage: str, total: int) -> Callable[[int], None]:
        done = [0]

        def step(k: int) -> None:
            done[0] += k
            if progress is not None:
                progress(stage, done[0], total)

        return step

    started = time.perf_counter()
    margins = zero_shot_margins(lm, dataset.texts, template, progress=tick("zero-shot", 2 * len(dataset)))
    timings["zero_shot_s"] = time.perf_counter() - started
    cut = best_threshold(margins[fit], y[fit])
    zero = {
        "zero_shot": _score((margins > 0).astype(int), y, val, test),
        "zero_shot_calibrated": _score((margins >= cut).astype(int), y, val, test),
    }

    started = time.perf_counter()
    feats = contrast_features(lm.model, lm.tokenizer, dataset.texts, template, sites, position=position,
                              batch_size=batch_size, progress=tick("capture", 2 * len(dataset)))
    timings["capture_s"] = time.perf_counter() - started

    started = time.perf_counter()
    names = list(feats.pos)
    ccs = fit_ccs_layers(np.stack([feats.pos[s][fit] for s in names]), np.stack([feats.neg[s][fit] for s in names]),
                         y[fit], restarts=restarts, epochs=epochs, seed=seed)
    timings["ccs_s"] = time.perf_counter() - started

    started = time.perf_counter()
    groups = [dataset.statements[i].group for i in fit]
    per_site: dict[str, dict[str, MethodScore]] = {}
    step = tick("probes", len(names))
    for k, site in enumerate(names):
        xp, xn, xq = feats.pos[site], feats.neg[site], feats.prompt[site]
        logistic = fit_logistic(xq[fit], y[fit], groups=groups, seed=seed)
        mean_diff = fit_mean_difference(xq[fit], y[fit])
        pair_diff = _pair_features(ccs[k], xp, xn)
        logistic_pairs = fit_logistic(pair_diff[fit], y[fit], groups=groups, seed=seed)
        per_site[site] = {
            "ccs": _score(ccs[k].predict(xp, xn), y, val, test),
            "logistic": _score(logistic.predict(xq), y, val, test),
            "mean_difference": _score(mean_diff.predict(xq), y, val, test),
            "logistic_pairs": _score(logistic_pairs.predict(pair_diff), y, val, test),
        }
        step(1)
    timings["probes_s"] = time.perf_counter() - started
    best = {m: _best_site(per_site, names, m) for m in ("ccs", "logistic", "mean_difference", "logistic_pairs")}
    details = {
        "timings": timings,
        "prompt_features_from_pair_pass": feats.shared_pass,
        "ccs": {"restarts": restarts, "epochs": epochs, "loss_per_site": {s: ccs[k].loss for k, s in enumerate(names)},
                "sign_per_site": {s: ccs[k].sign for k, s in enumerate(names)},
                "sign_rule": "orientation with the higher accuracy on the fit split (never test)"},
        "zero_shot_calibrated_threshold": cut,
        "zero_shot_mean_margin": float(margins.mean()),
        "seed": seed,
    }
    return Comparison(dataset.name, len(dataset), split, template, position, names, zero, per_site, best, details)


def _pair_features(probe: Any, xp: Array, xn: Array) -> Array:
    """The normalised difference x+ - x- CCS reads (the same per-side statistics as the CCS probe)."""
    zp, zn = probe.normalise(xp, xn)
    return np.asarray(zp - zn, dtype=np.float64)


def _score(pred: Any, y: Any, val: Any, test: Any) -> MethodScore:
    pred = np.asarray(pred, dtype=np.int64)
    return MethodScore(accuracy(pred[val], y[val]) if len(val) else None, accuracy(pred[test], y[test]))


def _best_site(per_site: dict[str, dict[str, MethodScore]], sites: list[str], method: str) -> str:
    """The site with the highest validation accuracy; the earliest among ties (max keeps the first)."""

    def val(site: str) -> float:
        score = per_site[site][method].validation
        return score.value if score is not None else -1.0

    return max(sites, key=val)
