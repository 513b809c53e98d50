"""Self-contained HTML pages for the interp commands (lens, patch, probe, ccs, neurons, steer).

One page shape for all of them: a title, a short description, a summary table, figures (inline
SVG) and data tables. Pages carry model text (token strings, prompts, generations), which is
untrusted: the Jinja environment autoescapes every value, figures are SVG checked by
:func:`oversight.report.plots.check_svg` when the page is rendered (not only when drawn), and a
Content-Security-Policy forbids scripts and remote loads. The file opens offline.

Figures come from matplotlib (never pyplot) through the report's :func:`~oversight.report.plots.figure`
and :func:`~oversight.report.plots.to_svg`, so they share its style and safety checks:

* :func:`heatmap_svg` — a matrix with labelled rows and columns, a diverging colormap centred
  on 0 (patching effects) or a sequential one (probabilities), optional text in each cell;
* :func:`line_plot_svg` — lines over a shared x with optional confidence bands (layer sweeps).

Tables can colour their cells and give each a tooltip (:class:`Cell`), which is how a logit
lens shows the top tokens of every (layer, position) without crowding its figure.
"""

from __future__ import annotations

import hashlib
import math
import re
import unicodedata
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import jinja2
import numpy as np
from markupsafe import Markup
from matplotlib import colormaps
from matplotlib.colors import Colormap, Normalize, TwoSlopeNorm, to_hex
from matplotlib.figure import Figure
from numpy.typing import ArrayLike

from oversight import __version__
from oversight.report.plots import GRID, INK, MUTED, check_svg, figure, to_svg

TEMPLATES = Path(__file__).parent / "templates"
#: Named colour scales: "diverging" is centred on 0 (blue below, red above), "sequential" runs
#: from white to dark blue (probabilities in [0, 1]). Any matplotlib colormap name works too.
COLORMAPS = {"diverging": "RdBu_r", "sequential": "Blues"}
#: Line colours: distinguishable and colour-blind friendly (the report's run colours).
LINE_COLORS = ("#3b5bdb", "#e8890c", "#0c8599", "#ae3ec9", "#495057", "#c2255c", "#74b816")
MISSING_COLOR = "#eaeef2"
_HEX = re.compile(r"#[0-9a-fA-F]{6}")
#: A line: (y, lower band, upper band); the bands are optional.
Series = tuple[ArrayLike, ArrayLike | None, ArrayLike | None]


@dataclass(frozen=True)
class Cell:
    """A table cell with an optional background colour and tooltip (both plain data, escaped)."""

    text: str
    title: str | None = None
    color: str | None = None  # "#rrggbb"; text turns white on dark backgrounds
    mono: bool = False  # token strings read better in a monospace font

    def __post_init__(self) -> None:
        # The colour goes into a style attribute: only a plain hex colour may get there.
        if self.color is not None and not _HEX.fullmatch(self.color):
            raise ValueError(f"cell colour must be '#rrggbb', got {self.color!r}")

    @property
    def ink(self) -> str | None:
        return None if self.color is None else _ink_on(self.color)


@dataclass(frozen=True)
class Table:
    """A data table: column names and rows of values (numbers are formatted, text is escaped)."""

    title: str
    columns: Sequence[str]
    rows: Sequence[Sequence[str | int | float | bool | Cell | None]]
    caption: str = ""

    def __post_init__(self) -> None:
        for i, row in enumerate(self.rows):
            if len(row) != len(self.columns):
                raise ValueError(f"table {self.title!r}: row {i} has {len(row)} cells for {len(self.columns)} columns")


@dataclass(frozen=True)
class Plot:
    """A figure: SVG from :func:`heatmap_svg`, :func:`line_plot_svg` or the report's ``to_svg``."""

    title: str
    svg: str
    caption: str = ""


@dataclass(frozen=True)
class Page:
    """Everything one interp page shows, top to bottom."""

    title: str
    description: str = ""
    kind: str = "interp"  # the command that made it ("lens", "patch", …), shown above the title
    summary: Sequence[tuple[str, str | int | float | bool | None]] = ()
    figures: Sequence[Plot] = ()
    tables: Sequence[Table] = ()
    notes: Sequence[str] = ()  # warnings a reader must see (e.g. a target that is several tokens)
    command: str | None = None  # the command line that made the page, for reproducing it
    extra: Mapping[str, str] = field(default_factory=dict)  # free key/value metadata for the footer


def render_page(page: Page) -> str:
    """The page as one HTML document (no external assets; every value escaped)."""
    figures = [(f, Markup(_checked(f.svg))) for f in page.figures]
    template = _environment().get_template("page.html.j2")
    return template.render(page=page, figures=figures, version=__version__)


def write_page(page: Page, path: str | Path) -> Path:
    """Render the page to ``path`` (parent folders are made); returns the path."""
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text(render_page(page), encoding="utf-8")
    return target


# -- figures -------------------------------------------------------------------------------------


