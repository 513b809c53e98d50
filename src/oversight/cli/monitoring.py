"""Commands of the monitoring side: import, monitors, the review queue, labels and estimates."""

from __future__ import annotations

from contextlib import nullcontext
from pathlib import Path
from typing import Annotated, Any

import typer

from oversight.cli.common import DbOpt, JsonOpt, app, console, err, progress_bar, user_errors


@app.command("import")
def import_command(
    path: Annotated[Path, typer.Argument(help="a file, or an eval run directory")],
    file_format: Annotated[str | None, typer.Option("--format", help="messages-jsonl | prompt-response-jsonl | prompt-response-csv | eval-run | inspect-log (detected when omitted)")] = None,
    db: Annotated[str | None, typer.Option("--db", help="database URL (sqlite:///file.db, postgresql://user@host/db) or SQLite file; default: oversight.db in the data dir")] = None,
    prompt_field: Annotated[str, typer.Option(help="prompt key/column of prompt-response files")] = "prompt",
    response_field: Annotated[str, typer.Option(help="response key/column of prompt-response files")] = "response",
    source: Annotated[str | None, typer.Option(help="stored as each transcript's source (default: the file's path)")] = None,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Import transcripts into the store; importing the same conversations again adds nothing."""
    import json

    from oversight.store import import_file, open_store

    with user_errors(), open_store(db) as store:
        options: dict[str, Any] = {"prompt_field": prompt_field, "response_field": response_field, "source": source}
        if json_out:
            result = import_file(store, path, file_format, **options)
            print(json.dumps({**result.to_json(), "total_transcripts": store.count_transcripts()}))
            return
        with progress_bar() as update:
            result = import_file(
                store, path, file_format, **options,
                progress=lambda done, total, r: update(done, total or done, f"{r.imported} new · {r.duplicates} duplicate · {r.rejected} rejected"),
            )
        console.print(
            f"[bold]{result.imported}[/] imported, {result.duplicates} duplicate, {result.rejected} rejected"
            + (f", {result.skipped} skipped (not conversations)" if result.skipped else "")
            + f" → {result.db} ({store.count_transcripts()} transcripts)"
        )
        for message in result.errors:
            err.print(f"[yellow]rejected[/] {message}", highlight=False, soft_wrap=True)
        if result.rejected > len(result.errors):
            err.print(f"… and {result.rejected - len(result.errors)} more rejected lines")




@app.command("monitor")
def monitor_command(
    monitor: Annotated[str, typer.Option("--monitor", help="rules | refusal | judge | embedding | ensemble")],
    db: DbOpt = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="monitor option key=value; repeatable (embedding: model_file=PATH reuses a saved classifier)")] = None,
    batch_size: Annotated[int, typer.Option(help="transcripts per committed batch")] = 64,
    json_out: JsonOpt = False,
) -> None:
    """Score every stored transcript the monitor (this version) has not scored yet; resumable.

    A monitor that learns (embedding, a stacked ensemble) and is given no saved model is first
    trained on the store's labels; it then scores its own training examples out of fold.
    """
    import json

    from oversight.monitors.base import build_monitor
    from oversight.monitors.cli_support import parse_options
    from oversight.monitors.pipeline import run_monitor
    from oversight.monitors.store_training import needs_training, train_from_store
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        the_monitor = build_monitor(monitor, **parse_options(option or []))
        training = None
        if needs_training(the_monitor):
            with err.status(f"training {monitor} on the labels in the store…", spinner="dots") if not json_out else nullcontext():
                training = train_from_store(store, the_monitor)
        presets = training.verdicts if training is not None else None
        if json_out:
            result = run_monitor(store, the_monitor, batch_size=batch_size, presets=presets)
            print(json.dumps({**result.to_json(), "training": training.to_json() if training else None}))
            return
        if training is not None:
            console.print(
                f"trained [bold]{the_monitor.info.name} {training.version}[/] on {training.n_train} labels "
                f"({training.n_faults} faults) in {training.seconds:.1f} s; its training examples are "
                f"scored {training.folds}-fold out of fold"
                + (f"\nsaved to {training.model_file} (reuse: --option model_file={training.model_file})" if training.model_file else ""),
                highlight=False,
            )
        name = f"{the_monitor.info.name} {the_monitor.info.version}"
        with progress_bar() as update:
            result = run_monitor(store, the_monitor, batch_size=batch_size, presets=presets, progress=lambda done, total: update(done, total, name))
        console.print(
            f"[bold]{result.scored}[/] scored, {result.errors} errors, {result.skipped} already scored"
            f" · {result.per_second:.1f} transcripts/s ({result.seconds:.1f} s) → {store.url}"
        )


@app.command("queue")
def queue_command(
    monitor: Annotated[str, typer.Option("--monitor", help="the monitor whose verdicts rank the candidates")],
    policy: Annotated[str, typer.Option("--policy", help="random | highest_score | most_uncertain | most_uncertain_top | diverse | active")],
    n: Annotated[int, typer.Option("--n", help="items to choose (expected number for active / most_uncertain)")],
    out: Annotated[Path, typer.Option("--out", help="export file, .jsonl or .csv")] = Path("queue.jsonl"),
    db: DbOpt = None,
    seed: int = 0,
    version: Annotated[str | None, typer.Option(help="monitor version (default: the latest scored)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Choose transcripts for human review and write them to a file to label.

    ``diverse`` embeds every candidate with MiniLM (cached on disk, so only once) and draws
    one item from each of n clusters.
    """
    import json

    from oversight.review.queue import get_policy
    from oversight.review.service import export_queue
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        if json_out or not get_policy(policy).needs_embeddings:
            sel = export_queue(store, monitor, policy, n, out, seed=seed, version=version)
        else:
            with progress_bar() as update:
                sel = export_queue(store, monitor, policy, n, out, seed=seed, version=version,
                                   progress=lambda done, total: update(done, total, "embedding candidates"))
        if json_out:
            print(json.dumps({"path": str(out), "n": len(sel), "policy": sel.policy, "design": sel.design,
                              "batch_id": sel.batch_id, "population_size": sel.population_size, "ids": list(sel.ids)}))
            return
        console.print(f"[bold]{len(sel)}[/] items ({sel.policy}, {sel.design} design, of {sel.population_size}) → {out}; batch {sel.batch_id}")
        console.print(f"label them: oversight label --interactive {out}  (or fill in the label column, 1 = fault, 0 = fine, then: oversight label {out})")


@app.command("label")
def label_command(
    path: Annotated[Path | None, typer.Argument(help="label file (JSONL/CSV): a filled-in queue export, or transcript_id + label; with --interactive, the queue export to walk")] = None,
    interactive: Annotated[bool, typer.Option("--interactive", "-i", help="label in the terminal, one item at a time (keys f/j/s/u/n/q)")] = False,
    monitor: Annotated[str | None, typer.Option("--monitor", help="--interactive without a file: walk this monitor's queued items not labelled yet")] = None,
    policy: Annotated[str | None, typer.Option("--policy", help="with --monitor: only items a batch of this policy drew")] = None,
    reviewer: Annotated[str | None, typer.Option(help="reviewer name (default for --interactive: your OS user name); for a file, used for rows that name none")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import human labels, or label queued transcripts interactively.

    A file's labels are checked whole first: a label for an unknown transcript rejects the
    whole file. ``--interactive`` writes each label to the store as its key is pressed and
    resumes at the first unlabelled item when opened again.
    """
    import json

    from oversight.errors import SpecError
    from oversight.review.service import import_labels
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        if interactive:
            summary = _label_interactively(store, path, monitor, policy, reviewer)
            if json_out:
                print(json.dumps(summary))
            else:
                console.print(f"[bold]{summary['labelled']}[/] labelled, {summary['skipped']} skipped; "
                              f"{summary['remaining']} of {summary['total']} items still unlabelled → {store.url}")
            return
        if path is None:
            raise SpecError("name a label file to import, or pass --interactive (with a queue file or --monitor)")
        result = import_labels(store, path, reviewer=reviewer)
        if json_out:
            print(json.dumps(result.to_json()))
            return
        console.print(f"[bold]{result.added}[/] labels added ({result.relabelled} relabelled, {result.unlabelled_rows} rows not labelled yet) → {store.url}")


def _label_interactively(store: Any, path: Path | None, monitor: str | None, policy: str | None, reviewer: str | None) -> dict[str, int]:
    import getpass
    from dataclasses import asdict

    from oversight.errors import SpecError
    from oversight.review.service import LabellingSession, pending_queue_items, queue_file_items

    name = reviewer or getpass.getuser()
    if path is not None:
        items = queue_file_items(store, path)
    elif monitor is not None:
        items = pending_queue_items(store, monitor, policy=policy, reviewer=name)
        if not items:
            raise SpecError(f"no unlabelled queue items for monitor {monitor!r}{f' and policy {policy!r}' if policy else ''}; export some with `oversight queue --monitor {monitor} --policy P --n N`")
    else:
        raise SpecError("--interactive needs a queue file or --monitor NAME")
    from oversight.review.terminal import LabelApp

    session = LabellingSession(store, items, name)
    result = LabelApp(session, monitor=monitor).run()
    if result is None:  # closed some other way (Ctrl+C): the labels are in the store anyway
        return {"labelled": session.added, "skipped": session.skipped, "remaining": session.remaining, "total": len(items)}
    return asdict(result)


@app.command("estimate")
def estimate_command(
    monitor: Annotated[str, typer.Option("--monitor", help="the monitor whose scored transcripts form the population")],
    db: DbOpt = None,
    method: Annotated[str, typer.Option(help="auto | classical | wilson | ppi | stratified | active")] = "auto",
    version: Annotated[str | None, typer.Option(help="monitor version (default: the latest scored)")] = None,
    where: Annotated[list[str] | None, typer.Option("--where", help="only transcripts with source=… | model=… | task=… | since=DATE | until=DATE; repeatable (AND)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The fault rate over all scored transcripts, with a 95% CI, from the human labels.

    Labels from several queue batches pool exactly (a sequential design); a batch not fully
    labelled yet is left out, and a line on stderr says so. ``--where`` gives the rate of a
    subset from the same labels (a domain estimate: valid whichever queue drew them).
    """
    import json

    from oversight.review.estimates import estimate_from_store
    from oversight.store import open_store
    from oversight.store.subsets import TranscriptSubset

    with user_errors():
        subset = TranscriptSubset.parse(where or [])  # before the store: a typo touches nothing
    with user_errors(), open_store(db) as store:
        found = estimate_from_store(store, monitor, version=version, method=method, where=subset)
        est = found.estimate
        for note in found.notes:
            err.print(f"[yellow]note[/] {note}", highlight=False, soft_wrap=True)
        result = {"rate": est.rate, "ci_low": est.ci_low, "ci_high": est.ci_high,
                  "n_labelled": est.n_labelled, "n_total": est.n_total, "method": est.method}
        if json_out:
            print(json.dumps(result))
            return
        used = sum(b.used for b in found.batches)
        batches = f" from {used} queue batch{'es' if used != 1 else ''}" if found.batches else ""
        console.print(
            f"fault rate [bold]{est.rate:.3f}[/] (95% CI [{est.ci_low:.3f}, {est.ci_high:.3f}])"
            f" from {est.n_labelled} labels{batches} over {est.n_total} transcripts"
            + (f" with {subset.describe()}" if not subset.is_everything else "")
            + f" · {est.method}"
        )
