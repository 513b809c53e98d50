"""The interp HTML pages: hostile model text stays text, figures are valid checked SVG, no assets."""

from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pytest
from matplotlib import colormaps
from matplotlib.colors import to_hex

from oversight.interp.pages import (
    Cell,
    Page,
    Plot,
    Table,
    color_scale,
    heatmap_svg,
    label,
    line_plot_svg,
    render_page,
    show_token,
    write_page,
)
from oversight.report.plots import check_svg

HOSTILE = [
    "<script>alert(1)</script>",
    '"><img src=x onerror=alert(1)>',
    "' onmouseover='alert(1)' x='",
    "</td></table><svg onload=alert(1)>",
    "$\\alpha$ ]]> <!-- x -->",
    " Paris\n\t\x00\x1b",
]


class _Tags(HTMLParser):
    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.tags: list[tuple[str, dict[str, str | None]]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append((tag, dict(attrs)))


def _tags(html: str) -> list[tuple[str, dict[str, str | None]]]:
    parser = _Tags()
    parser.feed(html)
    parser.close()
    return parser.tags


def _hostile_page() -> Page:
    matrix = np.arange(len(HOSTILE) * 3, dtype=float).reshape(3, len(HOSTILE)) - 6
    heat = heatmap_svg(matrix, HOSTILE[:3], HOSTILE, HOSTILE[0], HOSTILE[1], "diverging",
                       cell_text=[HOSTILE] * 3)
    lines = line_plot_svg([0, 1, 2], {HOSTILE[0]: ([1, 2, 3], [0, 1, 2], [2, 3, 4]), HOSTILE[2]: ([3, 2, 1], None, None)},
                          HOSTILE[3], xlabel=HOSTILE[1])
    cells = [[Cell(text, title=text, color="#08306b", mono=True), text, 0.25, 3, None, True] for text in HOSTILE]
    return Page(
        title=HOSTILE[0], description=HOSTILE[1], kind=HOSTILE[3],
        summary=[(text, text) for text in HOSTILE], figures=[Plot(HOSTILE[0], heat, HOSTILE[2]), Plot("lines", lines)],
        tables=[Table(HOSTILE[0], HOSTILE, cells, caption=HOSTILE[3])], notes=HOSTILE[:2], command=HOSTILE[0],
        extra={HOSTILE[0]: HOSTILE[1]},
    )


def test_hostile_text_is_escaped_everywhere() -> None:
    html = render_page(_hostile_page())
    for tag, attrs in _tags(html):
        assert tag not in {"script", "img", "iframe", "object", "embed", "link", "a"}, tag
        for name in attrs:
            assert not name.lower().startswith("on"), (tag, attrs)
    assert "<script>alert" not in html and "<img src=x" not in html and "<svg onload" not in html
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html
    assert "&#34;&gt;&lt;img src=x onerror=alert(1)&gt;" in html
    assert "Content-Security-Policy" in html and "default-src 'none'" in html
    assert "@import" not in html and not re.search(r"url\(\s*['\"]?(?!#)", html)
    assert not re.search(r"(src|href)=\"(https?:|//)", html)


def test_figures_are_valid_checked_svg_with_escaped_labels() -> None:
    page = _hostile_page()
    for plot in page.figures:
        check_svg(plot.svg)
        root = ET.fromstring(plot.svg)  # well-formed XML despite control characters in labels
        texts = " ".join("".join(el.itertext()) for el in root.iter() if el.tag.endswith("text"))
        assert "<script>" not in plot.svg and "onload=" not in plot.svg.replace("&lt;svg onload=", "")
        assert "<script>" in texts or "<scri" in texts  # shown to the reader as typed (maybe shortened)
    assert "<image" not in page.figures[0].svg  # the colour bar is vector, not a raster


def test_unchecked_svg_is_refused_when_rendering() -> None:
    evil = '<svg xmlns="http://www.w3.org/2000/svg"><script>alert(1)</script></svg>'
    with pytest.raises(ValueError, match="script"):
        render_page(Page("x", figures=[Plot("evil", evil)]))


def test_cell_colour_must_be_a_hex_colour() -> None:
    with pytest.raises(ValueError, match="rrggbb"):
        Cell("x", color="red; background: url(http://evil)")
    assert Cell("x", color="#08306b").ink == "#ffffff"
    assert Cell("x", color="#ffffff").ink != "#ffffff"


def test_table_rows_must_match_columns() -> None:
    with pytest.raises(ValueError, match="row 0 has 1 cells for 2 columns"):
        Table("t", ["a", "b"], [["only one"]])


def test_diverging_scale_is_centred_on_zero_and_sequential_is_monotone() -> None:
    rdbu = colormaps["RdBu_r"]
    # symmetric around 0 with the largest magnitude as the bound: -2 -> 0, 0 -> 0.5, 1 -> 0.75
    assert color_scale([-2.0, 0.0, 1.0], "diverging") == [to_hex(rdbu(0.0)), to_hex(rdbu(0.5)), to_hex(rdbu(0.75))]
    assert color_scale([0.5], "diverging", vmin=-1, vmax=1) == [to_hex(rdbu(0.75))]
    greens = color_scale([0.0, 0.5, 1.0, float("nan")], "sequential")
    lightness = [sum(int(c[i:i + 2], 16) for i in (1, 3, 5)) for c in greens[:3]]
    assert lightness == sorted(lightness, reverse=True)
    assert greens[3] == "#eaeef2"


def test_heatmap_checks_shapes_and_draws_nan_cells() -> None:
    with pytest.raises(ValueError, match="labels"):
        heatmap_svg(np.zeros((2, 3)), ["a"], ["x", "y", "z"])
    with pytest.raises(ValueError, match="2-D"):
        heatmap_svg(np.zeros(3), ["a"], ["x"])
    svg = heatmap_svg([[0.1, float("nan")], [0.5, 1.0]], ["a", "b"], ["x", "y"], cmap="sequential", vmin=0, vmax=1)
    check_svg(svg)
    assert "#eaeef2" in svg.lower()  # the NaN cell


def test_same_plot_is_reproducible_and_different_plots_get_different_ids() -> None:
    a = heatmap_svg([[1.0, -1.0]], ["r"], ["x", "y"], "a")
    assert a == heatmap_svg([[1.0, -1.0]], ["r"], ["x", "y"], "a")
    b = heatmap_svg([[1.0, -1.0]], ["r"], ["x", "y"], "b")
    ids_a = set(re.findall(r'id="([^"]+)"', a))
    ids_b = set(re.findall(r'id="([^"]+)"', b))
    assert ids_a and not ids_a & ids_b


def test_labels_show_whitespace_tokens() -> None:
    assert label("a\nb") == "a\\nb"
    assert label("x" * 50, 9) == "xxxx…xxxx"
    assert show_token(" Paris") == "‘ Paris’"
    assert show_token("\n") == "‘\\n’"
    assert show_token("Paris") == "Paris"


def test_write_page_makes_folders(tmp_path: Path) -> None:
    path = write_page(Page("t", summary=[("n", 12345), ("p", 0.123456), ("ok", True)]), tmp_path / "a" / "page.html")
    html = path.read_text(encoding="utf-8")
    assert "12,345" in html and "0.1235" in html and ">yes<" in html
