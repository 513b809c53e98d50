"""`oversight probe` (supervised probes, layer sweeps, saved probes) and `oversight ccs` (CCS against
zero-shot and supervised probes)."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

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

if TYPE_CHECKING:
    from oversight.interp.contrast import Dataset
    from oversight.models.hf import HFModel

OutOpt = Annotated[Path, typer.Option("--out", help="folder for results.json and page.html")]
DataOpt = Annotated[Path | None, typer.Option("--data", help="JSONL/CSV with text and label (1 true, 0 false); a TruthfulQA CSV or persona JSONL also works")]
DatasetOpt = Annotated[str | None, typer.Option("--dataset", help="built-in set: facts (generated true/false facts), truthfulqa, persona")]
TemplateOpt = Annotated[str | None, typer.Option("--template", help="contrast template with {text} and {answer} (default: '{text}\\nQuestion: Is this true? Answer: {answer}')")]
AnswersOpt = Annotated[str, typer.Option("--answers", help="the answers meaning true and false, comma-separated")]
LimitOpt = Annotated[int | None, typer.Option("--n", min=4, help="statements to use, as whole groups (default: 400 for built-in sets, all of a file)")]
DataRootOpt = Annotated[Path | None, typer.Option("--data-root", help="folder of the public datasets (default: $OVERSIGHT_SHARED_DATA or ./shared/data)")]
BUILTIN_N = 400
PERSONA_FILE = "anthropic_model_written_evals/persona/no-shut-down.jsonl"


def load_data(data: Path | None, dataset: str | None, n: int | None, seed: int, data_root: Path | None) -> Dataset:
    from oversight.interp.contrast import (
        generate_facts,
        load_any,
        load_persona,
        load_truthfulqa,
        subsample,
    )
    from oversight.interp.corpus import data_root as shared_root

    if dataset is None and data is None:
        raise SpecError("give --data FILE (text + label) or --dataset facts|truthfulqa|persona")
    if dataset is None:
        assert data is not None
        loaded = load_any(data, seed=seed)
        return subsample(loaded, n, seed=seed) if n else loaded
    if dataset == "facts":
        if data is not None:
            raise SpecError("--dataset facts is generated: drop --data")
        return generate_facts(n or BUILTIN_N, seed=seed)
    if dataset in ("truthfulqa", "persona"):
        root = shared_root(data_root)
        path = data or root / ("truthfulqa/TruthfulQA.csv" if dataset == "truthfulqa" else PERSONA_FILE)
        if not path.is_file():
            raise SpecError(f"--dataset {dataset} reads {path}, which is not there: pass --data PATH or --data-root DIR "
                            "(or set OVERSIGHT_SHARED_DATA)")
        loaded = load_truthfulqa(path, seed=seed) if dataset == "truthfulqa" else load_persona(path)
        return subsample(loaded, n or BUILTIN_N, seed=seed)
    raise SpecError(f"unknown --dataset {dataset!r}; choose facts, truthfulqa or persona")


def layer_sites(lm: HFModel, site: str, layer: int | None) -> list[str]:
    """``site.N`` for the chosen layer, or for every layer; errors name the valid range."""
    from oversight.interp.sites import layout, resolve_sites

    families = ("resid", "attn", "mlp", "heads", "neurons")
    if site not in families:
        raise SpecError(f"--site must be one of {', '.join(families)}, got {site!r}")
    n_layers = layout(lm.model).n_layers
    names = [f"{site}.{layer}"] if layer is not None else [f"{site}.{i}" for i in range(n_layers)]
    resolve_sites(lm.model, names)  # raises for a layer out of range
    if layer is not None and layer < 0:
        names = [f"{site}.{layer % n_layers}"]
    return names


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["oversight", *sys.argv[1:]])


def _write(out: Path, payload: dict[str, Any], page: Any) -> tuple[Path, Path]:
    from oversight.interp.pages import write_page

    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    results.write_text(json.dumps(payload, indent=1, ensure_ascii=False, default=str) + "\n", encoding="utf-8")
    return results, write_page(page, out / "page.html")


@app.command()
def probe(
    out: OutOpt,
    model: ModelOpt = "default",
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    layer: Annotated[int | None, typer.Option("--layer", help="one layer (negative counts from the end); default: sweep all")] = None,
    sweep: Annotated[bool, typer.Option("--sweep", help="every layer in one capture pass (the default without --layer)")] = False,
    site: Annotated[str, typer.Option("--site", help="resid | attn | mlp | heads | neurons")] = "resid",
    position: Annotated[str, typer.Option("--position", help="'last' token of the prompt or a token index (-2, 0…)")] = "last",
    template: TemplateOpt = None,
    answers: AnswersOpt = "Yes,No",
    kind: Annotated[str, typer.Option("--kind", help="probe saved with --save: logistic | mean_difference")] = "logistic",
    save: Annotated[Path | None, typer.Option("--save", help="save the chosen probe here (JSON + .safetensors) for the probe monitor")] = None,
    n: LimitOpt = None,
    test_fraction: Annotated[float, typer.Option(help="share of groups held out for test")] = 0.3,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    data_root: DataRootOpt = None,
    dtype: DtypeOpt = "float32",
    json_out: JsonOpt = False,
) -> None:
    """Train linear probes (logistic, mean difference) for true/false on a model's activations."""
    from oversight.interp.contrast import ContrastTemplate, parse_answers
    from oversight.interp.probe_file import SavedAccuracy, save_probe
    from oversight.interp.probe_report import acc_text, probe_page
    from oversight.interp.probes import PROBE_KINDS, parse_position, prompt_features, run_probes

    with user_errors():
        if layer is not None and sweep:
            raise SpecError("give --layer N or --sweep, not both")
        if kind not in PROBE_KINDS:
            raise SpecError(f"--kind must be one of {', '.join(PROBE_KINDS)}, got {kind!r}")
        where = parse_position(position)
        tmpl = ContrastTemplate(template, parse_answers(answers)) if template else ContrastTemplate(answers=parse_answers(answers))
        ds = load_data(data, dataset, n, seed, data_root)
        lm = local_model(model, dtype)
        sites = layer_sites(lm, site, layer)
        prompts = [tmpl.prompt(t) for t in ds.texts]
        err.print(f"[bold]{len(ds)} statements[/] ({ds.name}) → {len(sites)} site(s) of [bold]{model}[/]")
        with progress_bar() as update:
            done = [0]

            def advance(k: int) -> None:
                done[0] += k
                update(done[0], len(prompts), "capture")

            feats = prompt_features(lm.model, lm.tokenizer, prompts, sites, position=where, batch_size=batch_size, progress=advance)
            fitted = [0]

            def fit_step(k: int) -> None:
                fitted[0] += k
                update(fitted[0], len(sites), "fit probes")

            run = run_probes(feats, ds.labels, [s.group for s in ds.statements], dataset=ds.name, position=where,
                             test_fraction=test_fraction, seed=seed, progress=fit_step)
        info = {"spec": lm.info.spec, "fingerprint": lm.info.fingerprint}
        saved_path = None
        if save is not None:
            chosen = run.chosen[kind]
            saved_path = save_probe(
                save, chosen.probe, model_spec=lm.info.spec, fingerprint=lm.info.fingerprint, site=chosen.site,
                layer=int(chosen.site.rsplit(".", 1)[1]), position=where, template=tmpl,
                accuracy=SavedAccuracy.of(chosen.test, "test"), dataset=ds.name, n_train=run.split_sizes["fit"],
            )
        payload = {"command": "probe", "model": info, "template": tmpl.to_dict(), **run.to_json(),
                   "saved_probe": str(saved_path) if saved_path else None}
        results, page = _write(out, payload, probe_page(run, model=info, template=tmpl.format, command=_command_line(),
                                                         saved=str(saved_path) if saved_path else None))
        if json_out:
            print(json.dumps({**payload, "results": str(results), "page": str(page)}, default=str))
            return
        table = Table(title=f"{model} · {ds.name} · test accuracy")
        for col in ("probe", "site", "validation", "test (95% CI)"):
            table.add_column(col)
        for k, score in run.chosen.items():
            table.add_row(k, score.site, acc_text(score.validation), acc_text(score.test))
        console.print(table)
        if saved_path:
            console.print(f"probe saved: [bold]{saved_path}[/] (run it: oversight monitor --monitor probe --option probe={saved_path})")
        console.print(f"results: {results} · page: {page}")


