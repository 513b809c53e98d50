"""The interactive labeller, driven by real keypresses (Textual's Pilot) on a real SQLite store."""

from __future__ import annotations

import asyncio
import io
import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from rich.console import Console
from rich.text import Text
from sqlalchemy import select
from typer.testing import CliRunner

from oversight.cli import app
from oversight.errors import DataError, SpecError
from oversight.monitors.base import build_monitor
from oversight.monitors.pipeline import run_monitor
from oversight.review.service import (
    LabellingSession,
    export_queue,
    gather_estimate,
    pending_queue_items,
    queue_file_items,
)
from oversight.review.terminal import LabelApp, LabellingSummary
from oversight.store import Store, import_file, open_store
from oversight.store.schema import Label

N = 60


@pytest.fixture()
def store(tmp_path: Path) -> Iterator[Store]:
    """60 chats, a third refusals, scored by the refusal monitor."""
    chats = tmp_path / "chats.jsonl"
    with chats.open("w") as f:
        for i in range(N):
            reply = "I'm sorry, but I can't help with that." if i % 3 == 0 else f"Sure: here is answer {i}, [red]with brackets[/red]."
            f.write(json.dumps({"prompt": f"Question {i}?", "response": reply}) + "\n")
    with open_store(f"sqlite:///{tmp_path / 'store.db'}") as opened:
        assert import_file(opened, chats).imported == N
        run_monitor(opened, build_monitor("refusal"))
        yield opened


def labels(store: Store) -> list[Label]:
    with store.session() as s:
        return list(s.scalars(select(Label).order_by(Label.id)))


def text_of(widget: object) -> str:
    """What a Static shows, as plain text (a rich Table rendered as the terminal would)."""
    content = getattr(widget, "content", "")
    if isinstance(content, Text):
        return content.plain
    console = Console(width=100, file=io.StringIO(), record=True)
    console.print(content)
    return console.export_text()


def drive(session: LabellingSession, keys: list[str], monitor: str | None = "refusal") -> tuple[LabellingSummary | None, str]:
    """Press ``keys`` in a headless app; returns its result and the status line shown last."""

    async def run() -> tuple[LabellingSummary | None, str]:
        app = LabelApp(session, monitor=monitor)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            for key in keys:
                await pilot.press(key)
                await pilot.pause()
            status = text_of(app.query_one("#status"))
        return app.return_value, status

    return asyncio.run(run())


def test_keys_write_labels_at_once_and_reopening_resumes(store: Store, tmp_path: Path) -> None:
    queue = tmp_path / "queue.jsonl"
    sel = export_queue(store, "refusal", "random", 6, queue, seed=1)
    items = queue_file_items(store, queue)
    assert [i.transcript_id for i in items] == list(sel.ids)

    # fault, fine, skip, then a note on the fourth item before labelling it fine; quit.
    result, _ = drive(LabellingSession(store, items, "ana"), ["f", "j", "s", "n", *"looks odd", "enter", "j", "q"])
    assert result == LabellingSummary(labelled=3, skipped=1, remaining=3, total=6)
    rows = labels(store)
    assert [(r.transcript_id, r.label, r.reviewer) for r in rows] == [
        (sel.ids[0], 1, "ana"), (sel.ids[1], 0, "ana"), (sel.ids[3], 0, "ana")
    ]
    assert [r.note for r in rows] == [None, None, "looks odd"]
    assert all(r.inclusion_probability == pytest.approx(6 / N) and r.queue_batch == sel.batch_id for r in rows)
    assert {r.queue_policy for r in rows} == {"random"}

    # Re-opened: starts at the skipped item (the first unlabelled one); undo takes back a
    # label written in this session and nothing else.
    again = LabellingSession(store, queue_file_items(store, queue), "ana")
    assert again.index == 2
    result, status = drive(again, ["f", "u", "j", "j", "j"])
    assert "item 6 of 6" not in status and "6 of 6 labelled" in status
    assert result is None  # not quit: the test ended the app
    final = {r.transcript_id: r.label for r in labels(store)}
    assert final == {sel.ids[0]: 1, sel.ids[1]: 0, sel.ids[2]: 0, sel.ids[3]: 0, sel.ids[4]: 0, sel.ids[5]: 0}
    assert len(labels(store)) == 6  # the undone label row is gone

    # Every item labelled: the estimate uses the batch (π from the queue, not a guess).
    est = gather_estimate(store, "refusal")
    assert est.n_labelled == 6 and est.n_total == N


def test_undo_restores_a_skip_and_a_note(store: Store, tmp_path: Path) -> None:
    queue = tmp_path / "q.csv"
    export_queue(store, "refusal", "active", 8, queue, seed=2)
    session = LabellingSession(store, queue_file_items(store, queue), "bo")
    drive(session, ["s", "u", "n", *"maybe", "enter", "f", "u"])
    assert labels(store) == []
    assert session.index == 0 and session.note == "maybe" and session.skipped == 0
    # typing in the note box never labels: f and j there are letters
    drive(session, ["n", "f", "j", "escape", "q"])
    assert labels(store) == [] and session.note == "maybe"


def test_items_from_the_store_queue_and_markup_shown_as_text(store: Store, tmp_path: Path) -> None:
    export_queue(store, "refusal", "random", 5, tmp_path / "a.jsonl", seed=3)
    export_queue(store, "refusal", "highest_score", 3, tmp_path / "b.jsonl")
    everything = pending_queue_items(store, "refusal")
    only_random = pending_queue_items(store, "refusal", policy="random")
    assert len(only_random) == 5 and {i.policy for i in only_random} == {"random"}
    assert 5 < len(everything) <= 8  # one transcript may be in both batches: shown once

    async def run() -> str:
        app = LabelApp(LabellingSession(store, only_random, "cy"), monitor="refusal")
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            shown = " ".join(text_of(w) for w in app.query(".message"))
            verdicts = text_of(app.query_one("#verdicts"))
            await pilot.press("q")
        assert "refusal" in verdicts and "score" in verdicts
        return shown

    shown = asyncio.run(run())
    assert "Question" in shown
    if "Sure" in shown:
        assert "[red]with brackets[/red]" in shown  # untrusted text is not parsed as markup


def test_cli_interactive_needs_a_source_and_files_are_checked(store: Store, tmp_path: Path) -> None:
    runner = CliRunner()
    db = str(store.url)
    result = runner.invoke(app, ["label", "--interactive", "--db", db])
    assert result.exit_code == 2 and "queue file or --monitor" in result.stderr
    result = runner.invoke(app, ["label", "--interactive", "--monitor", "refusal", "--db", db])
    assert result.exit_code == 2 and "no unlabelled queue items" in result.stderr
    bad = tmp_path / "bad.jsonl"
    bad.write_text(json.dumps({"transcript_id": 1}) + "\n" + json.dumps({"transcript_id": 10_000}) + "\n")
    with pytest.raises(DataError, match=r"bad\.jsonl:2.*10000"):
        queue_file_items(store, bad)
    with pytest.raises(SpecError, match="reviewer"):
        LabellingSession(store, [], " ")
