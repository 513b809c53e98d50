"""A probe on disk: a JSON record (pydantic-checked) beside a safetensors file of its weights.

``probe.json`` says what the probe reads and how well it did: the model (spec and weights
fingerprint), the site and layer, the token position, the prompt template, what label 1 means, the
training data and the held-out accuracy. ``probe.safetensors`` holds the preprocessing (``mean``,
``scale``) and the direction (``weight``) as float64 arrays; the bias is in the JSON. Neither file
can run code when loaded (no pickle), and the JSON names the weights file by a bare file name next
to it, with its sha256, so a swapped or truncated weights file is refused.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from oversight.errors import DataError
from oversight.interp.contrast import ContrastTemplate
from oversight.interp.probes import Accuracy, LinearProbe, Position

FORMAT = "oversight.probe"
FORMAT_VERSION = 1
WEIGHT_KEYS = ("mean", "scale", "weight")


class ModelRef(BaseModel):
    model_config = ConfigDict(extra="forbid")
    spec: str
    fingerprint: str = Field(min_length=1)


class SavedAccuracy(BaseModel):
    model_config = ConfigDict(extra="forbid")
    value: float = Field(ge=0, le=1)
    ci_low: float = Field(ge=0, le=1)
    ci_high: float = Field(ge=0, le=1)
    n: int = Field(ge=1)
    split: str = "test"

    @classmethod
    def of(cls, acc: Accuracy, split: str) -> SavedAccuracy:
        return cls(value=acc.value, ci_low=acc.low, ci_high=acc.high, n=acc.n, split=split)


class SavedTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid")
    format: str
    answers: tuple[str, str] = ("Yes", "No")

    def build(self) -> ContrastTemplate:
        return ContrastTemplate(self.format, self.answers)


class ProbeRecord(BaseModel):
    """The JSON half of a saved probe."""

    model_config = ConfigDict(extra="forbid")
    format: Literal["oversight.probe"] = "oversight.probe"
    format_version: int = FORMAT_VERSION
    kind: str
    model: ModelRef
    site: str
    layer: int | None
    position: Literal["last"] | int = "last"
    template: SavedTemplate
    d_model: int = Field(ge=1)
    bias: float
    weights: str  # file name beside the JSON
    weights_sha256: str
    label_meaning: dict[str, str] = Field(default_factory=lambda: {"1": "true", "0": "false"})
    accuracy: SavedAccuracy | None = None
    dataset: str = ""
    n_train: int = 0
    details: dict[str, Any] = Field(default_factory=dict)
    created_at: str = ""

    @field_validator("weights")
    @classmethod
    def _bare_name(cls, value: str) -> str:
        if not value or Path(value).name != value or value in (".", ".."):
            raise ValueError("must be a bare file name next to the probe JSON")
        return value

    @property
    def probe_id(self) -> str:
        """Short id of these exact weights and settings (monitor versions use it)."""
        blob = json.dumps([self.weights_sha256, self.bias, self.site, self.position, self.template.format], sort_keys=True)
        return hashlib.sha256(blob.encode()).hexdigest()[:10]


class SavedProbe:
    """A loaded probe: its record and the :class:`LinearProbe` it defines."""

    def __init__(self, record: ProbeRecord, probe: LinearProbe, path: Path) -> None:
        self.record, self.probe, self.path = record, probe, path

    @property
    def template(self) -> ContrastTemplate:
        return self.record.template.build()


def save_probe(
    path: str | Path,
    probe: LinearProbe,
    *,
    model_spec: str,
    fingerprint: str,
    site: str,
    layer: int | None,
    position: Position,
    template: ContrastTemplate,
    accuracy: SavedAccuracy | None = None,
    dataset: str = "",
    n_train: int = 0,
) -> Path:
    """Write ``path`` (JSON) and ``path`` with suffix ``.safetensors``; returns the JSON path."""
    from safetensors.numpy import save_file

    target = Path(path)
    if target.suffix != ".json":
        target = target.with_suffix(target.suffix + ".json") if target.suffix else target.with_suffix(".json")
    target.parent.mkdir(parents=True, exist_ok=True)
    weights_path = target.with_suffix(".safetensors")
    arrays = {"mean": probe.mean, "scale": probe.scale, "weight": probe.weight}
    save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in arrays.items()}, str(weights_path))
    record = ProbeRecord(
        kind=probe.kind, model=ModelRef(spec=model_spec, fingerprint=fingerprint), site=site, layer=layer,
        position=position, template=SavedTemplate(format=template.format, answers=template.answers),
        d_model=int(probe.weight.shape[0]), bias=float(probe.bias), weights=weights_path.name,
        weights_sha256=_sha256(weights_path), accuracy=accuracy, dataset=dataset, n_train=n_train,
        details=_jsonable(probe.details), created_at=datetime.now(UTC).isoformat(timespec="seconds"),
    )
    target.write_text(record.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return target


def load_probe(path: str | Path) -> SavedProbe:
    """Read and check a saved probe; every problem names the file and the field."""
    from safetensors import SafetensorError
    from safetensors.numpy import load_file

    source = Path(path)
    try:
        text = source.read_text(encoding="utf-8")
    except OSError as exc:
        raise DataError(f"cannot read the probe: {exc.strerror or exc}", path=source) from None
    try:
        payload = json.loads(text)
    except json.JSONDecodeError as exc:
        raise DataError(f"not a saved probe (bad JSON: {exc.msg})", path=source, line=exc.lineno) from None
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise DataError(f"not a saved probe (format is not {FORMAT!r})", path=source, field="format")
    try:
        record = ProbeRecord.model_validate(payload)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"])
        raise DataError(f"{first['msg']} ({len(exc.errors())} problem(s))", path=source, field=where or None) from None
    weights_path = source.parent / record.weights
    if not weights_path.is_file():
        raise DataError(f"the weights file {weights_path} is missing", path=source, field="weights")
    if _sha256(weights_path) != record.weights_sha256:
        raise DataError(f"{weights_path.name} does not match the sha256 recorded in the probe (changed or truncated)",
                        path=source, field="weights_sha256")
    try:
        arrays = load_file(str(weights_path))
    except (SafetensorError, OSError) as exc:
        raise DataError(f"cannot read the weights: {exc}", path=weights_path) from None
    for key in WEIGHT_KEYS:
        value = arrays.get(key)
        if value is None or value.shape != (record.d_model,) or not np.isfinite(value).all():
            raise DataError(f"{key!r} must be {record.d_model} finite numbers", path=weights_path, field=key)
    if (arrays["scale"] <= 0).any():
        raise DataError("'scale' must be positive", path=weights_path, field="scale")
    probe = LinearProbe(record.kind, arrays["mean"].astype(np.float64), arrays["scale"].astype(np.float64),
                        arrays["weight"].astype(np.float64), record.bias, dict(record.details))
    return SavedProbe(record, probe, source)


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    if isinstance(value, np.generic):
        return value.item()
    return value
