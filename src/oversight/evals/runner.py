"""Run tasks on a model into a run directory that survives being killed.

Samples are processed in fixed chunks; each finished chunk is appended to
``samples.jsonl`` and fsynced before the next starts. A re-run with the same
directory reads what is there (ignoring a line torn by ``kill -9``), redoes the chunks
that miss samples (writing only the missing ones), and recomputes ``results.json`` from
all records, so the results of an interrupted run equal an uninterrupted one's.
"""

from __future__ import annotations

import json
import os
import random
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch

from oversight import __version__
from oversight.errors import DataError, OversightError
from oversight.evals.records import (
    CONFIG_FILE,
    RESULTS_FILE,
    SAMPLES_FILE,
    MetricResult,
    ModelRecord,
    RunConfig,
    RunResults,
    SampleRecord,
    TaskRecord,
    TaskResult,
    read_config,
    read_samples,
)
from oversight.evals.rubrics import JudgeInput, judge_scores
from oversight.evals.task import JudgeRubric, Output, Sample, Task
from oversight.models.base import (
    ChatMessage,
    GenerationRequest,
    LoglikelihoodRequest,
    Model,
    ModelInfo,
)
from oversight.stats.intervals import summarize_metric

#: Samples per chunk: large enough to batch well, small enough to lose little on a kill.
CHUNK_SIZE = {"multiple_choice": 64, "generate": 8}


class RunMismatchError(OversightError):
    """The output directory holds a different run (other model or other tasks)."""


@dataclass(frozen=True)
class RunSettings:
    seed: int = 0
    limit: int | None = None
    confidence: float = 0.95


def model_record(info: ModelInfo) -> ModelRecord:
    return ModelRecord(
        spec=info.spec,
        backend=info.backend,
        fingerprint=info.fingerprint,
        n_parameters=info.n_parameters,
        dtype=info.dtype,
    )


def task_record(task: Task) -> TaskRecord:
    return TaskRecord(
        name=task.name,
        kind=task.kind,
        hash=task.content_hash(),
        source=task.source,
        description=task.description,
        n_samples=len(task.samples),
        metrics={m.name: m.higher_is_better for m in task.metrics},
    )


def requests_for(sample: Sample, task: Task) -> int:
    """How many model calls a sample costs (for the progress bar)."""
    if task.kind == "multiple_choice":
        return len(sample.choices) * (2 if sample.baseline_prompt is not None else 1)
    return 1 + (2 if task.judge else 0)


