"""`oversight probe` and `oversight ccs` on tiny random models, and the shared capture pass."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from oversight.cli import app
from oversight.interp.contrast import ContrastTemplate, generate_facts
from oversight.interp.knowledge import contrast_features
from oversight.interp.probe_file import load_probe
from oversight.interp.probes import prompt_features
from oversight.models.registry import load_model

runner = CliRunner()


def invoke(*args: str) -> dict[str, object]:
    result = runner.invoke(app, list(args))
    assert result.exit_code == 0, result.output
    data: dict[str, object] = json.loads(result.stdout)
    return data


def test_pair_pass_gives_the_prompt_activations(tiny_model_dir: Path) -> None:
    lm = load_model(f"hf:{tiny_model_dir}")
    texts = generate_facts(12, seed=0).texts
    template = ContrastTemplate()
    sites = ["resid.0", "resid.1"]
    feats = contrast_features(lm.model, lm.tokenizer, texts, template, sites, batch_size=5)  # type: ignore[attr-defined]
    assert feats.shared_pass
    alone = prompt_features(lm.model, lm.tokenizer, [template.prompt(t) for t in texts], sites)  # type: ignore[attr-defined]
    for site in sites:
        np.testing.assert_allclose(feats.prompt[site], alone[site], rtol=1e-4, atol=1e-4)
        assert feats.pos[site].shape == feats.neg[site].shape == (12, alone[site].shape[1])
        assert not np.allclose(feats.pos[site], feats.neg[site])


def test_probe_sweep_writes_results_page_and_a_saved_probe(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "run"
    data = invoke("probe", "--model", f"hf:{tiny_gemma_dir}", "--dataset", "facts", "--n", "60", "--sweep",
                  "--out", str(out), "--save", str(tmp_path / "probe.json"), "--json")
    per_layer = data["per_layer"]
    assert isinstance(per_layer, list) and len(per_layer) == 4 * 2  # 4 layers x 2 kinds
    assert {row["site"] for row in per_layer} == {f"resid.{i}" for i in range(4)}
    chosen = data["chosen"]
    assert isinstance(chosen, dict) and set(chosen) == {"logistic", "mean_difference"}
    for row in per_layer:
        test = row["test"]
        assert 0 <= test["ci_low"] <= test["value"] <= test["ci_high"] <= 1
    assert json.loads((out / "results.json").read_text())["command"] == "probe"
    page = (out / "page.html").read_text()
    assert "<svg" in page and "Held-out accuracy by layer" in page
    saved = load_probe(tmp_path / "probe.json")
    assert saved.record.site == chosen["logistic"]["site"]
    assert saved.record.model.spec == f"hf:{tiny_gemma_dir}" and saved.record.model.fingerprint.startswith("sha256:")


def test_probe_single_layer_from_a_file(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    rows = [{"text": s.text, "label": s.label, "group": s.group} for s in generate_facts(40, seed=1).statements]
    data_file = tmp_path / "facts.jsonl"
    data_file.write_text("".join(json.dumps(r) + "\n" for r in rows))
    data = invoke("probe", "--model", f"hf:{tiny_gemma_dir}", "--data", str(data_file), "--layer", "-1",
                  "--template", "Statement: {text}", "--position", "-2", "--out", str(tmp_path / "one"), "--json")
    assert {row["site"] for row in data["per_layer"]} == {"resid.3"}  # type: ignore[attr-defined]
    assert data["split"]["validation"] == 0 and data["position"] == -2  # type: ignore[index]


def test_ccs_compares_methods_per_layer_and_at_the_best(tiny_model_dir: Path, tmp_path: Path) -> None:
    data = invoke("ccs", "--model", f"hf:{tiny_model_dir}", "--dataset", "facts", "--n", "60", "--restarts", "2",
                  "--epochs", "50", "--out", str(tmp_path / "ccs"), "--json")
    per_layer = data["per_layer"]
    assert isinstance(per_layer, list) and len(per_layer) >= 3
    for row in per_layer:
        for method in ("ccs", "logistic", "mean_difference", "logistic_pairs"):
            assert 0 <= row[method]["test"]["value"] <= 1 and row[method]["validation"]["n"] > 0
    best = data["best"]
    assert isinstance(best, dict) and set(best) == {"ccs", "logistic", "mean_difference", "logistic_pairs"}
    zero = data["zero_shot"]
    assert isinstance(zero, dict) and set(zero) == {"zero_shot", "zero_shot_calibrated"}
    assert "validation" in str(data["best_layer_rule"])
    assert "<svg" in (tmp_path / "ccs" / "page.html").read_text()


def test_ccs_human_output_and_layers(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ccs", "--model", f"hf:{tiny_gemma_dir}", "--dataset", "facts", "--n", "40",
                                 "--layer", "1", "--layer", "2", "--restarts", "1", "--epochs", "20", "--out", str(tmp_path / "h")])
    assert result.exit_code == 0, result.output
    assert "zero-shot" in result.stdout and "CCS" in result.stdout and "resid.1" in result.stdout
    sites = [row["site"] for row in json.loads((tmp_path / "h" / "results.json").read_text())["per_layer"]]
    assert sites == ["resid.1", "resid.2"]


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--model", "openai:http://127.0.0.1:9/v1#m", "--dataset", "facts"], "needs a local model|served over an API"),
        (["--dataset", "facts", "--layer", "9"], "out of range"),
        (["--data", "{bad}"], "bad.jsonl:2"),
        (["--dataset", "planets"], "unknown --dataset"),
        (["--dataset", "facts", "--template", "no placeholder"], "must contain {text}"),
        (["--dataset", "facts", "--position", "first"], "token index"),
    ],
)
def test_clear_errors(tiny_gemma_dir: Path, tmp_path: Path, args: list[str], message: str) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a", "label": 1}\n{"text": "b", "label": "maybe"}\n')
    args = [str(bad) if a == "{bad}" else a for a in args]
    if "--model" not in args:
        args = ["--model", f"hf:{tiny_gemma_dir}", *args]
    result = runner.invoke(app, ["probe", *args, "--n", "20", "--out", str(tmp_path / "x")])
    assert result.exit_code == 2, result.output
    import re

    assert re.search(message, result.stderr.replace("\n", " ")), result.stderr


def test_ccs_needs_an_answer_in_the_template(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["ccs", "--model", f"hf:{tiny_gemma_dir}", "--dataset", "facts", "--template", "{text}",
                                 "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "{answer}" in result.stderr
