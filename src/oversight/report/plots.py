"""Small inline-SVG plots for the HTML report, drawn with matplotlib.

The report must open offline and show untrusted model output safely, so every plot is
an SVG string meant to be pasted into the page:

* text stays text (``svg.fonttype='none'``): crisp, searchable, a few kB per plot;
* matplotlib escapes ``& < >`` in SVG text, and mathtext is off, so a ``$`` in a run
  name is shown as typed instead of being parsed;
* :func:`_clean_svg` drops the XML prolog and metadata (which holds matplotlib's URL),
  removes the element ids that would repeat across plots, and then checks the result
  against an allow-list (no scripts, no ``on*`` attributes, only ``#`` links), so a
  surprise in a future matplotlib fails loudly instead of reaching a reader.

Figures are made with :class:`matplotlib.figure.Figure` directly, never pyplot, so no
global backend or figure registry is touched (the SVG writer needs no GUI backend).
"""

from __future__ import annotations

import io
import math
import re
import unicodedata
import xml.etree.ElementTree as ET
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import matplotlib
import numpy as np
from matplotlib.axes import Axes
from matplotlib.figure import Figure

from oversight.stats.scaling import format_parameters

INK = "#24292f"
MUTED = "#6e7781"
GRID = "#d8dee4"
FIT = "#57606a"

#: Tags matplotlib's SVG writer emits for our plots; anything else is rejected.
_ALLOWED_TAGS = frozenset(
    {"svg", "g", "defs", "path", "clipPath", "use", "text", "tspan", "rect", "circle",
     "ellipse", "line", "polyline", "polygon"}
)
_RC: dict[Any, Any] = {
    "svg.fonttype": "none",
    "text.parse_math": False,
    "text.usetex": False,
    "font.family": "sans-serif",
    "font.sans-serif": ["Segoe UI", "Helvetica Neue", "Arial", "DejaVu Sans"],
    "font.size": 8.5,
    "text.color": INK,
    "axes.labelcolor": MUTED,
    "axes.edgecolor": GRID,
    "xtick.color": MUTED,
    "ytick.color": INK,
    "xtick.labelcolor": MUTED,
    "ytick.labelcolor": INK,
    "axes.linewidth": 0.8,
}


@dataclass(frozen=True)
class Interval:
    """One row of an interval plot: a point estimate with its confidence interval."""

    label: str
    value: float
    low: float
    high: float
    color: str


