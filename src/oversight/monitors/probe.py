"""The probe monitor: a linear probe on a local model's own activations, run over transcripts.

A probe trained with ``oversight probe --save probe.json`` reads one site (say ``resid.6``) at one
token of a prompt built from a statement. This monitor builds the same prompt from each
transcript's text (by default the last assistant reply), runs the model up to that layer, and
turns the probe's P(true) into a verdict. By default a fault is what the probe calls *false*
("the model's own activations say this statement is false"); ``fault_label=1`` flags what it
calls true instead, for probes of a behaviour rather than of truth.

A probe means something only on the weights it was trained on: the model's fingerprint must equal
the one the probe file records, or the monitor refuses to start. The model is the one the probe
names unless ``model=SPEC`` says otherwise (a copy of the same weights elsewhere, say).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal

from oversight.errors import OversightError, SpecError
from oversight.monitors.base import MonitorInfo, Verdict, label_at
from oversight.transcripts import TranscriptLike, last_index, plain_text

TextView = Literal["last_assistant", "last_user", "all"]
VIEWS: tuple[TextView, ...] = ("last_assistant", "last_user", "all")


class ProbeModelMismatch(OversightError):
    """The model's weights are not the ones the probe was trained on."""


class ProbeMonitor:
    """A saved probe scored on a local model's activations; label 1 = the probe's fault label."""

    INFO = MonitorInfo(
        name="probe",
        version="1",
        detects="what the model's own activations say about the text (by default: the probe reads it as false)",
        cost="model",
        description="A linear probe (oversight probe --save) on a local model's activations at one "
        "layer and token; refuses models whose weights differ from the probe's.",
    )

    def __init__(
        self,
        probe: str | Path,
        model: Any = None,
        *,
        text: TextView = "last_assistant",
        fault_label: int = 0,
        threshold: float = 0.5,
        dtype: str = "float32",
        batch_size: int = 16,
    ) -> None:
        """``probe``: a file written by ``oversight probe --save``; ``model``: a spec (default: the
        one the probe records) or an already loaded local model."""
        from oversight.interp.probe_file import load_probe
        from oversight.interp.sites import layout, resolve_sites

        if text not in VIEWS:
            raise SpecError(f"text must be one of {', '.join(VIEWS)}, got {text!r}")
        if fault_label not in (0, 1):
            raise SpecError(f"fault_label must be 0 (flag what the probe calls false) or 1, got {fault_label!r}")
        self.saved = load_probe(probe)
        record = self.saved.record
        self.lm = _local_model(model if model is not None else record.model.spec, dtype)
        found = self.lm.info.fingerprint
        if found != record.model.fingerprint:
            raise ProbeModelMismatch(
                f"the probe {probe} was trained on {record.model.spec!r} with weights {record.model.fingerprint}, "
                f"but {self.lm.info.spec!r} has weights {found}; a probe only means something on the weights it "
                "was trained on: train a new probe on this model (oversight probe --save)"
            )
        resolve_sites(self.lm.model, record.site)  # a clear error if the site is not in this model
        width = layout(self.lm.model).d_model
        if record.d_model != width and record.site.startswith(("resid", "attn", "mlp", "embed", "final_norm")):
            raise ProbeModelMismatch(f"the probe reads {record.d_model} features but this model's width is {width}")
        self.text: TextView = text
        self.fault_label = fault_label
        self.threshold = threshold
        self.batch_size = batch_size

    @property
    def info(self) -> MonitorInfo:
        record = self.saved.record
        meaning = record.label_meaning.get(str(self.fault_label), str(self.fault_label))
        acc = f", test accuracy {record.accuracy.value:.2f}" if record.accuracy else ""
        return MonitorInfo(
            name=self.INFO.name,
            # Each probe file and setting is its own monitor version: verdicts of two probes never mix.
            version=f"{self.INFO.version}-{record.probe_id}-{self.text}-{self.fault_label}"[:64],
            detects=f"the probe reads the text as {meaning}",
            cost=self.INFO.cost,
            description=f"{record.kind} probe at {record.site} ({record.position} token) of {record.model.spec}{acc}; "
            f"reads {self.text.replace('_', ' ')}",
        )

    def score(self, batch: Sequence[TranscriptLike]) -> list[Verdict]:
        from oversight.interp.probes import prompt_features

        record, template = self.saved.record, self.saved.template
        views = [_view(t, self.text) for t in batch]
        todo = [i for i, (content, _) in enumerate(views) if content.strip()]
        verdicts: list[Verdict | None] = [None] * len(batch)
        if todo:
            prompts = [template.prompt(views[i][0]) for i in todo]
            feats = prompt_features(self.lm.model, self.lm.tokenizer, prompts, [record.site],
                                    position=record.position, batch_size=self.batch_size)
            p_true = self.saved.probe.predict_proba(feats[record.site])
            meaning = record.label_meaning.get(str(self.fault_label), "fault")
            for i, p in zip(todo, p_true, strict=True):
                score = float(p) if self.fault_label == 1 else 1.0 - float(p)
                content, index = views[i]
                verdicts[i] = Verdict(
                    score=score, label=label_at(score, self.threshold),
                    evidence=f"P({meaning})={score:.3f} from the {record.kind} probe at {record.site} "
                    f"reading the {self.text.replace('_', ' ')}",
                    span=(index, 0, len(content)) if index is not None else None,
                )
        for i, verdict in enumerate(verdicts):
            if verdict is None:
                verdicts[i] = Verdict(score=0.0, label=0, evidence=f"no {self.text.replace('_', ' ')} text to probe")
        return [v for v in verdicts if v is not None]


def _local_model(model: Any, dtype: str) -> Any:
    if isinstance(model, str):
        from oversight.models.registry import load_model

        model = load_model(model, dtype=dtype)
    if not (hasattr(model, "model") and hasattr(model, "tokenizer")):
        backend = getattr(getattr(model, "info", None), "backend", type(model).__name__)
        raise SpecError(f"the probe monitor needs a local model (default or hf:<dir>) to read activations; got a {backend!r} model")
    return model


def _view(transcript: TranscriptLike, view: TextView) -> tuple[str, int | None]:
    """(the text the probe reads, the index of the message it came from or None)."""
    if view == "all":
        return plain_text(transcript), None
    index = last_index(transcript, "assistant" if view == "last_assistant" else "user")
    return ("", None) if index is None else (transcript.messages[index].content, index)