def heatmap_svg(
    matrix: Sequence[Sequence[float]] | np.ndarray,
    row_labels: Sequence[str],
    col_labels: Sequence[str],
    title: str = "",
    cbar_label: str = "",
    cmap: str = "diverging",
    *,
    vmin: float | None = None,
    vmax: float | None = None,
    cell_text: Sequence[Sequence[str]] | None = None,
    xlabel: str = "",
    ylabel: str = "",
    plot_id: str | None = None,
    label_limit: int = 16,
) -> str:
    """A heatmap of ``matrix`` [rows, cols] as checked inline SVG; NaN cells are drawn grey.

    With ``cmap="diverging"`` the scale is symmetric around 0 (``vmin``/``vmax`` default to ±
    the largest magnitude), so white always means "no effect". ``cell_text`` writes a short
    string in each cell (e.g. the top token of a logit lens), shortened to fit.
    """
    data = np.asarray(matrix, dtype=float)
    if data.ndim != 2:
        raise ValueError(f"a heatmap needs a 2-D matrix, got shape {data.shape}")
    rows, cols = data.shape
    if len(row_labels) != rows or len(col_labels) != cols:
        raise ValueError(f"heatmap of shape {data.shape} needs {rows} row and {cols} column labels, got {len(row_labels)} and {len(col_labels)}")
    if cell_text is not None and (len(cell_text) != rows or any(len(r) != cols for r in cell_text)):
        raise ValueError(f"cell_text must have shape {data.shape}")
    colormap, norm = _scale(data, cmap, vmin, vmax)
    text_room = 0.0 if cell_text is None else 0.25
    width = min(max(3.2, 0.34 * cols + (0.45 if cell_text is None else 0.7 * cols / 2) + 1.6 + text_room), 16.0)
    height = min(max(2.0, 0.24 * rows + 1.1), 14.0)
    with figure(width, height) as (fig, ax):
        masked = np.ma.masked_invalid(data)
        colormap = colormap.with_extremes(bad=MISSING_COLOR)
        mesh = ax.pcolormesh(masked, cmap=colormap, norm=norm, edgecolors="white", linewidth=0.4)
        ax.set_xlim(0, cols)
        ax.set_ylim(rows, 0)  # first row on top, like a table
        ax.set_xticks(np.arange(cols) + 0.5, [label(c, label_limit) for c in col_labels], rotation=60 if cols > 4 else 0,
                      ha="right" if cols > 4 else "center", rotation_mode="anchor")
        ax.set_yticks(np.arange(rows) + 0.5, [label(r, label_limit) for r in row_labels])
        ax.tick_params(length=0, pad=3)
        for side in ax.spines.values():
            side.set_visible(False)
        if cell_text is not None:
            size = 6.5 if cols <= 12 else 5.5
            for r in range(rows):
                for c in range(cols):
                    value = data[r, c]
                    ink = _ink_on(to_hex(colormap(norm(value)))) if math.isfinite(value) else INK
                    ax.text(c + 0.5, r + 0.5, label(cell_text[r][c], 8), ha="center", va="center", fontsize=size, color=ink)
        if xlabel:
            ax.set_xlabel(xlabel)
        if ylabel:
            ax.set_ylabel(ylabel)
        if title:
            ax.set_title(label(title, 120), fontsize=9.5, color=INK, loc="left")
        bar = fig.colorbar(mesh, ax=ax, fraction=0.04 if cols > 6 else 0.08, pad=0.02)
        if bar.solids is not None:
            bar.solids.set_rasterized(False)  # a raster <image> is not allowed in report SVG
            bar.solids.set_edgecolor("face")  # no hairline gaps between the colour steps
        bar.outline.set_visible(False)
        bar.ax.tick_params(length=2, labelsize=7, colors=MUTED)
        if cbar_label:
            bar.set_label(label(cbar_label, 60), fontsize=7.5, color=MUTED)
        return _quiet_svg(fig, plot_id or _plot_id("heatmap", title, data))