def interval_plot(
    rows: Sequence[Interval],
    *,
    plot_id: str,
    bounds: tuple[float, float] | None = None,
    zero_line: bool = False,
    width: float = 3.4,
    label_limit: int = 30,
) -> str:
    """Dots with horizontal error bars, one row per interval, first row on top.

    Serves both the per-metric view (one row per run, so runs line up on a shared axis)
    and the forest plot of paired differences (``zero_line`` marks "no difference").
    ``bounds`` fixes the axis, e.g. (0, 1) for rates, so plots of different metrics read
    alike; otherwise the axis fits the intervals (and 0, when ``zero_line``).
    """
    rows = [r for r in rows if math.isfinite(r.value)]
    height = 0.3 + 0.26 * max(len(rows), 1)
    with figure(width, height) as (fig, ax):
        for y, row in enumerate(rows):
            low, high = _finite_or(row.low, row.value), _finite_or(row.high, row.value)
            ax.plot([low, high], [y, y], color=row.color, linewidth=2.2, alpha=0.45,
                    solid_capstyle="round")
            ax.plot([row.value], [y], "o", color=row.color, markersize=5.5,
                    markeredgecolor="white", markeredgewidth=0.8)
        ax.set_yticks(range(len(rows)), [_label(r.label, label_limit) for r in rows])
        ax.set_ylim(max(len(rows), 1) - 0.5, -0.5)
        ax.set_xlim(*(bounds or _padded_range(rows, include_zero=zero_line)))
        if zero_line or (bounds is None and ax.get_xlim()[0] < 0 < ax.get_xlim()[1]):
            ax.axvline(0, color=MUTED, linewidth=0.9, linestyle=(0, (3, 2)), zorder=0)
        ax.tick_params(axis="y", length=0, pad=6)
        ax.grid(axis="x", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right", "left"):
            ax.spines[side].set_visible(False)
        return to_svg(fig, plot_id)


def scaling_plot(
    n_parameters: Sequence[float],
    points: Sequence[Interval],
    fit_means: Sequence[float],
    *,
    curved: bool,
    plot_id: str,
    width: float = 3.6,
) -> str:
    """Score against model size (log axis), with CIs and the fitted trend.

    The trend is a least-squares polynomial in log10(parameters) through ``fit_means``
    (the per-model means the scaling fit used), quadratic when ``curved`` (a U shape
    was found) and linear otherwise, so the line drawn is the one the shape label
    describes.
    """
    x = np.log10(np.asarray(n_parameters, dtype=float))
    with figure(width, 2.3) as (fig, ax):
        if len(set(x.tolist())) >= 2:
            coef = np.polyfit(x, np.asarray(fit_means, dtype=float), 2 if curved else 1)
            grid = np.linspace(x.min(), x.max(), 100)
            ax.plot(10**grid, np.polyval(coef, grid), color=FIT, linewidth=1.4,
                    linestyle=(0, (4, 2)), zorder=1)
        for xi, p in zip(10**x, points, strict=True):
            low, high = _finite_or(p.low, p.value), _finite_or(p.high, p.value)
            ax.errorbar([xi], [p.value], yerr=[[p.value - low], [high - p.value]], fmt="o",
                        color=p.color, markersize=6, elinewidth=1.6, capsize=3,
                        markeredgecolor="white", markeredgewidth=0.8, zorder=2)
        ax.set_xscale("log")
        ax.set_xticks(10**x, [format_parameters(v) for v in 10**x])
        ax.minorticks_off()
        lo, hi = x.min(), x.max()
        pad = max(0.08 * (hi - lo), 0.1)
        ax.set_xlim(10 ** (lo - pad), 10 ** (hi + pad))
        ax.set_xlabel("parameters (log scale)")
        ax.grid(axis="y", color=GRID, linewidth=0.6)
        ax.set_axisbelow(True)
        for side in ("top", "right"):
            ax.spines[side].set_visible(False)
        return to_svg(fig, plot_id)


@contextmanager
def figure(width: float, height: float) -> Iterator[tuple[Figure, Axes]]:
    """A fresh figure and axes (inches) under the report's rc settings, scoped so nothing
    leaks out; draw on it, then turn it into markup with :func:`to_svg` inside the block.
    Public so that other modules' plots (a monitor's calibration curve) share the style."""
    with matplotlib.rc_context(_RC):
        fig = Figure(figsize=(width, height))
        fig.patch.set_alpha(0.0)
        ax = fig.add_subplot()
        ax.patch.set_alpha(0.0)
        yield fig, ax


def to_svg(fig: Figure, plot_id: str) -> str:
    """The figure as inline-ready SVG, cleaned and checked (:func:`check_svg`); ``plot_id``
    must be unique in the page (it salts the clip-path ids)."""
    # A fixed per-plot salt makes clip-path ids unique in the page and the output
    # reproducible (matplotlib's default salt is a random UUID).
    buf = io.StringIO()
    with matplotlib.rc_context({"svg.hashsalt": plot_id}):
        fig.savefig(buf, format="svg", bbox_inches="tight", pad_inches=0.04,
                    metadata={"Date": None})
    return _clean_svg(buf.getvalue())


def _clean_svg(svg: str) -> str:
    """Inline-ready SVG: no prolog or metadata, no repeated ids, checked against an allow-list."""
    svg = svg[svg.index("<svg"):]
    svg = re.sub(r"\s*<metadata>.*?</metadata>", "", svg, flags=re.S)
    svg = re.sub(r"\s*<style[^>]*>.*?</style>", "", svg, flags=re.S)
    svg = re.sub(r'<g id="[^"]*"', "<g", svg)
    check_svg(svg)
    return svg.strip()


def check_svg(svg: str) -> None:
    """Raise ValueError unless ``svg`` holds only drawing elements and local links.

    Why: SVG is markup, so inline SVG is a way in for scripts (``<script>``, ``onload``,
    ``javascript:`` links). The report embeds plots unescaped; this is what makes that safe.
    """
    root = ET.fromstring(svg)
    for el in root.iter():
        tag = el.tag.rsplit("}", 1)[-1]
        if tag not in _ALLOWED_TAGS:
            raise ValueError(f"unexpected <{tag}> in a report plot")
        for name, value in el.attrib.items():
            local = name.rsplit("}", 1)[-1].lower()
            if local.startswith("on"):
                raise ValueError(f"event attribute {local!r} in a report plot")
            if local == "href" and not value.startswith("#"):
                raise ValueError(f"non-local link {value!r} in a report plot")
            if "javascript:" in value.lower():
                raise ValueError("javascript: URL in a report plot")


def _label(text: str, limit: int = 30) -> str:
    """A tick label: control characters dropped (not valid XML), long ones shortened."""
    clean = "".join(ch for ch in text if unicodedata.category(ch)[0] != "C")
    if len(clean) <= limit:
        return clean
    half = (limit - 1) // 2
    return clean[:half] + "…" + clean[-half:]


def _finite_or(value: float, fallback: float) -> float:
    return value if math.isfinite(value) else fallback


def _padded_range(rows: Sequence[Interval], *, include_zero: bool) -> tuple[float, float]:
    values = [v for r in rows for v in (r.low, r.value, r.high) if math.isfinite(v)] or [0.0]
    values += [0.0] if include_zero else []
    lo, hi = min(values), max(values)
    pad = 0.08 * (hi - lo) if hi > lo else max(abs(hi), 1.0) * 0.1
    return lo - pad, hi + pad
