"""Eval runs for the web app: the run directories under the configured runs dir.

Runs are named by their directory name and looked up only among the direct children of the
runs dir, so a name from a URL can never reach another path (``..``, ``/``, symlinks out).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from oversight.errors import DataError, OversightError, SpecError
from oversight.evals.records import CONFIG_FILE, read_config, read_results


@dataclass(frozen=True)
class RunMetric:
    task: str
    metric: str
    value: float
    ci_low: float
    ci_high: float
    n: int


@dataclass(frozen=True)
class RunSummary:
    name: str
    model: str | None
    tasks: list[str]
    created: str | None
    finished: bool
    metrics: list[RunMetric]
    #: Why the run could not be read (it is listed anyway, so a broken run is visible).
    error: str | None


def list_runs(runs_dir: Path) -> list[RunSummary]:
    """Every run directory directly under ``runs_dir``, newest first."""
    if not runs_dir.is_dir():
        return []
    out = []
    for child in runs_dir.iterdir():
        if child.is_dir() and (child / CONFIG_FILE).is_file() and _inside(runs_dir, child):
            out.append(summarise(child))
    return sorted(out, key=lambda r: (r.created or "", r.name), reverse=True)


def summarise(run_dir: Path) -> RunSummary:
    try:
        config = read_config(run_dir)
    except OversightError as e:
        return RunSummary(run_dir.name, None, [], None, False, [], str(e))
    metrics: list[RunMetric] = []
    finished = True
    try:
        results = read_results(run_dir)
        for task, result in results.tasks.items():
            for metric, m in result.metrics.items():
                metrics.append(RunMetric(task, metric, m.value, m.ci_low, m.ci_high, m.n))
    except DataError:
        finished = False
    return RunSummary(run_dir.name, config.model.spec, [t.name for t in config.tasks], config.created, finished, metrics, None)


def run_path(runs_dir: Path, name: str) -> Path:
    """The run directory called ``name``; SpecError unless it is a run directly under the runs dir."""
    if not name or name in (".", "..") or "/" in name or "\\" in name or "\x00" in name:
        raise SpecError(f"no run {name!r}")
    path = runs_dir / name
    if not path.is_dir() or not (path / CONFIG_FILE).is_file() or not _inside(runs_dir, path):
        raise SpecError(f"no run {name!r} in {runs_dir}")
    return path


def _inside(root: Path, path: Path) -> bool:
    try:
        return path.resolve().parent == root.resolve()
    except OSError:
        return False
