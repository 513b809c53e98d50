"""Where a prediction forms and what carries it: `oversight lens` and `oversight patch`."""

from __future__ import annotations

import json
import shlex
import sys
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
LayersOpt = Annotated[str | None, typer.Option("--layers", help="comma-separated layers (negative counts from the end); default: all")]


def _ints(text: str | None, option: str) -> list[int] | None:
    if text is None or not text.strip():
        return None
    try:
        return [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        raise SpecError(f"{option} takes comma-separated integers, got {text!r}") from None


def _command_line() -> str:
    return " ".join(shlex.quote(a) for a in ["oversight", *sys.argv[1:]])


def _write(out: Path, payload: dict[str, Any], page: Any) -> tuple[Path, Path]:
    from oversight.interp.pages import write_page

    out.mkdir(parents=True, exist_ok=True)
    results = out / "results.json"
    results.write_text(json.dumps(payload, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    return results, write_page(page, out / "page.html")


@app.command()
def lens(
    text: Annotated[str, typer.Option("--text", help="the prompt to read")],
    out: OutOpt,
    model: ModelOpt = "default",
    target: Annotated[str | None, typer.Option("--target", help="a token to follow across layers, as text (mind the leading space: ' Paris')")] = None,
    top_k: Annotated[int, typer.Option("--top-k", min=1, max=100, help="top tokens kept per layer and position")] = 5,
    layers: LayersOpt = None,
    positions: Annotated[str | None, typer.Option("--positions", help="comma-separated token positions (negative from the end); default: all")] = None,
    dtype: DtypeOpt = "float32",
    json_out: JsonOpt = False,
) -> None:
    """Logit lens: the next-token prediction read from the residual stream after every layer."""
    from oversight.interp.lens import lens_page, logit_lens
    from oversight.interp.pages import show_token

    with user_errors():
        chosen_layers, chosen_positions = _ints(layers, "--layers"), _ints(positions, "--positions")
        lm = local_model(model, dtype)
        result = logit_lens(lm.model, lm.tokenizer, text, target=target, top_k=top_k, layers=chosen_layers,
                            positions=chosen_positions)
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        info = {"spec": lm.info.spec, "fingerprint": lm.info.fingerprint}
        payload = {"command": "lens", "model": info, **result.to_dict()}
        results, page = _write(out, payload, lens_page(result, model_name=lm.info.spec, command=_command_line()))
        if json_out:
            print(json.dumps({**payload, "results": str(results), "page": str(page)}, ensure_ascii=False))
            return
        last = len(result.positions) - 1
        table = Table(title=f"{model} · logit lens at position {result.positions[last]} ({show_token(result.tokens[result.positions[last]])})")
        table.add_column("layer", justify="right")
        table.add_column(f"top {min(3, result.k)}")
        if result.target is not None:
            table.add_column(f"p({show_token(result.target.token)})", justify="right")
            table.add_column("rank", justify="right")
        for r, layer in enumerate(result.layers):
            tops = "  ".join(f"{show_token(t)} {p:.2f}" for t, p in zip(result.top_tokens[r][last][:3], result.top_probs[r, last, :3], strict=True))
            row = [str(layer), tops]
            if result.target_probs is not None and result.target_ranks is not None:
                row += [f"{result.target_probs[r, last]:.3f}", str(int(result.target_ranks[r, last]))]
            table.add_row(*row)
        console.print(table, highlight=False)
        console.print(f"results: {results} · page: {page}")


@app.command()
def patch(
    out: OutOpt,
    model: ModelOpt = "default",
    clean: Annotated[str | None, typer.Option("--clean", help="the clean prompt")] = None,
    corrupted: Annotated[str | None, typer.Option("--corrupted", help="the corrupted prompt (same token length)")] = None,
    answer: Annotated[str | None, typer.Option("--answer", help="the clean prompt's answer token, as text (' Paris')")] = None,
    wrong: Annotated[str | None, typer.Option("--wrong", help="the corrupted prompt's answer token (' Rome')")] = None,
    pairs: Annotated[Path | None, typer.Option("--pairs", help="JSONL of pairs (clean, corrupted, answer, wrong), effects averaged")] = None,
    sites: Annotated[str, typer.Option("--sites", help="comma-separated: resid, attn, mlp, heads")] = "resid,heads",
    layers: LayersOpt = None,
    head_positions: Annotated[str, typer.Option("--head-positions", help="patch each head at all positions at once ('all') or at each position ('each')")] = "all",
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, help="patched runs per forward pass")] = 64,
    dtype: DtypeOpt = "float32",
    json_out: JsonOpt = False,
) -> None:
    """Activation patching: copy activations from a clean run into a corrupted one, one at a time,
    and measure how much of the clean answer each restores."""
    from oversight.interp.patching import (
        SITE_KINDS,
        PromptPair,
        activation_patching,
        load_pairs,
        pair_token_ids,
        patch_page,
    )

    with user_errors():
        kinds = [s.strip() for s in sites.split(",") if s.strip()]
        unknown = [s for s in kinds if s not in SITE_KINDS]
        if unknown or not kinds:
            raise SpecError(f"--sites takes a comma-separated list of {', '.join(SITE_KINDS)}; got {sites!r}")
        if head_positions not in ("all", "each"):
            raise SpecError(f"--head-positions must be 'all' or 'each', got {head_positions!r}")
        single = [clean, corrupted, answer, wrong]
        if pairs is not None and any(v is not None for v in single):
            raise SpecError("give either --pairs FILE or --clean/--corrupted/--answer/--wrong, not both")
        if pairs is None and any(v is None for v in single):
            missing = [name for name, v in zip(("--clean", "--corrupted", "--answer", "--wrong"), single, strict=True) if v is None]
            raise SpecError(f"missing {', '.join(missing)} (or give --pairs FILE.jsonl)")
        chosen_layers = _ints(layers, "--layers")
        lm = local_model(model, dtype)
        if pairs is not None:
            prompt_pairs = load_pairs(pairs, lm.tokenizer)
        else:
            prompt_pairs = [PromptPair(clean or "", corrupted or "", answer, wrong)]
            pair_token_ids(lm.tokenizer, prompt_pairs[0])
        err.print(f"[bold]{len(prompt_pairs)} pair(s)[/] · sites {', '.join(kinds)} · [bold]{model}[/]")
        with progress_bar() as update:
            result = activation_patching(
                lm.model, lm.tokenizer, prompt_pairs, kinds, layers=chosen_layers,
                head_positions=head_positions,  # type: ignore[arg-type]
                batch_size=batch_size, progress=lambda done, total: update(done, total, "patch"),
            )
        for warning in result.warnings:
            err.print(f"[yellow]warning:[/] {warning}", highlight=False)
        info = {"spec": lm.info.spec, "fingerprint": lm.info.fingerprint}
        payload = {"command": "patch", "model": info, **result.to_dict()}
        results, page = _write(out, payload, patch_page(result, model_name=lm.info.spec, command=_command_line()))
        if json_out:
            print(json.dumps({**payload, "results": str(results), "page": str(page)}, ensure_ascii=False))
            return
        console.print(f"metric: {result.metric_name}; clean {result.clean.mean():.3f}, corrupted {result.corrupted.mean():.3f}"
                      + (f" (means over {len(result.runs)} pairs)" if len(result.runs) > 1 else ""), highlight=False)
        table = Table(title=f"{model} · largest normalised effects (1 = restores the clean answer)")
        for column in ("grid", "site", "position", "head", "effect"):
            table.add_column(column, justify="right" if column == "effect" else "left")
        for name, p, effect in result.top_patches(3, per_grid=True):
            position = "all" if p.position is None else f"{p.position} {result.runs[0].clean_tokens[p.position]!r}"
            table.add_row(name, p.site, position, "—" if p.head is None else str(p.head), f"{effect:+.3f}")
        console.print(table, highlight=False)
        console.print(f"results: {results} · page: {page}")
