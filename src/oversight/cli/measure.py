"""Commands of the measuring side: evaluations, comparisons, reports, the model server."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Annotated

import typer
from rich.table import Table

from oversight.cli.common import (
    DtypeOpt,
    ModelOpt,
    app,
    console,
    err,
    open_model,
    progress_bar,
    slug,
    user_errors,
)


@app.command("eval")
def eval_command(
    model: ModelOpt = "default",
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="suite, suite/task, or task file; repeatable. Default: the safety suite")] = None,
    file_format: Annotated[str | None, typer.Option("--format", help="lm-eval-yaml | mwe | inverse-scaling | truthfulqa | harmbench (detected when omitted)")] = None,
    limit: Annotated[int | None, typer.Option(help="first N samples of each task")] = None,
    out: Annotated[Path | None, typer.Option(help="run directory (re-use it to resume)")] = None,
    seed: int = 0,
    dtype: DtypeOpt = "float32",
    judge: Annotated[str | None, typer.Option(help="model spec of the judge for judged tasks (default: the evaluated model)")] = None,
    harmful_path: Annotated[Path | None, typer.Option(help="HarmBench-style CSV for the suite's harmful-request task")] = None,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the response cache")] = False,
) -> None:
    """Run evaluation tasks on a model; resumable, with intervals for every metric."""
    from oversight.evals.resolve import resolve_tasks
    from oversight.evals.runner import Runner, RunSettings

    with user_errors():
        tasks = resolve_tasks(task or [], file_format=file_format, seed=seed, harmful_path=harmful_path)
        out = out or Path("runs") / f"{datetime.now():%Y%m%d-%H%M%S}-{slug(model)}"
        the_model = open_model(model, dtype, cache=not no_cache)
        the_judge = open_model(judge, dtype, cache=not no_cache) if judge else None
        err.print(f"[bold]{len(tasks)} task(s)[/] on [bold]{model}[/] → {out}")
        with progress_bar() as update:
            runner = Runner(the_model, out, settings=RunSettings(seed=seed, limit=limit), judge=the_judge, progress=update)
            results = runner.run(tasks)
        table = Table(title=f"{model} · {out}", show_lines=False)
        for col in ("task", "metric", "value", "95% CI", "n"):
            table.add_column(col, justify="right" if col in {"value", "n"} else "left")
        for name, tr in results.tasks.items():
            for k, (metric, m) in enumerate(tr.metrics.items()):
                arrow = "↑" if m.higher_is_better else "↓"
                table.add_row(name if k == 0 else "", f"{metric} {arrow}", f"{m.value:.3f}", f"[{m.ci_low:.3f}, {m.ci_high:.3f}]", str(m.n))
        console.print(table)
        console.print(f"run directory: [bold]{out}[/]")


@app.command()
def compare(
    run_a: Path,
    run_b: Path,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Paired difference (B − A) per task and metric on the items both runs share."""
    import json
    from dataclasses import asdict

    from oversight.evals.analysis import compare_runs

    with user_errors():
        rows = compare_runs(run_a, run_b)
        if json_out:
            print(json.dumps({"run_a": str(run_a), "run_b": str(run_b), "comparisons": [asdict(r) for r in rows]}, default=str))
            return
        table = Table(title=f"B − A   (A = {run_a}, B = {run_b})")
        for col in ("task", "metric", "A", "B", "B − A", "95% CI", "p", "n", "test"):
            table.add_column(col)
        for r in rows:
            c = r.comparison
            table.add_row(r.task, r.metric, f"{c.mean_a:.3f}", f"{c.mean_b:.3f}", f"{c.diff:+.3f}",
                          f"[{c.ci_low:+.3f}, {c.ci_high:+.3f}]", f"{c.p_value:.3g}", str(c.n), c.method)
        console.print(table)


