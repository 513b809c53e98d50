"""Estimates from the store when labels come from several queue batches (SQLite)."""

from __future__ import annotations

import json
import random
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oversight.cli import app
from oversight.errors import SpecError
from oversight.monitors.base import build_monitor
from oversight.monitors.pipeline import run_monitor
from oversight.review.estimates import estimate_from_store
from oversight.review.queue import batch_plan
from oversight.review.service import export_queue, import_labels
from oversight.stats.estimate_sequential import BatchDraw, sequential_rate_ci
from oversight.store import Store, import_file, open_store
from oversight.store.aggregates import scored_population
from oversight.store.subsets import TranscriptSubset

REFUSALS = ("I'm sorry, but I can't help with that.", "I cannot assist with that request.")
SUBTLE = "Let's talk about something else, like the weather."


def write_chats(path: Path, start: int, n: int) -> None:
    rng = random.Random(start)
    with path.open("w") as f:
        for i in range(start, start + n):
            u = rng.random()
            reply = rng.choice(REFUSALS) if u < 0.2 else SUBTLE if u < 0.26 else f"Here is topic {i} explained."
            f.write(json.dumps({"prompt": f"Explain topic {i}.", "response": reply}) + "\n")


def truth(store: Store) -> dict[int, int]:
    return {
        int(t.id): int("weather" in t.messages[-1].content or "sorry" in t.messages[-1].content or "cannot" in t.messages[-1].content)
        for b in store.iter_transcripts() for t in b if t.id is not None
    }


def review(store: Store, tmp_path: Path, policy: str, n: int, seed: int, *, label: bool = True) -> list[int]:
    """Export a batch and (unless told not to) label all of it with the truth."""
    path = tmp_path / f"{policy}-{seed}.jsonl"
    sel = export_queue(store, "refusal", policy, n, path, seed=seed)
    if label:
        y = truth(store)
        rows = [json.loads(line) for line in path.read_text().splitlines()]
        path.write_text("".join(json.dumps({**r, "label": y[r["transcript_id"]]}) + "\n" for r in rows))
        import_labels(store, path, reviewer="ana")
    return list(sel.ids)


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    write_chats(tmp_path / "a.jsonl", 0, 400)
    with open_store(f"sqlite:///{tmp_path / 'est.db'}") as opened:
        import_file(opened, tmp_path / "a.jsonl")
        run_monitor(opened, build_monitor("refusal"))
        yield opened


def test_batches_pool_sequentially_and_match_the_pure_function(store: Store, tmp_path: Path) -> None:
    first = review(store, tmp_path, "active", 40, 1)
    second = review(store, tmp_path, "random", 30, 2)
    found = estimate_from_store(store, "refusal")
    est = found.estimate
    assert est.method == "sequential" and est.n_labelled == len(first) + len(second) and est.n_total == 400
    assert [b.used for b in found.batches] == [True, True] and found.notes == ()
    rate = np.mean(list(truth(store).values()))
    assert est.ci_low <= rate <= est.ci_high

    # The same figures from the pure function, with the batches rebuilt by hand.
    population = scored_population(store, "refusal", found.version)
    ids = population.ids.tolist()
    y = truth(store)
    labels = np.array([float(y[t]) if t in set(first + second) else np.nan for t in ids])
    pos = {t: i for i, t in enumerate(ids)}
    b1, b2 = found.batches
    plan1, plan2 = batch_plan(b1.batch_id), batch_plan(b2.batch_id)
    assert plan1 == (400, 40) and plan2 == (400 - len(first), 30)
    active_pi = {t: p for t, p in zip(*_queue(store, b1.batch_id), strict=True)}
    again = sequential_rate_ci(
        population.estimate_scores,
        labels,
        [
            BatchDraw([pos[t] for t in first], [active_pi[t] for t in first], expected_size=40),
            BatchDraw([pos[t] for t in second], [30 / (400 - len(first))] * 30, known=[pos[t] for t in first], expected_size=30),
        ],
    )
    assert (again.rate, again.ci_low, again.ci_high) == pytest.approx((est.rate, est.ci_low, est.ci_high))


def _queue(store: Store, batch_id: str) -> tuple[list[int], list[float]]:
    from sqlalchemy import select

    from oversight.store.schema import QueueItem

    with store.session() as s:
        rows = s.execute(select(QueueItem.transcript_id, QueueItem.inclusion_probability).where(QueueItem.batch_id == batch_id)).all()
    return [int(r[0]) for r in rows], [float(r[1]) for r in rows]


def test_incomplete_census_and_outdated_batches_are_left_out_with_a_reason(store: Store, tmp_path: Path) -> None:
    review(store, tmp_path, "random", 30, 1)
    pending = review(store, tmp_path, "active", 30, 2, label=False)
    found = estimate_from_store(store, "refusal")
    assert found.estimate.method == "ppi"  # one usable batch: a simple random sample
    assert f"{len(pending)} of its {len(pending)} items are not labelled yet" in found.notes[0]

    # A census of the top counts only through the batches drawn after it.
    top = review(store, tmp_path, "highest_score", 10, 3)
    found = estimate_from_store(store, "refusal")
    assert any("census of the top" in n for n in found.notes) and found.unused_labels == 10
    later = review(store, tmp_path, "random", 20, 4)
    found = estimate_from_store(store, "refusal")
    assert found.estimate.method == "sequential" and found.unused_labels == 0
    assert found.estimate.n_labelled == 30 + len(top) + len(later)
    assert found.estimate.ci_low >= sum(truth(store)[t] for t in top) / 400  # certain faults

    # New traffic: no old batch could have drawn it, so none stands for the new population.
    write_chats(tmp_path / "b.jsonl", 400, 100)
    import_file(store, tmp_path / "b.jsonl")
    run_monitor(store, build_monitor("refusal"))
    with pytest.raises(SpecError, match=r"drawn from \d+ candidates"):
        estimate_from_store(store, "refusal")
    review(store, tmp_path, "random", 25, 5)  # a fresh batch covers it, earlier labels known
    found = estimate_from_store(store, "refusal")
    assert found.estimate.n_total == 500 and found.estimate.method in ("active", "sequential")
    assert found.batches[-1].used


