"""Commands that look at features of a local model: `oversight neurons` and `oversight steer`."""

from __future__ import annotations

import json
import shlex
import sys
from dataclasses import asdict
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.table import Table

from oversight.cli.common import (
    DtypeOpt,
    JsonOpt,
    ModelOpt,
    app,
    console,
    err,
    local_model,
    progress_bar,
    user_errors,
)
from oversight.errors import SpecError

OutOpt = Annotated[Path, typer.Option("--out", help="folder for results.json and page.html")]
DEFAULT_PROMPTS = ("I think that", "The movie was", "My opinion of the new policy is", "Today I feel")


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["oversight", *sys.argv[1:]])


def _write_json(path: Path, payload: Any) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


def _texts(data: Path | None, dataset: str | None, field: str | None, data_root: Path | None, limit: int | None) -> tuple[list[str], str]:
    from oversight.interp.corpus import load_dataset, read_texts

    if (data is None) == (dataset is None):
        raise SpecError("give exactly one of --data FILE or --dataset NAME")
    if data is not None:
        return read_texts(data, field=field, limit=limit), str(data)
    assert dataset is not None
    return load_dataset(dataset, root=data_root, limit=limit), f"dataset:{dataset}"


@app.command()
def neurons(
    layer: Annotated[int, typer.Option("--layer", help="decoder layer whose MLP neurons to search (negative counts from the end)")],
    out: OutOpt,
    model: ModelOpt = "default",
    data: Annotated[Path | None, typer.Option("--data", help="texts: .txt (one per line), .jsonl or .csv with a text field")] = None,
    dataset: Annotated[str | None, typer.Option("--dataset", help="built-in set: safety, truthfulqa, moderation, refusal, harmbench, persona")] = None,
    field: Annotated[str | None, typer.Option("--field", help="JSONL key or CSV column holding the text (default: text, prompt, …)")] = None,
    data_root: Annotated[Path | None, typer.Option("--data-root", help="folder of the public datasets (default: $OVERSIGHT_SHARED_DATA or ./shared/data)")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, help="contexts kept per neuron")] = 10,
    limit: Annotated[int | None, typer.Option(min=1, help="first N texts")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="cut each text after this many tokens")] = 128,
    batch_size: Annotated[int, typer.Option(min=1)] = 8,
    show: Annotated[int, typer.Option(min=1, help="neurons on the HTML page (the most active); results.json has all")] = 100,
    describe: Annotated[int, typer.Option(min=0, help="describe the N most active neurons with the model and score each description on held-out texts")] = 0,
    heldout: Annotated[int, typer.Option(min=4, help="texts held out (the last ones) for scoring descriptions")] = 40,
    describer: Annotated[str | None, typer.Option(help="model spec that writes and judges descriptions (default: the model itself)")] = None,
    dtype: DtypeOpt = "float32",
    json_out: JsonOpt = False,
) -> None:
    """Top-k activating contexts of every MLP neuron of a layer over a corpus (bounded memory)."""
    from oversight.interp.neurons import neuron_search, neurons_page
    from oversight.interp.pages import write_page

    with user_errors():
        texts, source = _texts(data, dataset, field, data_root, limit)
        held: list[str] = []
        if describe:
            if len(texts) < 2 * heldout:
                raise SpecError(f"--describe holds out {heldout} texts and needs at least {2 * heldout}; the corpus has {len(texts)}")
            texts, held = texts[:-heldout], texts[-heldout:]
        the_model = local_model(model, dtype)
        err.print(f"[bold]{len(texts)} texts[/] from {source} through neurons.{layer} of [bold]{model}[/]")
        with progress_bar() as update:
            done = 0

            def advance(n: int) -> None:
                nonlocal done
                done += n
                update(done, len(texts), f"neurons.{layer}")

            results = neuron_search(
                the_model.model, the_model.tokenizer, texts, layer, model_name=the_model.info.spec,
                fingerprint=the_model.info.fingerprint, k=top_k, batch_size=batch_size, max_tokens=max_tokens, progress=advance,
            )
        if not results.complete:
            err.print(f"[yellow]interrupted[/]: writing the results of the first {results.n_texts} texts")
        described: dict[str, Any] = {}
        if describe and results.complete:
            from oversight.interp.neuron_descriptions import describe_neurons

            writer = local_model(describer, dtype) if describer else the_model
            with progress_bar() as update:
                described = describe_neurons(the_model, results, held, n=describe, writer=writer, progress=update)
        payload = {"source": source, "command": _command_line(), **results.to_dict(), **({"descriptions": described} if described else {})}
        _write_json(out / "results.json", payload)
        page = write_page(neurons_page(results, show=show, command=_command_line()), out / "page.html")
        top = results.ranked()[:10]
        summary = {
            "results": str(out / "results.json"), "page": str(page), "model": results.model, "layer": results.layer,
            "n_neurons": len(results.neurons), "n_texts": results.n_texts, "n_tokens": results.n_tokens, "complete": results.complete,
            "top_neurons": [{"neuron": n.index, "max": n.max, "density": n.density, "peak_tokens": n.top_tokens[:3],
                             "description": n.description, "score": n.description_score} for n in top],
            **({"descriptions": described.get("summary")} if described else {}),
        }
        if json_out:
            print(json.dumps(summary, ensure_ascii=False, default=str))
            return
        table = Table(title=f"most active neurons of neurons.{results.layer} · {results.n_texts} texts, {results.n_tokens} tokens")
        for col in ("neuron", "max", "density", "peak tokens", "top context"):
            table.add_column(col)
        for n in top:
            ctx = n.contexts[0] if n.contexts else None
            text = "".join(ctx.tokens[: ctx.focus]) + "[" + ctx.tokens[ctx.focus] + "]" + "".join(ctx.tokens[ctx.focus + 1 :]) if ctx else ""
            table.add_row(str(n.index), f"{n.max:.3g}", f"{n.density:.3f}", ", ".join(repr(t) for t, _ in n.top_tokens[:3]), text.replace("\n", "⏎"))
        console.print(table, markup=False)
        console.print(f"results: [bold]{out / 'results.json'}[/]  page: [bold]{page}[/]")