class Runner:
    def __init__(
        self,
        model: Model,
        out_dir: Path,
        *,
        settings: RunSettings | None = None,
        judge: Model | None = None,
        progress: Callable[[int, int, str], None] | None = None,
    ) -> None:
        """``progress(done, total, description)`` is called as model requests finish."""
        self.model = model
        self.judge = judge
        self.out_dir = out_dir
        self.settings = settings or RunSettings()
        self.progress = progress

    # ------------------------------------------------------------------ setup
    def _prepare(self, tasks: Sequence[Task]) -> RunConfig:
        config = RunConfig(
            model=model_record(self.model.info),
            judge=model_record(self.judge.info) if self.judge and any(t.judge for t in tasks) else None,
            tasks=[task_record(t) for t in tasks],
            seed=self.settings.seed,
            limit=self.settings.limit,
            oversight_version=__version__,
            created=datetime.now(UTC).isoformat(timespec="seconds"),
        )
        self.out_dir.mkdir(parents=True, exist_ok=True)
        if (self.out_dir / CONFIG_FILE).exists():
            old = read_config(self.out_dir)
            self._check_same_run(old, config)
            config = config.model_copy(update={"created": old.created})
        _write_json_atomic(self.out_dir / CONFIG_FILE, config.model_dump(mode="json"))
        return config

    def _check_same_run(self, old: RunConfig, new: RunConfig) -> None:
        problems = []
        if old.model.fingerprint != new.model.fingerprint or old.model.dtype != new.model.dtype:
            problems.append(f"model {old.model.spec} ({old.model.fingerprint[:19]}, {old.model.dtype}) "
                            f"vs {new.model.spec} ({new.model.fingerprint[:19]}, {new.model.dtype})")
        old_tasks = {t.name: t.hash for t in old.tasks}
        for t in new.tasks:
            if t.name in old_tasks and old_tasks[t.name] != t.hash:
                problems.append(f"task {t.name} changed (hash {old_tasks[t.name]} vs {t.hash})")
        if old.seed != new.seed:
            problems.append(f"seed {old.seed} vs {new.seed}")
        if problems:
            raise RunMismatchError(
                f"{self.out_dir} holds a different run: " + "; ".join(problems)
                + ". Use another --out directory to keep both."
            )

    # -------------------------------------------------------------------- run
    def run(self, tasks: Sequence[Task]) -> RunResults:
        tasks = [t.limited(self.settings.limit) for t in tasks]
        names = [t.name for t in tasks]
        if len(set(names)) != len(names):
            raise DataError(f"two tasks share a name: {sorted(n for n in names if names.count(n) > 1)}")
        config = self._prepare(tasks)
        _seed_everything(self.settings.seed)
        done = _load_done(self.out_dir)
        # Chunks have fixed boundaries in dataset order and a partly done chunk runs whole
        # (only its missing records are written): a batched backend's float rounding can
        # depend on what is batched together, and this keeps a resumed run's numbers equal
        # to an uninterrupted run's.
        todo = {
            t.name: [c for c in _chunks(list(t.samples), CHUNK_SIZE[t.kind]) if any((t.name, s.doc_id) not in done for s in c)]
            for t in tasks
        }
        total = sum(requests_for(s, t) for t in tasks for c in todo[t.name] for s in c)
        counter = _Counter(total, self.progress)
        with (self.out_dir / SAMPLES_FILE).open("a", encoding="utf-8") as sink:
            for task in tasks:
                counter.describe(task.name)
                for chunk in todo[task.name]:
                    outputs = self._run_chunk(task, chunk, counter)
                    lines = [
                        _record(task, s, o).model_dump_json()
                        for s, o in zip(chunk, outputs, strict=True) if (task.name, s.doc_id) not in done
                    ]
                    sink.write("\n".join(lines) + "\n")
                    sink.flush()
                    os.fsync(sink.fileno())
        results = summarize_run(self.out_dir, config, confidence=self.settings.confidence)
        _write_json_atomic(self.out_dir / RESULTS_FILE, results.model_dump(mode="json"))
        return results

    def _run_chunk(self, task: Task, chunk: list[Sample], counter: _Counter) -> list[Output]:
        if task.kind == "multiple_choice":
            return self._multiple_choice(chunk, counter)
        return self._generate(task, chunk, counter)

    def _multiple_choice(self, chunk: list[Sample], counter: _Counter) -> list[Output]:
        requests = [LoglikelihoodRequest(s.prompt, c) for s in chunk for c in s.choices]
        requests += [
            LoglikelihoodRequest(s.baseline_prompt, c)
            for s in chunk if s.baseline_prompt is not None for c in s.choices
        ]
        results = iter(self.model.loglikelihood(requests, progress=counter.advance))
        main = [[next(results) for _ in s.choices] for s in chunk]
        outputs = []
        for s, rs in zip(chunk, main, strict=True):
            base = [next(results).logprob for _ in s.choices] if s.baseline_prompt is not None else []
            outputs.append(Output(
                loglikelihoods=tuple(r.logprob for r in rs),
                is_greedy=tuple(r.is_greedy for r in rs),
                baseline_loglikelihoods=tuple(base),
            ))
        return outputs

    def _generate(self, task: Task, chunk: list[Sample], counter: _Counter) -> list[Output]:
        g = task.generation
        requests = [
            GenerationRequest(
                prompt="" if g.chat else s.prompt,
                messages=(ChatMessage("user", s.prompt),) if g.chat else (),
                max_tokens=g.max_tokens,
                temperature=g.temperature,
                top_p=g.top_p,
                stop=g.stop,
                seed=self.settings.seed * 1_000_003 + s.doc_id,
            )
            for s in chunk
        ]
        texts = [r.text for r in self.model.generate(requests, progress=counter.advance)]
        scores: list[float | None] = [None] * len(chunk)
        if task.judge is not None:
            scores = list(self._judge(task.judge, chunk, texts, counter))
        return [Output(text=t, judge_score=j) for t, j in zip(texts, scores, strict=True)]

    def _judge(self, rubric: JudgeRubric, chunk: list[Sample], texts: list[str], counter: _Counter) -> Iterator[float]:
        """The rubric's score for each generation (see :func:`oversight.evals.rubrics.judge_scores`).

        A task that frames its request (a plain-text conversation) records the bare request
        as ``metadata["request"]``; the rubric sees it as ``request``.
        """
        judge = self.judge or self.model
        inputs = []
        for s, text in zip(chunk, texts, strict=True):
            request = s.metadata.get("request")
            inputs.append(JudgeInput(s.prompt, text, None if request is None else str(request)))
        yield from judge_scores(judge, rubric, inputs, progress=counter.advance)


