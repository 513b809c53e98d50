"""Train a learning monitor (embedding, stacked ensemble) on the human labels in the store.

    training = train_from_store(store, build_monitor("embedding"))
    run_monitor(store, monitor, presets=training.verdicts)

Every labelled transcript's latest label is a training example. The labelled transcripts
themselves are then scored **out of fold**: each by a model fitted on the other folds,
never by one that saw its label. An in-sample score of a training example is optimistic
(a model partly remembers its answers), and the fault-rate estimates compare the monitor's
scores on labelled and unlabelled transcripts: with in-sample scores on the labelled ones
the monitor would look better on exactly the items that calibrate it, and the estimate
would be biased. Out-of-fold scores are the cross-fitting of cross-prediction-powered
inference (Zrnic & Candès 2024). Every other transcript is scored by the model fitted on
all the labels.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from oversight.errors import SpecError
from oversight.monitors.base import Monitor, Trainable, Verdict
from oversight.store import Store
from oversight.store.aggregates import latest_labels

#: Fewer labels than this and a 384-dimensional regression mostly memorises them.
MIN_LABELS = 20
#: Each class needs this many examples: also the most folds cross-fitting can use.
MIN_PER_CLASS = 5
FOLDS = 5


@dataclass(frozen=True)
class StoreTraining:
    """A monitor trained on the store's labels, and its out-of-fold verdicts."""

    n_train: int
    n_faults: int
    folds: int
    version: str
    seconds: float
    #: transcript id → out-of-fold verdict, to store instead of an in-sample score.
    verdicts: Mapping[int, Verdict]
    #: Where the trained classifier was saved (None for monitors that cannot save).
    model_file: str | None = None

    def to_json(self) -> dict[str, Any]:
        out = dataclasses.asdict(self)
        del out["verdicts"]
        return out


def needs_training(monitor: Monitor) -> bool:
    return isinstance(monitor, Trainable) and not monitor.is_fitted


def train_from_store(
    store: Store,
    monitor: Monitor,
    *,
    save_dir: Path | None = None,
    seed: int = 0,
    progress: Callable[[int], None] | None = None,
) -> StoreTraining:
    """Fit ``monitor`` on every labelled transcript (latest label each) and score those out of
    fold. SpecError, saying how many labels are needed, when there are too few or one class.
    A monitor with ``save(path)`` is saved under ``save_dir`` (default: the cache dir)."""
    from oversight.monitors.evaluate import cross_fitted_verdicts

    if not isinstance(monitor, Trainable):
        raise SpecError(f"monitor {monitor.info.name!r} does not learn from labels")
    started = time.perf_counter()
    labels = latest_labels(store)
    n_faults = int(labels.labels.sum())
    n_fine = len(labels) - n_faults
    if len(labels) < MIN_LABELS or min(n_faults, n_fine) < MIN_PER_CLASS:
        raise SpecError(
            f"the {monitor.info.name} monitor learns from the labels in the store and needs at least "
            f"{MIN_LABELS} labelled transcripts with at least {MIN_PER_CLASS} faults and {MIN_PER_CLASS} "
            f"fine; {store.url} has {len(labels)} ({n_faults} faults, {n_fine} fine). Label more "
            "(`oversight queue` then `oversight label`), or pass --option model_file=PATH to use a "
            "saved classifier"
        )
    ids = [int(i) for i in labels.ids]
    found = store.get_transcripts(ids)
    transcripts = [found[i] for i in ids]
    y = [int(v) for v in labels.labels]
    folds = min(FOLDS, n_faults, n_fine)
    oof = cross_fitted_verdicts(monitor, transcripts, y, folds=folds, seed=seed, progress=progress)
    monitor.fit(transcripts, y)
    note = f" [out of fold: scored by a model trained on the other {folds - 1} of {folds} folds]"
    verdicts = {i: dataclasses.replace(v, evidence=v.evidence + note) if v.ok else v for i, v in zip(ids, oof, strict=True)}
    saved = _save(monitor, save_dir)
    return StoreTraining(
        n_train=len(y), n_faults=n_faults, folds=folds, version=monitor.info.version,
        seconds=round(time.perf_counter() - started, 2), verdicts=verdicts, model_file=saved,
    )


def _save(monitor: Monitor, save_dir: Path | None) -> str | None:
    save = getattr(monitor, "save", None)
    if not callable(save):
        return None
    from oversight.paths import cache_dir

    directory = save_dir or cache_dir() / "monitors"
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{monitor.info.name}-{monitor.info.version}.json"
    return str(save(path))
