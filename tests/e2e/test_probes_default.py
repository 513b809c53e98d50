"""`oversight ccs` on the real default model (Gemma 3 270M), kept small: two layers, 40 statements."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from oversight.cli import app

runner = CliRunner()


def test_ccs_on_the_default_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["ccs", "--model", "default", "--dataset", "facts", "--n", "40", "--layer", "6",
                                 "--layer", "-1", "--restarts", "2", "--epochs", "200", "--out", str(tmp_path), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["model"]["spec"] == "default" and data["model"]["fingerprint"].startswith("sha256:")
    assert [row["site"] for row in data["per_layer"]] == ["resid.6", "resid.17"]
    n_test = data["split"]["test"]
    assert data["zero_shot"]["zero_shot"]["test"]["n"] == n_test
    assert data["details"]["prompt_features_from_pair_pass"] is True  # Gemma's tokenizer keeps the prompt a prefix
    for method in ("ccs", "logistic", "mean_difference", "logistic_pairs"):
        assert data["best"][method]["site"] in ("resid.6", "resid.17")
        assert data["best"][method]["test"]["n"] == n_test