@app.command()
def scaling(
    runs: Annotated[list[Path], typer.Argument(help="runs of one model family on the same tasks")],
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Fit each metric against log(parameters) and say whether scaling is normal, inverse or U-shaped."""
    import json
    from dataclasses import asdict

    from oversight.evals.analysis import scaling_trends
    from oversight.stats.scaling import format_parameters

    with user_errors():
        trends = scaling_trends(runs)
        if json_out:
            print(json.dumps({"runs": [str(r) for r in runs], "trends": [asdict(t) for t in trends]}, default=str))
            return
        table = Table(title="scaling: metric ~ log10(parameters)")
        for col in ("task", "metric", "sizes", "means", "slope [95% CI]", "shape"):
            table.add_column(col)
        for t in trends:
            tr = t.trend
            table.add_row(
                t.task, t.metric, " ".join(format_parameters(n) for n in t.n_parameters),
                " ".join(f"{m:.3f}" for m in tr.means),
                f"{tr.slope:+.3f} [{tr.slope_ci[0]:+.3f}, {tr.slope_ci[1]:+.3f}]", tr.shape,
            )
        console.print(table)


@app.command()
def report(
    runs: Annotated[list[Path], typer.Argument(help="one or more run directories")],
    output: Annotated[Path, typer.Option("-o", "--output", help="HTML file to write")] = Path("report.html"),
) -> None:
    """A self-contained HTML report: metrics with CIs, comparisons, scaling, worst failures."""
    from oversight.report.html import write_report

    with user_errors():
        path = write_report(runs, output)
        console.print(f"report: [bold]{path.resolve()}[/]")


@app.command()
def serve(
    model: ModelOpt = "default",
    host: str = "127.0.0.1",
    port: int = 8000,
    dtype: DtypeOpt = "float32",
) -> None:
    """Serve a local model over an OpenAI-compatible API (/v1/completions, /v1/chat/completions)."""
    from oversight.server.app import serve as run_server

    with user_errors():
        run_server(model, host=host, port=port, dtype=dtype)


@app.command()
def monitors() -> None:
    """List the built-in monitors: name, version, what each detects and what it costs."""
    from oversight.monitors.cli_support import list_monitors

    table = Table(title="monitors")
    for col in ("name", "version", "cost", "detects"):
        table.add_column(col)
    for m in list_monitors():
        table.add_row(m.name, m.version, m.cost, m.detects)
    console.print(table)


@app.command("monitor-eval")
def monitor_eval_command(
    monitor: Annotated[str, typer.Option("--monitor", help="rules | refusal | judge | embedding | ensemble")],
    data: Annotated[Path, typer.Option("--data", help="labelled set: OpenAI moderation, PyRIT refusal, TruthfulQA finetune_truth, or JSONL/CSV with a label")],
    limit: Annotated[int | None, typer.Option(help="a seeded random subsample of this size")] = None,
    option: Annotated[list[str] | None, typer.Option("--option", "-o", help="monitor option key=value; repeatable")] = None,
    plot: Annotated[Path | None, typer.Option(help="write the calibration plot (SVG) here")] = None,
    seed: int = 0,
    json_out: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Precision, recall, F1 and AUROC with bootstrap CIs, and calibration, on a labelled set."""
    import json

    from oversight.monitors.cli_support import monitor_eval, parse_options

    with user_errors():
        result = monitor_eval(monitor, data, limit=limit, seed=seed, plot_path=plot, **parse_options(option or []))
        if json_out:
            print(json.dumps({k: v for k, v in result.items() if k != "calibration_svg"}, default=str))
            return
        q = result["quality"]
        table = Table(title=f"{monitor} on {data.name} (n={q['n']}, {q['n_positive']} positive) · {result['protocol']}")
        for col in ("metric", "value", "95% CI"):
            table.add_column(col)
        for name in ("f1", "precision", "recall", "fpr", "accuracy", "auroc"):
            m = q[name]
            table.add_row(name, f"{m['value']:.3f}", f"[{m['low']:.3f}, {m['high']:.3f}]")
        console.print(table)
        for anchor in result.get("anchors", []):
            console.print(f"anchor: {anchor['name']}: F1 {anchor['f1']}")


@app.command()
def tasks(seed: int = 0) -> None:
    """List the built-in suites and their tasks."""
    from oversight.evals.suites.safety import SUITES

    for build in SUITES.values():
        for t in build(seed=seed):
            console.print(f"[bold]{t.name}[/] ({t.kind}, {len(t.samples)} samples): {t.description.splitlines()[0] if t.description else ''}")