def summarize_run(out_dir: Path, config: RunConfig, *, confidence: float = 0.95) -> RunResults:
    """results.json from the sample records: each metric with its interval."""
    records = read_samples(out_dir)
    by_task: dict[str, list[SampleRecord]] = {}
    for r in records:
        by_task.setdefault(r.task, []).append(r)
    tasks: dict[str, TaskResult] = {}
    for t in config.tasks:
        rows = sorted(by_task.get(t.name, []), key=lambda r: r.doc_id)
        metrics: dict[str, MetricResult] = {}
        for name, higher in t.metrics.items():
            values = np.array([r.scores[name] for r in rows if name in r.scores], dtype=float)
            values = values[~np.isnan(values)]
            if len(values) == 0:
                continue
            binary = bool(np.isin(values, (0.0, 1.0)).all())
            s = summarize_metric(values, binary=binary, confidence=confidence, seed=config.seed)
            metrics[name] = MetricResult(
                value=s.value, stderr=s.stderr, ci_low=s.ci_low, ci_high=s.ci_high,
                n=s.n, method=s.method, higher_is_better=higher,
            )
        tasks[t.name] = TaskResult(description=t.description, n_samples=len(rows), metrics=metrics)
    return RunResults(model=config.model, tasks=tasks, confidence=confidence)


# ----------------------------------------------------------------- helpers
class _Counter:
    def __init__(self, total: int, callback: Callable[[int, int, str], None] | None) -> None:
        self.total, self.done, self.callback, self.description = total, 0, callback, ""

    def describe(self, description: str) -> None:
        self.description = description
        if self.callback:
            self.callback(self.done, self.total, description)

    def advance(self, n: int) -> None:
        self.done += n
        if self.callback:
            self.callback(self.done, self.total, self.description)


def _record(task: Task, sample: Sample, output: Output) -> SampleRecord:
    scores = task.scorer(sample, output)
    mc = task.kind == "multiple_choice"
    target = sample.target
    return SampleRecord(
        task=task.name,
        doc_id=sample.doc_id,
        prompt=sample.prompt,
        choices=list(sample.choices),
        target=list(target) if isinstance(target, tuple) else target,
        loglikelihoods=list(output.loglikelihoods) if mc else None,
        is_greedy=list(output.is_greedy) if mc else None,
        baseline_prompt=sample.baseline_prompt,
        baseline_loglikelihoods=list(output.baseline_loglikelihoods) if output.baseline_loglikelihoods else None,
        prediction=output.prediction() if mc else output.text,
        scores={k: float(v) for k, v in scores.items()},
        metadata={**dict(sample.metadata), **({"judge_score": output.judge_score} if output.judge_score is not None else {})},
    )


def _load_done(out_dir: Path) -> set[tuple[str, int]]:
    """(task, doc_id) already recorded; a torn last line is cut off so appends stay valid."""
    path = out_dir / SAMPLES_FILE
    if not path.exists():
        return set()
    data = path.read_bytes()
    if data and not data.endswith(b"\n"):
        keep = data.rfind(b"\n") + 1
        with path.open("r+b") as fh:
            fh.truncate(keep)
    return {(r.task, r.doc_id) for r in read_samples(out_dir)}


def _chunks(items: list[Sample], size: int) -> Iterator[list[Sample]]:
    for k in range(0, len(items), size):
        yield items[k : k + size]


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def _write_json_atomic(path: Path, payload: object) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)
