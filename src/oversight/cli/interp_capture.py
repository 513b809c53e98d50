"""`oversight trace`: capture activations of a local model to an activation store on disk."""

from __future__ import annotations

import json
import shlex
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.markup import escape
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
    from oversight.interp.activation_store import ActivationStore, SiteSummary
    from oversight.interp.trace import Positions


@app.command()
def trace(
    out: Annotated[Path, typer.Option("--out", help="store folder: shards, manifest.json, summary.json, page.html (re-use it to resume)")],
    sites: Annotated[str, typer.Option("--sites", help="comma-separated: resid.N, attn.N, mlp.N, heads.N, neurons.N, pattern.N, embed, final_norm, module paths or globs")],
    model: ModelOpt = "default",
    text: Annotated[list[str] | None, typer.Option("--text", help="a text to run (repeatable)")] = None,
    data: Annotated[Path | None, typer.Option("--data", help="texts: .jsonl or .csv with a text field, or .txt (one per line)")] = None,
    field: Annotated[str | None, typer.Option("--field", help="JSONL key or CSV column of the text (default: text, prompt, …)")] = None,
    limit: Annotated[int | None, typer.Option(min=1, help="first N texts")] = None,
    positions: Annotated[str, typer.Option("--positions", help="last | all | token indices such as 0,-1")] = "last",
    dtype: DtypeOpt = "float32",
    cache_dtype: Annotated[str | None, typer.Option("--cache-dtype", help="float32 or bfloat16 for the stored activations (default: --dtype)")] = None,
    batch_size: Annotated[int, typer.Option(min=1)] = 16,
    texts_per_shard: Annotated[int, typer.Option(min=1, help="texts per shard file (memory holds about one shard)")] = 1024,
    padding_side: Annotated[str, typer.Option(help="right or left (the activations are the same)")] = "right",
    json_out: JsonOpt = False,
) -> None:
    """Capture activations at named sites into safetensors shards (bounded memory, resumable)."""
    import torch

    from oversight.interp.activation_store import summarize, write_activations
    from oversight.interp.sites import resolve_sites

    with user_errors():
        texts, source = _texts(text, data, field, limit)
        names = [s.strip() for s in sites.split(",") if s.strip()]
        if not names:
            raise SpecError("--sites is empty; e.g. --sites resid.0,resid.5")
        where = _positions(positions)
        stored = cache_dtype or dtype
        if stored not in ("float32", "bfloat16"):
            raise SpecError(f"--cache-dtype {stored} is not allowed: use float32 or bfloat16 (Gemma's activations overflow float16)")
        if padding_side not in ("right", "left"):
            raise SpecError(f"--padding-side must be right or left, not {padding_side!r}")
        lm = local_model(model, dtype)
        resolve_sites(lm.model, names)  # unknown names and layers fail before any work
        err.print(f"[bold]{len(texts)} texts[/] from {source} → {len(names)} site(s) of [bold]{model}[/] → {out}")
        with progress_bar() as update:
            store = write_activations(
                lm.model, lm.tokenizer, texts, names, out, positions=where, dtype=getattr(torch, stored),
                batch_size=batch_size, texts_per_shard=texts_per_shard, padding_side=padding_side,  # type: ignore[arg-type]
                model_name=lm.info.spec, fingerprint=lm.info.fingerprint,
                progress=lambda done, total: update(done, total, "capturing"),
            )
        summaries = summarize(store)
        payload = _payload(store, summaries, source)
        (out / "summary.json").write_text(json.dumps(payload, indent=1) + "\n", encoding="utf-8")
        payload["page"] = str(_write_page(store, summaries, source, lm.tokenizer))
        if json_out:
            print(json.dumps(payload))
            return
        table = Table(title=f"{store.manifest.model} · {store.n_texts} texts · positions {positions} · {store.manifest.dtype}")
        for col in ("site", "shape per text", "vectors", "mean norm", "max |x|"):
            table.add_column(col, justify="left" if col == "site" else "right")
        for s in summaries:
            table.add_row(escape(s.site), escape(_shape(s.shape)), str(s.rows), f"{s.mean_norm:.4g}", f"{s.max_abs:.4g}")
        console.print(table)
        console.print(f"store: [bold]{out}[/] ({len(store.manifest.shards)} shard(s)) · page: {payload['page']}")