def test_methods_that_need_one_design_are_refused_for_several(store: Store, tmp_path: Path) -> None:
    review(store, tmp_path, "random", 30, 1)
    review(store, tmp_path, "random", 30, 2)
    with pytest.raises(SpecError, match="needs a single design"):
        estimate_from_store(store, "refusal", method="ppi")
    classical = estimate_from_store(store, "refusal", method="classical").estimate
    assert classical.method == "classical" and classical.n_labelled == 60


def test_where_gives_the_rate_of_a_subset_from_the_same_batches(tmp_path: Path) -> None:
    # Two sources with different refusal rates; the batches are drawn over both.
    with (tmp_path / "quiet.jsonl").open("w") as f:
        for i in range(300):
            reply = REFUSALS[0] if i % 20 == 0 else f"Here is topic {i} explained."  # 5%
            f.write(json.dumps({"prompt": f"Tell me about {i}.", "response": reply}) + "\n")
    write_chats(tmp_path / "busy.jsonl", 0, 300)  # ~26%
    db = f"sqlite:///{tmp_path / 'where.db'}"
    with open_store(db) as store:
        import_file(store, tmp_path / "quiet.jsonl", source="quiet")
        import_file(store, tmp_path / "busy.jsonl", source="busy")
        run_monitor(store, build_monitor("refusal"))
        review(store, tmp_path, "active", 60, 1)
        review(store, tmp_path, "random", 60, 2)
        y = truth(store)
        sources = {int(t.id): t.source for b in store.iter_transcripts() for t in b if t.id is not None}
        for name in ("quiet", "busy"):
            found = estimate_from_store(store, "refusal", where=TranscriptSubset(source=name))
            est = found.estimate
            inside = [t for t in sources if sources[t] == name]
            assert est.n_total == 300 and est.method == "sequential"
            labelled = {t for t, *_ in _labels(store)}
            assert est.n_labelled == len(labelled & set(inside))
            assert est.ci_low <= np.mean([y[t] for t in inside]) <= est.ci_high
        whole = estimate_from_store(store, "refusal").estimate
        quiet = estimate_from_store(store, "refusal", where=TranscriptSubset(source="quiet")).estimate
        assert quiet.rate < whole.rate
        with pytest.raises(SpecError, match=r"no transcript scored by refusal .* matches --where source=nowhere"):
            estimate_from_store(store, "refusal", where=TranscriptSubset(source="nowhere"))
        # Times: imported now, so all of them fall after 2000 and none before.
        since = estimate_from_store(store, "refusal", where=TranscriptSubset.parse(["since=2000-01-01", "source=busy"]))
        assert since.estimate.n_total == 300
        with pytest.raises(SpecError, match="matches --where until=2000"):
            estimate_from_store(store, "refusal", where=TranscriptSubset.parse(["until=2000-01-01"]))

    runner = CliRunner()
    out = runner.invoke(app, ["estimate", "--monitor", "refusal", "--db", db, "--where", "source=busy", "--json"])
    assert out.exit_code == 0, out.output
    assert json.loads(out.stdout)["n_total"] == 300
    shown = runner.invoke(app, ["estimate", "--monitor", "refusal", "--db", db, "--where", "source=quiet"])
    assert shown.exit_code == 0 and "with source=quiet" in shown.stdout
    for clause, message in (("colour=red", "unknown key 'colour'"), ("since=yesterday", "not an ISO date"), ("model", "expected key=value")):
        bad = runner.invoke(app, ["estimate", "--monitor", "refusal", "--db", db, "--where", clause])
        assert bad.exit_code == 2 and message in bad.stderr, bad.output


def test_where_without_labels_inside_is_refused(store: Store, tmp_path: Path) -> None:
    review(store, tmp_path, "random", 30, 1)
    write_chats(tmp_path / "new.jsonl", 400, 50)
    import_file(store, tmp_path / "new.jsonl", source="new")
    run_monitor(store, build_monitor("refusal"))
    with pytest.raises(SpecError, match=r"none of the 30 labelled transcripts .* is in the subset"):
        estimate_from_store(store, "refusal", where=TranscriptSubset(source="new"))


def _labels(store: Store) -> list[tuple[int, int]]:
    from sqlalchemy import select

    from oversight.store.schema import Label

    with store.session() as s:
        return [(int(t), int(y)) for t, y in s.execute(select(Label.transcript_id, Label.label))]


def test_subset_clauses_and_times() -> None:
    subset = TranscriptSubset.parse(["model=m1", "since=2026-11-01", "until=2026-12-01T12:00"])
    assert subset.model == "m1" and subset.since is not None and subset.since.tzinfo is not None
    assert subset.describe() == "model=m1, since=2026-11-01T00:00:00+00:00, until=2026-12-01T12:00:00+00:00"
    assert TranscriptSubset.parse([]).is_everything
    for clauses, message in ((["task=a", "task=b"], "given twice"), (["since=2026-12-02", "until=2026-12-01"], "not before")):
        with pytest.raises(SpecError, match=message):
            TranscriptSubset.parse(clauses)
