"""What every command shares: the Typer app, consoles, option types, error handling, progress."""

from __future__ import annotations

import gc
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Annotated, Any

import typer
from rich.console import Console
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
    TimeRemainingColumn,
)

from oversight.errors import OversightError, SpecError
from oversight.models.base import ModelError

if TYPE_CHECKING:
    from oversight.models.hf import HFModel

app = typer.Typer(help="Measure, monitor and look inside language models.", no_args_is_help=True, add_completion=False)
console = Console()
err = Console(stderr=True)

ModelOpt = Annotated[str, typer.Option("--model", "-m", help="default | hf:<dir|file.gguf|hub id> | openai:<base_url>#<model>")]
DtypeOpt = Annotated[str, typer.Option(help="float32 (exact) or bfloat16 (faster, less exact)")]
DbOpt = Annotated[str | None, typer.Option("--db", help="database URL (sqlite:///file.db, postgresql://user@host/db) or SQLite file; default: oversight.db in the data dir")]
JsonOpt = Annotated[bool, typer.Option("--json", help="print one JSON object")]


@contextmanager
def user_errors() -> Iterator[None]:
    """Errors a user can fix print as one red line (no traceback) and exit 2."""
    try:
        yield
    except (OversightError, ModelError) as e:
        err.print(f"[bold red]error:[/] {e}", highlight=False, soft_wrap=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        err.print("[yellow]interrupted[/]: finished work is saved; re-run the same command to resume.")
        raise typer.Exit(130) from None


def local_model(spec: str, dtype: str) -> HFModel:
    """Load a model whose weights are here, for the commands that look inside it (an API model
    has no activations to read). Sets the allocator policy those commands want: see
    :mod:`oversight.interp.memory`."""
    from oversight.interp.memory import keep_freed_memory
    from oversight.models.hf import HFModel
    from oversight.models.registry import load_model

    with err.status(f"loading {spec}…"):
        model = load_model(spec, dtype=dtype)
    if not isinstance(model, HFModel):
        raise SpecError(
            f"{spec} is served over an API: looking inside needs a local model whose weights are here "
            "(default, or hf:<dir | file.gguf>)"
        )
    keep_freed_memory()
    return model


def open_model(spec: str, dtype: str, *, cache: bool) -> Any:
    from oversight.models.cache import CachedModel, ResponseCache
    from oversight.models.registry import load_model
    from oversight.paths import cache_dir

    with err.status(f"loading {spec}…"):
        model = load_model(spec, dtype=dtype)
    # The model and the libraries behind it live until the command ends: freezing them out
    # of the cyclic collector's reach spares every later collection, and the one at exit
    # (about a second with transformers loaded), from walking ~400k objects.
    gc.freeze()
    return CachedModel(model, ResponseCache(cache_dir() / "responses.sqlite")) if cache else model


@contextmanager
def progress_bar() -> Iterator[Callable[[int, int, str], None]]:
    columns = (
        TextColumn("[bold]{task.description}"), BarColumn(), MofNCompleteColumn(),
        TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
    )
    with Progress(*columns, console=err, transient=False) as bar:
        task_id = bar.add_task("starting", total=None)

        def update(done: int, total: int, description: str) -> None:
            bar.update(task_id, completed=done, total=total, description=description)

        yield update


def slug(spec: str) -> str:
    tail = spec.rstrip("/").split("/")[-1].split("#")[-1].split(":")[-1] or "model"
    return "".join(ch if ch.isalnum() or ch in "-_." else "-" for ch in tail)[:40]