@app.command()
def ccs(
    out: OutOpt,
    model: ModelOpt = "default",
    data: DataOpt = None,
    dataset: DatasetOpt = None,
    template: TemplateOpt = None,
    answers: AnswersOpt = "Yes,No",
    layer: Annotated[list[int] | None, typer.Option("--layer", help="layers to compare (repeatable; default: all)")] = None,
    position: Annotated[str, typer.Option("--position", help="prompt token the supervised probes read: 'last' or an index")] = "last",
    restarts: Annotated[int, typer.Option(min=1, help="CCS random restarts (the lowest loss is kept)")] = 10,
    epochs: Annotated[int, typer.Option(min=1, help="full-batch CCS optimisation steps")] = 1000,
    n: LimitOpt = None,
    test_fraction: Annotated[float, typer.Option(help="share of groups held out for test")] = 0.3,
    seed: int = 0,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    data_root: DataRootOpt = None,
    dtype: DtypeOpt = "float32",
    json_out: JsonOpt = False,
) -> None:
    """CCS against zero-shot and supervised probes, per layer and at the best layer (chosen on validation)."""
    from oversight.interp.contrast import ContrastTemplate, parse_answers
    from oversight.interp.knowledge import compare
    from oversight.interp.probe_report import METHOD_NAMES, acc_text, ccs_page
    from oversight.interp.probes import parse_position

    with user_errors():
        where = parse_position(position)
        tmpl = ContrastTemplate(template, parse_answers(answers)) if template else ContrastTemplate(answers=parse_answers(answers))
        if not tmpl.has_answer:
            raise SpecError(f"CCS needs {{answer}} in the template to build contrast pairs: {tmpl.format!r}")
        ds = load_data(data, dataset, n, seed, data_root)
        lm = local_model(model, dtype)
        sites = [s for one in (layer or [None]) for s in layer_sites(lm, "resid", one)]  # type: ignore[list-item]
        sites = list(dict.fromkeys(sites))
        err.print(f"[bold]{len(ds)} statements[/] ({ds.name}) · {len(sites)} layer(s) of [bold]{model}[/]")
        with progress_bar() as update:
            comparison = compare(lm, ds, sites, template=tmpl, position=where, restarts=restarts, epochs=epochs,
                                 seed=seed, test_fraction=test_fraction, batch_size=batch_size,
                                 progress=lambda stage, done, total: update(done, total, stage))
        info = {"spec": lm.info.spec, "fingerprint": lm.info.fingerprint}
        payload = {"command": "ccs", "model": info, **comparison.to_json()}
        results, page = _write(out, payload, ccs_page(comparison, model=info, command=_command_line()))
        if json_out:
            print(json.dumps({**payload, "results": str(results), "page": str(page)}, default=str))
            return
        table = Table(title=f"{model} · {ds.name} · test accuracy (best layer chosen on validation)")
        for col in ("method", "layer", "validation", "test (95% CI)"):
            table.add_column(col)
        for method in ("zero_shot", "zero_shot_calibrated"):
            score = comparison.zero_shot[method]
            table.add_row(METHOD_NAMES[method], "—", acc_text(score.validation), acc_text(score.test))
        for method in ("ccs", "logistic", "mean_difference", "logistic_pairs"):
            score = comparison.best_score(method)
            table.add_row(METHOD_NAMES[method], comparison.best[method], acc_text(score.validation), acc_text(score.test))
        console.print(table)
        console.print(f"results: {results} · page: {page}")
