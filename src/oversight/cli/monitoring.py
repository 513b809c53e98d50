"""Commands of the monitoring side: import, monitors, the review queue, labels and estimates."""

from __future__ import annotations

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
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="monitor option key=value; repeatable")] = None,
    batch_size: Annotated[int, typer.Option(help="transcripts per committed batch")] = 64,
    json_out: JsonOpt = False,
) -> None:
    """Score every stored transcript the monitor (this version) has not scored yet; resumable."""
    import json

    from oversight.monitors.base import build_monitor
    from oversight.monitors.cli_support import parse_options
    from oversight.monitors.pipeline import run_monitor
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        the_monitor = build_monitor(monitor, **parse_options(option or []))
        if json_out:
            result = run_monitor(store, the_monitor, batch_size=batch_size)
            print(json.dumps(result.to_json()))
            return
        name = f"{the_monitor.info.name} {the_monitor.info.version}"
        with progress_bar() as update:
            result = run_monitor(store, the_monitor, batch_size=batch_size, progress=lambda done, total: update(done, total, name))
        console.print(
            f"[bold]{result.scored}[/] scored, {result.errors} errors, {result.skipped} already scored"
            f" · {result.per_second:.1f} transcripts/s ({result.seconds:.1f} s) → {store.url}"
        )


@app.command("queue")
def queue_command(
    monitor: Annotated[str, typer.Option("--monitor", help="the monitor whose verdicts rank the candidates")],
    policy: Annotated[str, typer.Option("--policy", help="random | highest_score | most_uncertain | most_uncertain_top | active")],
    n: Annotated[int, typer.Option("--n", help="items to choose (expected number for active / most_uncertain)")],
    out: Annotated[Path, typer.Option("--out", help="export file, .jsonl or .csv")] = Path("queue.jsonl"),
    db: DbOpt = None,
    seed: int = 0,
    version: Annotated[str | None, typer.Option(help="monitor version (default: the latest scored)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """Choose transcripts for human review and write them to a file to label."""
    import json

    from oversight.review.service import export_queue
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        sel = export_queue(store, monitor, policy, n, out, seed=seed, version=version)
        if json_out:
            print(json.dumps({"path": str(out), "n": len(sel), "policy": sel.policy, "design": sel.design,
                              "batch_id": sel.batch_id, "population_size": sel.population_size, "ids": list(sel.ids)}))
            return
        console.print(f"[bold]{len(sel)}[/] items ({sel.policy}, {sel.design} design, of {sel.population_size}) → {out}; batch {sel.batch_id}")
        console.print(f"fill in the label column (1 = fault, 0 = fine), then: oversight label {out}")


@app.command("label")
def label_command(
    path: Annotated[Path, typer.Argument(help="label file (JSONL/CSV): a filled-in queue export, or transcript_id + label")],
    reviewer: Annotated[str | None, typer.Option(help="reviewer name for rows that name none")] = None,
    db: DbOpt = None,
    json_out: JsonOpt = False,
) -> None:
    """Import human labels; a label for an unknown transcript rejects the whole file."""
    import json

    from oversight.review.service import import_labels
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        result = import_labels(store, path, reviewer=reviewer)
        if json_out:
            print(json.dumps(result.to_json()))
            return
        console.print(f"[bold]{result.added}[/] labels added ({result.relabelled} relabelled, {result.unlabelled_rows} rows not labelled yet) → {store.url}")


@app.command("estimate")
def estimate_command(
    monitor: Annotated[str, typer.Option("--monitor", help="the monitor whose scored transcripts form the population")],
    db: DbOpt = None,
    method: Annotated[str, typer.Option(help="auto | classical | wilson | ppi | stratified | active")] = "auto",
    version: Annotated[str | None, typer.Option(help="monitor version (default: the latest scored)")] = None,
    json_out: JsonOpt = False,
) -> None:
    """The fault rate over all scored transcripts, with a 95% CI, from the human labels."""
    import json

    from oversight.review.service import gather_estimate
    from oversight.store import open_store

    with user_errors(), open_store(db) as store:
        est = gather_estimate(store, monitor, version=version, method=method)
        result = {"rate": est.rate, "ci_low": est.ci_low, "ci_high": est.ci_high,
                  "n_labelled": est.n_labelled, "n_total": est.n_total, "method": est.method}
        if json_out:
            print(json.dumps(result))
            return
        console.print(
            f"fault rate [bold]{est.rate:.3f}[/] (95% CI [{est.ci_low:.3f}, {est.ci_high:.3f}])"
            f" from {est.n_labelled} labels over {est.n_total} transcripts · {est.method}"
        )
