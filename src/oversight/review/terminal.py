"""``oversight label --interactive``: a keyboard-driven labeller in the terminal (Textual).

One item at a time: the conversation, what the monitors said about it (score, label,
evidence), and how the queue chose it (batch, policy, π). Keys:

    f  fault (label 1)      j  fine (label 0)      s  skip (stays in the queue)
    u  undo the last step   n  write a note         q  quit

Each label is written to the store the moment its key is pressed, with the reviewer's name
and the item's inclusion probability (:class:`~oversight.review.service.LabellingSession`),
so quitting (or a crash) loses nothing and the next session starts at the first item still
unlabelled. The app only draws and dispatches keys; every decision lives in the session.

Transcript text is shown as plain text (``rich.text.Text``, never markup), since it is
untrusted model output: ``[red]`` in a reply is printed as typed.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.table import Table
from rich.text import Text
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.widgets import Footer, Header, Input, Static

from oversight.review.service import ItemView, LabellingSession

#: Characters of one message shown; the rest is cut with a marker (the store keeps it all).
MESSAGE_LIMIT = 20_000
ROLE_STYLES = {"user": "bold cyan", "assistant": "bold green", "system": "bold magenta"}


@dataclass(frozen=True)
class LabellingSummary:
    """What a labelling session did, returned when the app exits."""

    labelled: int
    skipped: int
    remaining: int
    total: int


class LabelApp(App[LabellingSummary]):
    """The labeller over one :class:`LabellingSession`."""

    TITLE = "oversight label"
    CSS = """
    #status { height: auto; padding: 0 1; background: $boost; }
    #transcript { height: 1fr; padding: 0 1; }
    .message { margin: 0 0 1 0; }
    #verdicts { height: auto; max-height: 12; padding: 0 1; border-top: solid $primary; }
    #notice { height: auto; padding: 0 1; color: $text-muted; }
    #note { display: none; }
    #note.open { display: block; }
    """
    BINDINGS = [  # noqa: RUF012 - Textual reads the class attribute
        Binding("f", "label(1)", "fault"),
        Binding("j", "label(0)", "fine"),
        Binding("s", "skip", "skip"),
        Binding("u", "undo", "undo"),
        Binding("n", "note", "note"),
        Binding("q", "quit_labelling", "quit"),
        Binding("escape", "close_note", "cancel note", show=False),
    ]

    def __init__(self, session: LabellingSession, *, monitor: str | None = None) -> None:
        super().__init__()
        self.session = session
        self.monitor = monitor
        self.sub_title = f"reviewer {session.reviewer}"

    def compose(self) -> ComposeResult:
        yield Header()
        yield Static(id="status")
        yield VerticalScroll(id="transcript")
        yield Static(id="verdicts")
        yield Input(placeholder="note for this item; Enter keeps it, Esc cancels", id="note")
        yield Static(id="notice")
        yield Footer()

    def on_mount(self) -> None:
        start = self.session.index
        done = len(self.session.items) - self.session.remaining
        self._show(f"resuming at item {start + 1}: {done} already labelled" if done else "")

    # ------------------------------------------------------------------ actions

    def action_label(self, value: int) -> None:
        if self.session.done:
            return
        item = self.session.current
        self.session.label(value)
        word = "fault" if value == 1 else "fine"
        self._show(f"transcript {item.transcript_id if item else '?'} labelled {value} ({word}) · u undoes")

    def action_skip(self) -> None:
        if self.session.done:
            return
        item = self.session.current
        self.session.skip()
        self._show(f"transcript {item.transcript_id if item else '?'} skipped: it stays in the queue")

    def action_undo(self) -> None:
        self._show("undone" if self.session.undo() else "nothing to undo")

    def action_note(self) -> None:
        if self.session.done:
            return
        note = self.query_one("#note", Input)
        note.value = self.session.note or ""
        note.add_class("open")
        note.focus()

    def action_close_note(self) -> None:
        note = self.query_one("#note", Input)
        if note.has_class("open"):
            note.remove_class("open")
            self.query_one("#transcript").focus()
            self._notice("note cancelled")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        text = event.value.strip()
        self.session.note = text or None
        event.input.remove_class("open")
        self.query_one("#transcript").focus()
        self._show("note kept: it is saved with this item's label" if text else "note cleared")

    def action_quit_labelling(self) -> None:
        s = self.session
        self.exit(LabellingSummary(s.added, s.skipped, s.remaining, len(s.items)))

    # ------------------------------------------------------------------ drawing

    def _show(self, notice: str) -> None:
        view = self.session.view()
        self._status(view)
        self._transcript(view)
        self._verdicts(view)
        self._notice(notice)

    def _status(self, view: ItemView | None) -> None:
        s = self.session
        counts = f"{len(s.items) - s.remaining} of {len(s.items)} labelled · {s.added} this session"
        if view is None:
            self.query_one("#status", Static).update(Text(counts))
            return
        item = view.item
        how = [f"item {s.index + 1} of {len(s.items)}", f"transcript {item.transcript_id}"]
        if item.policy:
            how.append(f"policy {item.policy}")
        if item.batch_id:
            how.append(f"batch {item.batch_id}")
        how.append("π unknown" if item.inclusion_probability is None else f"π = {item.inclusion_probability:.4g}")
        line = Text(" · ".join(how) + "\n" + counts)
        if s.note:
            line.append(f"\nnote: {s.note}", style="italic")
        self.query_one("#status", Static).update(line)

    def _transcript(self, view: ItemView | None) -> None:
        box = self.query_one("#transcript", VerticalScroll)
        box.remove_children()
        if view is None:
            s = self.session
            box.mount(Static(Text(
                f"All items done: {s.added} labelled in this session, {s.skipped} skipped "
                f"({s.remaining} still unlabelled; they come first next time).\n"
                "q quits · u undoes the last step"
            )))
            return
        widgets = []
        for message in view.detail.messages:
            role, content = str(message.get("role", "")), str(message.get("content", ""))
            if len(content) > MESSAGE_LIMIT:
                content = content[:MESSAGE_LIMIT] + f"\n… ({len(content) - MESSAGE_LIMIT} more characters)"
            text = Text(f"{role}\n", style=ROLE_STYLES.get(role.lower(), "bold"))
            text.append(content)
            widgets.append(Static(text, classes="message"))
        box.mount(*widgets)
        box.scroll_home(animate=False)

    def _verdicts(self, view: ItemView | None) -> None:
        panel = self.query_one("#verdicts", Static)
        if view is None or not view.verdicts:
            panel.update(Text("no monitor verdicts" if view is not None else ""))
            return
        table = Table(box=None, show_header=True, header_style="bold", expand=True, pad_edge=False)
        for column in ("monitor", "score", "label", "evidence"):
            table.add_column(column, overflow="fold", ratio=4 if column == "evidence" else None)
        for v in sorted(view.verdicts, key=lambda v: v.monitor != self.monitor):
            score = "error" if v.score is None else f"{v.score:.3f}"
            evidence = Text(v.error or v.evidence or "")
            name = Text(f"{v.monitor} {v.version}", style="bold" if v.monitor == self.monitor else "")
            table.add_row(name, score, v.label or "", evidence)
        panel.update(table)

    def _notice(self, text: str) -> None:
        self.query_one("#notice", Static).update(Text(text))