@app.command()
def steer(
    out: OutOpt,
    model: ModelOpt = "default",
    layer: Annotated[int | None, typer.Option("--layer", help="layer whose residual output is steered (needed with --positive/--negative)")] = None,
    direction: Annotated[Path | None, typer.Option("--direction", help="a saved probe (probe.json) or direction (direction.json)")] = None,
    positive: Annotated[Path | None, typer.Option("--positive", help="prompts of the side to steer toward (.txt/.jsonl/.csv)")] = None,
    negative: Annotated[Path | None, typer.Option("--negative", help="prompts of the side to steer away from")] = None,
    reduce: Annotated[str, typer.Option(help="last (token) or mean (over tokens) of each prompt's activations")] = "last",
    coef: Annotated[list[float] | None, typer.Option("--coef", help="coefficient; repeatable (default 4)")] = None,
    normalise: Annotated[bool, typer.Option("--normalise", help="coef in units of the layer's typical residual norm (unit direction)")] = False,
    prompt: Annotated[list[str] | None, typer.Option("--prompt", "-p", help="prompt to continue before/after; repeatable")] = None,
    prompts: Annotated[Path | None, typer.Option("--prompts", help="file of prompts to continue")] = None,
    max_tokens: Annotated[int, typer.Option(min=1, help="tokens generated per prompt")] = 40,
    task: Annotated[list[str] | None, typer.Option("--task", "-t", help="eval task to measure the effect on (suite/task or file); repeatable")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="first N samples of each task")] = None,
    seed: int = 0,
    no_cache: Annotated[bool, typer.Option("--no-cache", help="do not read or write the response cache")] = False,
    dtype: DtypeOpt = "float32",
    json_out: JsonOpt = False,
) -> None:
    """Add a direction at a layer while generating: continuations before/after, and the effect on eval tasks."""
    from oversight.interp.corpus import read_texts
    from oversight.interp.pages import write_page
    from oversight.interp.steering import (
        SteeredModel,
        Steering,
        SteeringEval,
        compare_generations,
        evaluate_steering,
        load_direction,
        mean_difference,
        reference_norm,
        steering_page,
    )

    with user_errors():
        if (direction is None) == (positive is None or negative is None) or (direction and (positive or negative)):
            raise SpecError("give either --direction FILE, or both --positive FILE and --negative FILE")
        if reduce not in ("last", "mean"):
            raise SpecError(f"--reduce must be last or mean, not {reduce!r}")
        coefs = coef or [4.0]
        texts = list(prompt or []) + (read_texts(prompts) if prompts else [])
        texts = texts or list(DEFAULT_PROMPTS)
        the_model = local_model(model, dtype)
        if direction is not None:
            d = load_direction(direction)
            if layer is not None and d.site != f"resid.{layer}":
                raise SpecError(f"{direction} was made at {d.site}; drop --layer or pass the matching layer")
        else:
            if layer is None:
                raise SpecError("--positive/--negative need --layer")
            assert positive is not None and negative is not None
            with err.status("computing the mean difference…"):
                d = mean_difference(the_model.model, the_model.tokenizer, read_texts(positive), read_texts(negative), layer,
                                    reduce="mean" if reduce == "mean" else "last", fingerprint=the_model.info.fingerprint)
        if normalise and not d.reference_norm:
            from dataclasses import replace

            d = replace(d, reference_norm=reference_norm(the_model.model, the_model.tokenizer, texts, d.site))
        steerings = [Steering(d, c, normalise) for c in coefs]
        for s in steerings:
            SteeredModel(the_model, s)  # refuses a direction made on another model, before any work
        out.mkdir(parents=True, exist_ok=True)
        d.save(out / "direction.json")
        with err.status(f"generating {len(texts)} prompt(s) x {len(coefs) + 1} settings…"):
            generations = compare_generations(the_model, texts, steerings, max_tokens=max_tokens)
        evals: list[SteeringEval] = []
        if task:
            from oversight.evals.resolve import resolve_tasks
            from oversight.models.cache import ResponseCache
            from oversight.paths import cache_dir

            tasks = resolve_tasks(task, seed=seed)
            cache = None if no_cache else ResponseCache(cache_dir() / "responses.sqlite")
            with progress_bar() as update:
                _, evals = evaluate_steering(the_model, steerings, tasks, out / "runs", limit=limit, seed=seed, cache=cache, progress=update)
        payload = {
            "model": the_model.info.spec, "fingerprint": the_model.info.fingerprint, "command": _command_line(),
            "direction": {"site": d.site, "source": d.source, "norm": d.norm, "reference_norm": d.reference_norm, "reduce": d.reduce,
                          "n_positive": d.n_positive, "n_negative": d.n_negative, "sha256": d.digest(), "file": str(out / "direction.json")},
            "steerings": [{"coef": s.coef, "normalise": s.normalise, "added_norm": float(s.vector.norm()),
                           "fingerprint": SteeredModel(the_model, s).info.fingerprint} for s in steerings],
            "generations": [asdict(g) for g in generations],
            "evaluation": [{"coef": e.steering.coef, "run_dir": str(e.run_dir),
                            "comparisons": [{**asdict(c), **asdict(c.comparison)} for c in e.comparisons]} for e in evals],
        }
        _write_json(out / "results.json", payload)
        page = write_page(steering_page(the_model.info.spec, d, steerings, generations, evals, command=_command_line(),
                                        fingerprint=the_model.info.fingerprint), out / "page.html")
        if json_out:
            print(json.dumps({**payload, "results": str(out / "results.json"), "page": str(page)}, ensure_ascii=False, default=str))
            return
        for g in generations:
            console.print(f"[bold]{g.prompt!r}[/]", highlight=False)
            console.print(f"  unsteered: {g.baseline!r}", highlight=False, markup=False)
            for value, text in g.steered:
                console.print(f"  coef {value:g}: {text!r}", highlight=False, markup=False)
        if evals:
            table = Table(title="steered − unsteered, paired by item")
            for col in ("coef", "task", "metric", "unsteered", "steered", "diff", "95% CI", "p", "n"):
                table.add_column(col)
            for e in evals:
                for c in e.comparisons:
                    p = c.comparison
                    table.add_row(f"{e.steering.coef:g}", c.task, c.metric, f"{p.mean_a:.3f}", f"{p.mean_b:.3f}", f"{p.diff:+.3f}",
                                  f"[{p.ci_low:+.3f}, {p.ci_high:+.3f}]", f"{p.p_value:.3g}", str(p.n))
            console.print(table)
        console.print(f"results: [bold]{out / 'results.json'}[/]  page: [bold]{page}[/]")
