"""`oversight neurons` over tiny models with CliRunner: files written, JSON printed, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oversight.cli import app

runner = CliRunner()
TEXTS = [
    "The capital of France is Paris.", "If John has a pet, then John has a dog.", "Question: Is the sky blue? Answer: Yes.",
    "User: please help me. Assistant: I cannot help with that request.", "A B C D (A) (B) true false 0 1 2 3",
    "<b>not bold</b> & \"quoted\"",
]


@pytest.fixture()
def corpus(tmp_path: Path) -> Path:
    path = tmp_path / "corpus.txt"
    path.write_text("\n".join(TEXTS) + "\n")
    return path


def test_neurons_writes_results_and_page(tiny_gemma_dir: Path, corpus: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    result = runner.invoke(app, ["neurons", "--model", f"hf:{tiny_gemma_dir}", "--layer", "1", "--data", str(corpus),
                                 "--top-k", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.stdout)
    saved = json.loads((out / "results.json").read_text())
    assert summary["n_texts"] == saved["n_texts"] == len(TEXTS) and summary["complete"] is True
    assert len(saved["neurons"]) == summary["n_neurons"] == 128  # tiny gemma: intermediate 2 x 64
    assert all(len(n["contexts"]) == 3 for n in saved["neurons"])
    assert len(summary["top_neurons"]) == 10 and saved["source"] == str(corpus)
    page = (out / "page.html").read_text()
    assert "<b>not" not in page and "&lt;" in page


def test_neurons_table_output_and_built_in_dataset(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["neurons", "--model", f"hf:{tiny_gemma_dir}", "--layer", "-1", "--dataset", "safety",
                                 "--limit", "12", "--out", str(tmp_path / "o")])
    assert result.exit_code == 0, result.output
    assert "most active neurons of neurons.3" in result.stdout


def test_neurons_describes_and_scores_neurons(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "d"
    result = runner.invoke(app, ["neurons", "--model", f"hf:{tiny_gemma_dir}", "--layer", "0", "--dataset", "safety",
                                 "--limit", "24", "--describe", "3", "--heldout", "8", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    saved = json.loads((out / "results.json").read_text())
    described = [n for n in saved["neurons"] if n["description"] is not None]
    assert len(described) == 3 and saved["n_texts"] == 16
    assert all(set(n["description_score"]) == {"spearman", "auroc"} for n in described)
    summary = saved["descriptions"]["summary"]
    assert summary["n_heldout"] == 8 and summary["n_neurons"] == 3


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--layer", "99"], "out of range"),
        (["--layer", "0", "--dataset", "safety"], "exactly one of --data"),
        (["--layer", "0", "--model", "openai:http://127.0.0.1:9/v1#m"], "needs a local model"),
    ],
)
def test_neurons_clear_errors(tiny_gemma_dir: Path, corpus: Path, tmp_path: Path, args: list[str], message: str) -> None:
    base = ["neurons", "--model", f"hf:{tiny_gemma_dir}", "--data", str(corpus), "--out", str(tmp_path / "x")]
    result = runner.invoke(app, base + args)
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())


def test_neurons_missing_data_file_names_it(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["neurons", "--model", f"hf:{tiny_gemma_dir}", "--layer", "0", "--data",
                                 str(tmp_path / "nope.txt"), "--out", str(tmp_path / "x")])
    assert result.exit_code == 2 and "nope.txt" in result.output and "not found" in result.output