def line_plot_svg(
    x: Sequence[float] | np.ndarray,
    series: Mapping[str, Series],
    title: str = "",
    *,
    xlabel: str = "",
    ylabel: str = "",
    hline: float | None = None,
    ylim: tuple[float, float] | None = None,
    plot_id: str | None = None,
    integer_x: bool = True,
    width: float = 4.6,
    height: float = 2.6,
) -> str:
    """Lines over a shared ``x``: each series is ``(y, lo, hi)`` where ``lo``/``hi`` (or None)
    bound a shaded confidence band. ``hline`` draws a dashed reference (e.g. chance accuracy)."""
    xs = np.asarray(x, dtype=float)
    if not series:
        raise ValueError("a line plot needs at least one series")
    with figure(width, height) as (fig, ax):
        for i, (name, (y, lo, hi)) in enumerate(series.items()):
            ys = np.asarray(y, dtype=float)
            if ys.shape != xs.shape:
                raise ValueError(f"series {name!r} has {ys.shape[0]} values for {xs.shape[0]} x values")
            color = LINE_COLORS[i % len(LINE_COLORS)]
            if lo is not None and hi is not None:
                ax.fill_between(xs, np.asarray(lo, dtype=float), np.asarray(hi, dtype=float), color=color, alpha=0.18, linewidth=0)
            ax.plot(xs, ys, color=color, linewidth=1.6, marker="o", markersize=3, label=label(name, 40))
        if hline is not None:
            ax.axhline(hline, color=MUTED, linewidth=0.9, linestyle=(0, (3, 2)), zorder=0)
        if ylim is not None:
            ax.set_ylim(*ylim)
        if integer_x and len(xs) and np.all(xs == np.round(xs)):
            step = max(1, math.ceil(len(xs) / 20))
            ax.set_xticks(xs[::step])
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        if title:
            ax.set_title(label(title, 120), fontsize=9.5, color=INK, loc="left")
        ax.grid(color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        if len(series) > 3:  # many lines: the legend beside the plot, never over the data
            ax.legend(frameon=False, fontsize=7.5, loc="upper left", bbox_to_anchor=(1.01, 1.0))
        elif len(series) > 1:
            ax.legend(frameon=False, fontsize=7.5)
        return _quiet_svg(fig, plot_id or _plot_id("lines", title, xs))


def color_scale(values: np.ndarray | Sequence[float], cmap: str = "sequential", *, vmin: float | None = None,
                vmax: float | None = None) -> list[str]:
    """The background colour ("#rrggbb") of each value on the same scale as :func:`heatmap_svg`,
    for colouring :class:`Cell` s; NaN gets the missing colour."""
    data = np.asarray(values, dtype=float)
    colormap, norm = _scale(data.reshape(1, -1) if data.size else np.zeros((1, 1)), cmap, vmin, vmax)
    return [to_hex(colormap(norm(v))) if math.isfinite(v) else MISSING_COLOR for v in data.ravel()]


def label(text: str, limit: int = 30) -> str:
    """Text for a tick or cell: control characters shown as escapes (a token "\\n" stays
    visible), others dropped, long strings shortened in the middle."""
    shown = text.replace("\n", "\\n").replace("\t", "\\t").replace("\r", "\\r")
    clean = "".join(ch for ch in shown if unicodedata.category(ch)[0] != "C")
    if len(clean) <= limit:
        return clean
    half = max((limit - 1) // 2, 1)
    return clean[:half] + "…" + clean[-half:]


def show_token(token: str) -> str:
    """A token string as a reader should see it: quoted, so leading spaces are visible."""
    return repr(token)[1:-1].join("‘’") if token.strip() != token or not token else label(token, 40)


# -- internals -----------------------------------------------------------------------------------


def _scale(data: np.ndarray, cmap: str, vmin: float | None, vmax: float | None) -> tuple[Colormap, Normalize]:
    colormap = colormaps[COLORMAPS.get(cmap, cmap)]
    finite = data[np.isfinite(data)]
    if cmap == "diverging":
        bound = max(abs(float(finite.min())) if finite.size else 0.0, abs(float(finite.max())) if finite.size else 0.0)
        bound = bound or 1.0
        low = -bound if vmin is None else vmin
        high = bound if vmax is None else vmax
        low, high = min(low, -1e-9), max(high, 1e-9)  # TwoSlopeNorm needs low < 0 < high
        return colormap, TwoSlopeNorm(vcenter=0.0, vmin=low, vmax=high)
    low = (float(finite.min()) if finite.size else 0.0) if vmin is None else vmin
    high = (float(finite.max()) if finite.size else 1.0) if vmax is None else vmax
    if high <= low:
        high = low + 1.0
    return colormap, Normalize(vmin=low, vmax=high)


def _ink_on(color: str) -> str:
    """Dark text on light backgrounds, white on dark ones (relative luminance)."""
    r, g, b = (int(color[i : i + 2], 16) / 255 for i in (1, 3, 5))
    lum = 0.2126 * r + 0.7152 * g + 0.0722 * b
    return "#ffffff" if lum < 0.5 else INK


def _plot_id(kind: str, title: str, data: np.ndarray) -> str:
    """A stable id (salts the SVG's clip-path ids) from what the plot shows: two different
    plots on one page get different ids, and the same plot is byte-for-byte reproducible."""
    digest = hashlib.sha256(title.encode() + np.ascontiguousarray(data, dtype=float).tobytes()).hexdigest()[:10]
    return f"{kind}-{digest}"


def _quiet_svg(fig: Figure, plot_id: str) -> str:
    """:func:`to_svg` without matplotlib's "Glyph missing from font" warnings: the SVG keeps
    text as text, so the reader's browser draws any script (CJK, Thai…) with its own fonts."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r"Glyph \d+ .* missing from font", category=UserWarning)
        return to_svg(fig, plot_id)


def _checked(svg: str) -> str:
    check_svg(svg)
    return svg


def _num(value: object) -> str:
    if value is None:
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "—"
        if math.isinf(value):
            return "∞" if value > 0 else "−∞"
        return f"{value:.4g}" if value != 0 else "0"
    return str(value)


def _environment() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(TEMPLATES), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = _num
    env.tests["cell"] = lambda v: isinstance(v, Cell)
    env.tests["number"] = lambda v: isinstance(v, int | float) and not isinstance(v, bool)
    return env

