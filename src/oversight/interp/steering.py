"""Steering: add a direction to the residual stream at one layer while the model runs.

A :class:`Direction` comes from the mean difference of two prompt sets' activations
(:func:`mean_difference`), from a saved probe (:func:`from_probe`) or from a saved direction
file. A :class:`Steering` is a direction with a coefficient: it adds ``coef x direction``
(or, normalised, ``coef x typical residual norm x unit direction``) at every position of
every forward pass, prompt and generated tokens alike.

:class:`SteeredModel` is a :class:`~oversight.models.base.Model` whose loglikelihood and
generate calls run inside the steering hooks, so any evaluation task runs on the steered
model unchanged. Its fingerprint carries the vector's hash and the coefficient: a response
cache or a run directory never mixes steered and unsteered answers.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from pydantic import BaseModel, ConfigDict, Field, ValidationError
from transformers import PreTrainedModel

from oversight.errors import DataError, SpecError
from oversight.evals.analysis import TaskComparison
from oversight.evals.task import Task
from oversight.interp.pages import Page
from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import Intervention, add, capture, intervene
from oversight.models.base import (
    GenerationRequest,
    GenerationResult,
    LoglikelihoodRequest,
    LoglikelihoodResult,
    Model,
    ModelInfo,
)
from oversight.models.cache import ResponseCache
from oversight.models.hf import HFModel

#: How a prompt set's activations are reduced: the last token, or the mean over its tokens
#: (special tokens such as BOS left out: their residual norm dwarfs every other token's).
Reduce = Literal["last", "mean"]
DIRECTION_FORMAT = "oversight.steering_direction"


@dataclass(frozen=True)
class Direction:
    """A vector in a site's activation space, with where it came from."""

    vector: torch.Tensor  # [width] float32
    site: str  # "resid.{i}" for directions made here; a probe's own site otherwise
    source: str  # "mean_difference", "probe:<path>", "file:<path>"
    fingerprint: str  # the model the direction was computed on
    #: Mean L2 norm of the site's activations over the prompts that made it (scale reference).
    reference_norm: float | None = None
    reduce: Reduce = "last"
    n_positive: int = 0
    n_negative: int = 0

    @property
    def norm(self) -> float:
        return float(self.vector.norm())

    def digest(self) -> str:
        """sha256 of the vector's float32 bytes and its site: what a fingerprint needs."""
        h = hashlib.sha256(self.site.encode())
        h.update(self.vector.detach().cpu().float().contiguous().numpy().tobytes())
        return h.hexdigest()

    def save(self, path: str | Path) -> Path:
        """Write the direction as JSON (the vector as a list of floats; no pickle)."""
        target = Path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        record = DirectionRecord(
            site=self.site, source=self.source, fingerprint=self.fingerprint, reference_norm=self.reference_norm,
            reduce=self.reduce, n_positive=self.n_positive, n_negative=self.n_negative,
            sha256=self.digest(), vector=self.vector.float().tolist(),
        )
        target.write_text(record.model_dump_json(indent=1) + "\n", encoding="utf-8")
        return target


class DirectionRecord(BaseModel):
    """A saved direction (the file :meth:`Direction.save` writes)."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["oversight.steering_direction"] = "oversight.steering_direction"
    site: str
    source: str
    fingerprint: str
    reference_norm: float | None = None
    reduce: Literal["last", "mean"] = "last"
    n_positive: int = Field(default=0, ge=0)
    n_negative: int = Field(default=0, ge=0)
    sha256: str
    vector: list[float] = Field(min_length=1)


def load_direction(path: str | Path) -> Direction:
    """A direction from a saved direction file or a saved probe (``oversight probe --save``)."""
    source = Path(path)
    try:
        payload = json.loads(source.read_text(encoding="utf-8"))
    except OSError as exc:
        raise DataError(f"cannot read the direction: {exc.strerror or exc}", path=source) from None
    except json.JSONDecodeError as exc:
        raise DataError(f"not a direction or probe file (bad JSON: {exc.msg})", path=source, line=exc.lineno) from None
    kind = payload.get("format") if isinstance(payload, dict) else None
    if kind == "oversight.probe":
        return from_probe(source)
    if kind != DIRECTION_FORMAT:
        raise DataError(f"not a direction or probe file (format is {kind!r}, expected {DIRECTION_FORMAT!r} or "
                        "'oversight.probe')", path=source, field="format")
    try:
        record = DirectionRecord.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        raise DataError(first["msg"], path=source, field=".".join(str(p) for p in first["loc"]) or None) from None
    vector = torch.tensor(record.vector, dtype=torch.float32)
    if not torch.isfinite(vector).all():
        raise DataError("the vector has non-finite values", path=source, field="vector")
    direction = Direction(vector, record.site, f"file:{source}", record.fingerprint, record.reference_norm,
                          record.reduce, record.n_positive, record.n_negative)
    if direction.digest() != record.sha256:
        raise DataError("the vector does not match its recorded sha256 (edited or truncated)", path=source, field="sha256")
    return direction


def from_probe(path: str | Path) -> Direction:
    """The unit direction of a saved probe, at the probe's own site."""
    from oversight.interp.probe_file import load_probe

    saved = load_probe(path)
    vector = torch.tensor(np.asarray(saved.probe.direction), dtype=torch.float32)
    return Direction(vector, saved.record.site, f"probe:{path}", saved.record.model.fingerprint)