def _texts(text: list[str] | None, data: Path | None, field: str | None, limit: int | None) -> tuple[list[str], str]:
    from oversight.interp.corpus import read_texts

    if bool(text) == (data is not None):
        raise SpecError("give --text (repeatable) or --data FILE, not both and not neither")
    if data is not None:
        return read_texts(data, field=field, limit=limit), str(data)
    texts = list(text or [])[:limit]
    if not all(t.strip() for t in texts):
        raise SpecError("--text is empty")
    return texts, "--text"


def _positions(value: str) -> Positions:
    if value in ("last", "all"):
        return value  # type: ignore[return-value]
    try:
        indices = [int(v) for v in value.split(",")]
    except ValueError:
        raise SpecError(f"--positions {value!r}: use last, all or comma-separated token indices such as 0,-1") from None
    return indices


def _shape(shape: tuple[int, ...]) -> str:
    return "[" + ", ".join("tokens" if d == -1 else str(d) for d in shape) + "]"


def _payload(store: ActivationStore, summaries: list[SiteSummary], source: str) -> dict[str, Any]:
    m = store.manifest
    return {
        "store": str(store.directory), "model": m.model, "fingerprint": m.fingerprint, "source": source,
        "n_texts": store.n_texts, "positions": m.positions, "dtype": m.dtype, "shards": len(m.shards),
        "complete": m.complete, "sites": [s.to_dict() for s in summaries],
        "command": " ".join(shlex.quote(a) for a in ["oversight", *sys.argv[1:]]),
    }


def _write_page(store: ActivationStore, summaries: list[SiteSummary], source: str, tokenizer: Any) -> Path:
    from oversight.interp.pages import Page, Plot, heatmap_svg, line_plot_svg, write_page
    from oversight.interp.pages import Table as PageTable

    m = store.manifest
    rows = [(s.site, _shape(s.shape), s.rows, s.mean_norm, s.max_abs, s.mean_entropy) for s in summaries]
    figures = []
    by_kind: dict[str, dict[int, float]] = {}
    for s in summaries:
        kind, _, layer = s.site.partition(".")
        if kind in ("resid", "attn", "mlp", "heads", "neurons") and layer.lstrip("-").isdigit():
            by_kind.setdefault(kind, {})[int(layer)] = s.mean_norm
    series = {k: v for k, v in by_kind.items() if len(v) > 1}
    if series:
        layers = sorted({i for v in series.values() for i in v})
        lines = {k: ([v.get(i, float("nan")) for i in layers], None, None) for k, v in series.items()}
        figures.append(Plot("Mean norm by layer", line_plot_svg(layers, lines, xlabel="layer", ylabel="mean L2 norm")))
    first_pattern = next((s.site for s in summaries if s.mean_entropy is not None), None)
    if first_pattern is not None:
        pattern = store.of(first_pattern, 0).float().mean(0)  # first text, averaged over heads
        tokens = [str(t) for t in tokenizer.convert_ids_to_tokens(store.read(first_pattern, 0, 1).token_ids[0])]
        figures.append(Plot(f"{first_pattern}, text 0, mean over heads",
                            heatmap_svg(pattern.numpy(), [f"q{i}" for i in range(pattern.shape[0])], tokens[: pattern.shape[1]],
                                        cmap="sequential", xlabel="key token", ylabel="query")))
    page = Page(
        title=f"Activations of {m.model}", kind="trace",
        description=f"{store.n_texts} texts from {source}; positions {m.positions}; stored as {m.dtype} in {len(m.shards)} shard(s).",
        summary=[("model", m.model), ("fingerprint", m.fingerprint), ("texts", store.n_texts), ("complete", m.complete)],
        figures=figures,
        tables=[PageTable("Sites", ["site", "shape per text", "vectors", "mean norm", "max |x|", "mean entropy"], rows)],
        command=" ".join(shlex.quote(a) for a in ["oversight", *sys.argv[1:]]),
    )
    return write_page(page, store.directory / "page.html")
