"""HTML pages for `oversight probe` and `oversight ccs`: layer-sweep plots and accuracy tables."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from oversight.interp.knowledge import Comparison, MethodScore
from oversight.interp.pages import Page, Plot, Table, line_plot_svg
from oversight.interp.probes import Accuracy, ProbeRun

METHOD_NAMES = {
    "zero_shot": "zero-shot",
    "zero_shot_calibrated": "zero-shot (calibrated)",
    "ccs": "CCS",
    "logistic": "logistic",
    "mean_difference": "mean difference",
    "logistic_pairs": "logistic on pairs",
}


def site_x(sites: Sequence[str]) -> list[float]:
    """The layer number of each site for a plot's x axis (the position in the list otherwise)."""
    xs = []
    for i, site in enumerate(sites):
        m = re.search(r"\.(\d+)$", site)
        xs.append(float(m.group(1)) if m else float(i))
    return xs


def acc_text(acc: Accuracy | None) -> str:
    if acc is None:
        return "—"
    return f"{acc.value:.3f} [{acc.low:.3f}, {acc.high:.3f}] (n={acc.n})"


def probe_page(run: ProbeRun, *, model: Mapping[str, str], template: str, command: str | None = None,
               saved: str | None = None) -> Page:
    sites = list(dict.fromkeys(s.site for s in run.scores))
    kinds = list(dict.fromkeys(s.kind for s in run.scores))
    by = {(s.site, s.kind): s for s in run.scores}
    figures = []
    if len(sites) > 1:
        series = {}
        for kind in kinds:
            tests = [by[(site, kind)].test for site in sites]
            series[f"{METHOD_NAMES.get(kind, kind)} (test)"] = _band(tests)
        figures.append(Plot(
            "Held-out accuracy by layer",
            line_plot_svg(site_x(sites), series, "Probe accuracy on test items (95% Wilson bands)",
                          xlabel="layer", ylabel="accuracy", hline=0.5, ylim=(0.0, 1.0)),
            "Dashed line: chance. Each probe is fitted on the fit split; the site used is chosen on validation.",
        ))
    rows = [[site, METHOD_NAMES.get(kind, kind), acc_text(by[(site, kind)].validation), acc_text(by[(site, kind)].test)]
            for site in sites for kind in kinds]
    summary: list[tuple[str, str | int | float | bool | None]] = [
        ("model", model.get("spec", "")), ("fingerprint", model.get("fingerprint", "")), ("dataset", run.dataset),
        ("statements", run.n), ("split (fit / validation / test)", _split(run.split_sizes)),
        ("template", template), ("position", str(run.position)),
    ]
    for kind, score in run.chosen.items():
        summary.append((f"{METHOD_NAMES.get(kind, kind)}: {score.site}", acc_text(score.test)))
    if saved:
        summary.append(("saved probe", saved))
    return Page(
        title=f"Probes on {model.get('spec', 'a model')}: {run.dataset}",
        description="Supervised linear probes (logistic regression on standardised activations; difference of "
        "class means) trained to read whether a statement is true from the model's activations.",
        kind="probe",
        summary=summary,
        figures=figures,
        tables=[Table("Accuracy per site", ["site", "probe", "validation", "test"], rows,
                      "Splits keep every group (entity, question) on one side. " + run.rule)],
        notes=[f"Chosen site rule: {run.rule}."],
        command=command,
    )


def ccs_page(comparison: Comparison, *, model: Mapping[str, str], command: str | None = None) -> Page:
    sites = comparison.sites
    methods = ["ccs", "logistic", "mean_difference", "logistic_pairs"]
    series: dict[str, tuple[Sequence[float], Sequence[float] | None, Sequence[float] | None]] = {}
    for method in methods:
        series[METHOD_NAMES[method]] = _band([comparison.per_site[s][method].test for s in sites])
    zero = comparison.zero_shot["zero_shot_calibrated"].test
    series["zero-shot (calibrated)"] = ([zero.value] * len(sites), [zero.low] * len(sites), [zero.high] * len(sites))
    figure = Plot(
        "Held-out accuracy by layer",
        line_plot_svg(site_x(sites), series, "Test accuracy per layer (95% Wilson bands)", xlabel="layer",
                      ylabel="accuracy", hline=0.5, ylim=(0.0, 1.0)),
        "Every method is fitted on the fit split; the flat line is the model's own (calibrated) answer.",
    )
    best_rows: list[list[Any]] = []
    for method in ("zero_shot", "zero_shot_calibrated"):
        score = comparison.zero_shot[method]
        best_rows.append([METHOD_NAMES[method], "—", acc_text(score.validation), acc_text(score.test)])
    for method in methods:
        score = comparison.best_score(method)
        best_rows.append([METHOD_NAMES[method], comparison.best[method], acc_text(score.validation), acc_text(score.test)])
    layer_rows = [[s, *(_short(comparison.per_site[s][m]) for m in methods)] for s in sites]
    details = comparison.details
    summary: list[tuple[str, str | int | float | bool | None]] = [
        ("model", model.get("spec", "")), ("fingerprint", model.get("fingerprint", "")),
        ("dataset", comparison.dataset), ("statements", comparison.n),
        ("split (fit / validation / test)", _split(comparison.split.to_dict())),
        ("template", comparison.template.format), ("answers (true, false)", " / ".join(comparison.template.answers)),
        ("position (probes)", str(comparison.position)),
        ("CCS restarts × epochs", f"{details['ccs']['restarts']} × {details['ccs']['epochs']}"),
    ]
    return Page(
        title=f"Latent knowledge on {model.get('spec', 'a model')}: {comparison.dataset}",
        description="What the model says (zero-shot: log P(true answer) − log P(false answer)) against what linear "
        "readouts of its activations find: CCS (unsupervised; Burns et al. 2022), logistic regression and "
        "difference of means (supervised), and logistic regression on CCS's own pair features.",
        kind="ccs",
        summary=summary,
        figures=[figure],
        tables=[
            Table("At the best layer", ["method", "layer (chosen on validation)", "validation", "test"], best_rows,
                  "The best layer of each method has the highest validation accuracy; test items never choose anything."),
            Table("Test accuracy per layer", ["site", *(METHOD_NAMES[m] for m in methods)], layer_rows),
        ],
        notes=[
            "CCS trains without labels; which side of its direction means 'true' is chosen on the fit split's labels "
            "and then fixed (the released code picks it on test labels).",
            "Supervised probes read the prompt (the template up to the answer); CCS and 'logistic on pairs' read the "
            "last token of both completions.",
        ],
        command=command,
    )


def _band(accs: Sequence[Accuracy]) -> tuple[list[float], list[float], list[float]]:
    return [a.value for a in accs], [a.low for a in accs], [a.high for a in accs]


def _short(score: MethodScore) -> str:
    return f"{score.test.value:.3f}"


def _split(sizes: Mapping[str, int]) -> str:
    return f"{sizes.get('fit', 0)} / {sizes.get('validation', 0)} / {sizes.get('test', 0)}"