def mean_difference(
    model: PreTrainedModel,
    tokenizer: Any,
    positive: Sequence[str],
    negative: Sequence[str],
    layer: int,
    *,
    reduce: Reduce = "last",
    fingerprint: str = "",
    batch_size: int = 16,
) -> Direction:
    """``mean(positive) - mean(negative)`` of the residual stream after ``layer``."""
    if not positive or not negative:
        raise SpecError("a mean-difference direction needs at least one positive and one negative prompt")
    site = f"resid.{layer}"
    resolve_sites(model, site)  # a clear error for a layer out of range
    site = f"resid.{layer % layout(model).n_layers}"
    pos = site_activations(model, tokenizer, positive, site, reduce=reduce, batch_size=batch_size)
    neg = site_activations(model, tokenizer, negative, site, reduce=reduce, batch_size=batch_size)
    vector = pos.mean(0) - neg.mean(0)
    norm = float(torch.cat([pos, neg]).norm(dim=-1).mean())
    return Direction(vector, site, "mean_difference", fingerprint, norm, reduce, len(positive), len(negative))


def site_activations(
    model: PreTrainedModel, tokenizer: Any, texts: Sequence[str], site: str, *, reduce: Reduce = "last", batch_size: int = 16
) -> torch.Tensor:
    """One float32 vector per text at ``site``: its last token or its mean over non-special tokens."""
    if reduce == "last":
        return capture(model, tokenizer, texts, site, positions="last", batch_size=batch_size)[site]
    special = set(getattr(tokenizer, "all_special_ids", []))
    masks = [[t not in special for t in tokenizer(text)["input_ids"]] for text in texts]
    for text, mask in zip(texts, masks, strict=True):
        if not any(mask):
            raise SpecError(f"prompt {text!r} has only special tokens: nothing to average")
    acts = capture(model, tokenizer, texts, site, positions=masks, batch_size=batch_size)
    return torch.stack([acts.of(site, i).mean(0) for i in range(len(texts))])


def reference_norm(model: PreTrainedModel, tokenizer: Any, texts: Sequence[str], site: str) -> float:
    """Mean L2 norm of the site's activations over the texts' non-special tokens."""
    return float(site_activations(model, tokenizer, texts, site, reduce="mean").norm(dim=-1).mean())


@dataclass(frozen=True)
class Steering:
    """A direction and how strongly to add it.

    Without ``normalise`` the added vector is ``coef x direction`` (a mean difference at
    coef 1 moves the negative mean onto the positive one). With it, the direction is made
    unit length and scaled by ``coef x reference_norm``: coef 0.5 adds half a typical
    residual vector, whatever the direction's own length.
    """

    direction: Direction
    coef: float
    normalise: bool = False

    def __post_init__(self) -> None:
        if self.normalise and not self.direction.reference_norm:
            raise SpecError("normalised steering needs the direction's reference norm (set it with reference_norm())")

    @property
    def vector(self) -> torch.Tensor:
        d = self.direction
        if not self.normalise:
            return self.coef * d.vector
        assert d.reference_norm is not None  # checked in __post_init__
        return self.coef * d.reference_norm * d.vector / (d.vector.norm() or 1.0)

    def intervention(self) -> Intervention:
        return add(self.direction.site, self.vector, positions="all")

    def key(self) -> str:
        """Identifies exactly what is added: vector hash, site, coefficient and scaling."""
        blob = json.dumps([self.direction.digest(), self.direction.site, self.coef, self.normalise,
                           self.direction.reference_norm if self.normalise else None])
        return hashlib.sha256(blob.encode()).hexdigest()[:16]

    def describe(self) -> str:
        unit = " x residual norm" if self.normalise else ""
        return f"{self.direction.site} {self.coef:+g}{unit} x {self.direction.source}"


@contextmanager
def steered(model: PreTrainedModel, steering: Steering | None) -> Iterator[None]:
    """Every forward pass inside the block carries the steering (nothing if None); hooks
    are removed on exit, even on error."""
    if steering is None:
        yield
        return
    device = next(model.parameters()).device
    moved = replace(steering, direction=replace(steering.direction, vector=steering.direction.vector.to(device)))
    with intervene(model, [moved.intervention()]):
        yield


class SteeredModel:
    """An :class:`HFModel` behind the Model interface with the steering on every call."""

    backend = "hf+steering"

    def __init__(self, base: HFModel, steering: Steering) -> None:
        if steering.direction.fingerprint and steering.direction.fingerprint != base.info.fingerprint:
            raise SpecError(
                f"the direction was computed on another model ({steering.direction.fingerprint[:23]}…), "
                f"not {base.info.spec} ({base.info.fingerprint[:23]}…)"
            )
        layout(base.model)  # a clear error for a model whose layers cannot be found
        self.base, self.steering = base, steering
        info = base.info
        self._info = ModelInfo(
            spec=f"{info.spec}+steer[{steering.describe()}]",
            backend=self.backend,
            fingerprint=f"{info.fingerprint}+steer:{steering.key()}",
            n_parameters=info.n_parameters,
            dtype=info.dtype,
            extra={**info.extra, "steering": steering.describe(), "steering_key": steering.key()},
        )

    @property
    def info(self) -> ModelInfo:
        return self._info

    @property
    def model(self) -> PreTrainedModel:
        return self.base.model

    @property
    def tokenizer(self) -> Any:
        return self.base.tokenizer

    def loglikelihood(
        self, requests: Sequence[LoglikelihoodRequest], progress: Callable[[int], None] | None = None
    ) -> list[LoglikelihoodResult]:
        with steered(self.base.model, self.steering):
            return self.base.loglikelihood(requests, progress)

    def generate(
        self, requests: Sequence[GenerationRequest], progress: Callable[[int], None] | None = None
    ) -> list[GenerationResult]:
        with steered(self.base.model, self.steering):
            return self.base.generate(requests, progress)


def generate_texts(
    model: HFModel, prompts: Sequence[str], *, steering: Steering | None = None, max_tokens: int = 40
) -> list[str]:
    """Greedy continuations of the prompts, steered or not."""
    requests = [GenerationRequest(prompt=p, max_tokens=max_tokens) for p in prompts]
    target = SteeredModel(model, steering) if steering is not None else model
    return [r.text for r in target.generate(requests)]


@dataclass(frozen=True)
class SteeringEval:
    """One steered run of the tasks against the unsteered run: paired differences per metric."""

    steering: Steering
    run_dir: Path
    comparisons: list[TaskComparison]


def evaluate_steering(
    base: HFModel,
    steerings: Sequence[Steering],
    tasks: Sequence[Task],
    out_dir: str | Path,
    *,
    limit: int | None = None,
    seed: int = 0,
    cache: ResponseCache | None = None,
    progress: Callable[[int, int, str], None] | None = None,
) -> tuple[Path, list[SteeringEval]]:
    """Run the tasks unsteered (``out_dir/baseline``) and with each steering
    (``out_dir/steer_<coef>``), then compare each steered run with the baseline, item by item.

    Judged tasks are judged by the unsteered model. Run directories resume like ``oversight
    eval``'s; with ``cache`` the answers go through the response cache, keyed apart by the
    steered model's fingerprint.
    """
    from oversight.evals.analysis import compare_runs
    from oversight.evals.runner import Runner, RunSettings
    from oversight.models.cache import CachedModel

    def wrap(model: Model) -> Model:
        return CachedModel(model, cache) if cache is not None else model

    root = Path(out_dir)
    settings = RunSettings(seed=seed, limit=limit)
    judge = wrap(base)
    baseline = root / "baseline"
    Runner(judge, baseline, settings=settings, progress=progress).run(tasks)
    evals: list[SteeringEval] = []
    for steering in steerings:
        run_dir = root / f"steer_{steering.coef:g}{'_norm' if steering.normalise else ''}"
        Runner(wrap(SteeredModel(base, steering)), run_dir, settings=settings, judge=judge, progress=progress).run(tasks)
        evals.append(SteeringEval(steering, run_dir, compare_runs(baseline, run_dir)))
    return baseline, evals


@dataclass(frozen=True)
class GenerationComparison:
    """One prompt's greedy continuation without steering and with each steering."""

    prompt: str
    baseline: str
    steered: list[tuple[float, str]]  # (coef, text) in the order of the steerings


def compare_generations(
    model: HFModel, prompts: Sequence[str], steerings: Sequence[Steering], *, max_tokens: int = 40
) -> list[GenerationComparison]:
    baseline = generate_texts(model, prompts, max_tokens=max_tokens)
    by_steering = [generate_texts(model, prompts, steering=s, max_tokens=max_tokens) for s in steerings]
    return [
        GenerationComparison(p, baseline[i], [(s.coef, texts[i]) for s, texts in zip(steerings, by_steering, strict=True)])
        for i, p in enumerate(prompts)
    ]


def steering_page(
    model_spec: str,
    direction: Direction,
    steerings: Sequence[Steering],
    generations: Sequence[GenerationComparison],
    evals: Sequence[SteeringEval] = (),
    *,
    command: str | None = None,
    fingerprint: str = "",
) -> Page:
    """Generations before and after, and each task metric's paired difference with its CI."""
    from oversight.interp.pages import Plot, Table, line_plot_svg

    unit = " x residual norm" if steerings and steerings[0].normalise else ""
    gen_rows: list[list[str | int | float | bool | None]] = [
        [g.prompt, g.baseline, *(text for _, text in g.steered)] for g in generations
    ]
    tables = [Table("Generations", ["prompt", "unsteered", *(f"coef {s.coef:g}{unit}" for s in steerings)], gen_rows,
                    caption="Greedy continuations; the steering vector is added at every position, prompt and generated tokens.")]
    figures: list[Plot] = []
    if evals:
        rows: list[list[str | int | float | bool | None]] = []
        for e in evals:
            for c in e.comparisons:
                p = c.comparison
                arrow = "↑" if c.higher_is_better else "↓"
                rows.append([e.steering.coef, c.task, f"{c.metric} {arrow}", p.mean_a, p.mean_b, p.diff,
                             f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}]", p.p_value, p.n])
        tables.append(Table("Effect on tasks", ["coef", "task", "metric", "unsteered", "steered", "difference", "95% CI", "p", "n"],
                            rows, caption="Paired by item (steered minus unsteered) on the same samples."))
        for (task, metric) in dict.fromkeys((c.task, c.metric) for c in evals[0].comparisons):
            points = [(e.steering.coef, c.comparison) for e in evals for c in e.comparisons if (c.task, c.metric) == (task, metric)]
            xs = [0.0] + [x for x, _ in points]
            order = sorted(range(len(xs)), key=lambda i: xs[i])
            diffs = [0.0] + [p.diff for _, p in points]
            lows = [0.0] + [p.ci_low for _, p in points]
            highs = [0.0] + [p.ci_high for _, p in points]
            svg = line_plot_svg([xs[i] for i in order], {metric: ([diffs[i] for i in order], [lows[i] for i in order],
                                [highs[i] for i in order])}, f"{task}: {metric}", xlabel=f"coefficient{unit}",
                                ylabel="steered − unsteered", hline=0.0, integer_x=False)
            figures.append(Plot(f"{task} · {metric}", svg, "Paired difference with its 95% CI; 0 = no effect."))
    return Page(
        title=f"Steering at {direction.site}",
        kind="steer",
        description=(
            f"A direction ({direction.source}) added at {direction.site} during every forward pass, "
            f"scaled by each coefficient{unit}."
        ),
        summary=[
            ("model", model_spec), ("site", direction.site), ("direction", direction.source),
            ("direction norm", direction.norm), ("reference residual norm", direction.reference_norm),
            ("prompt sets", f"{direction.n_positive} positive, {direction.n_negative} negative ({direction.reduce})"
             if direction.n_positive else None),
            ("coefficients", ", ".join(f"{s.coef:g}" for s in steerings) + unit),
            ("added vector norms", ", ".join(f"{float(s.vector.norm()):.3g}" for s in steerings)),
        ],
        figures=figures,
        tables=tables,
        command=command,
        extra={"fingerprint": fingerprint, "direction sha256": direction.digest()[:16]},
    )
