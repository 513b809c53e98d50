"""`oversight lens` and `oversight patch` over a tiny model: files written, JSON, clear errors."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from oversight.cli import app

runner = CliRunner()
PAIR = ["--clean", "A B C D (A) true", "--corrupted", "A B C 7 (A) true", "--answer", "1", "--wrong", "0"]


def test_lens_writes_results_and_page_and_prints_json(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "lens"
    result = runner.invoke(app, ["lens", "--model", f"hf:{tiny_gemma_dir}", "--text", "The capital of France is",
                                 "--target", "1", "--top-k", "3", "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert data["command"] == "lens" and data["target"]["text"] == "1"
    assert len(data["top_k"]) == 4 and len(data["top_k"][0][0]) == 3  # 4 layers, top 3
    saved = json.loads((out / "results.json").read_text(encoding="utf-8"))
    assert saved["target"]["rank"] == data["target"]["rank"]
    assert (out / "page.html").read_text(encoding="utf-8").count("<svg") == 3
    assert data["page"] == str(out / "page.html")


def test_lens_table_and_chosen_layers(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["lens", "--model", f"hf:{tiny_gemma_dir}", "--text", "The capital of France is",
                                 "--target", " Paris", "--layers", "0,-1", "--out", str(tmp_path / "l")])
    assert result.exit_code == 0, result.output
    flat = " ".join(result.stdout.split())  # rich wraps the title at the runner's 80 columns
    assert "logit lens at position" in flat and "rank" in flat
    assert "warning" in result.output and "using the first" in result.output  # " Paris" is several tokens here
    saved = json.loads((tmp_path / "l" / "results.json").read_text(encoding="utf-8"))
    assert saved["layers"] == [0, 3]


def test_lens_errors(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    bad_layer = runner.invoke(app, ["lens", "--model", f"hf:{tiny_gemma_dir}", "--text", "x", "--layers", "9",
                                    "--out", str(tmp_path)])
    assert bad_layer.exit_code == 2 and "layer 9 is out of range" in bad_layer.output
    not_ints = runner.invoke(app, ["lens", "--model", f"hf:{tiny_gemma_dir}", "--text", "x", "--layers", "a,b",
                                   "--out", str(tmp_path)])
    assert not_ints.exit_code == 2 and "comma-separated integers" in not_ints.output
    api = runner.invoke(app, ["lens", "--model", "openai:http://127.0.0.1:9/v1#m", "--text", "x", "--out", str(tmp_path)])
    assert api.exit_code == 2 and "needs a local model" in api.output
    assert not (tmp_path / "results.json").exists()


def test_patch_single_pair(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    out = tmp_path / "patch"
    result = runner.invoke(app, ["patch", "--model", f"hf:{tiny_gemma_dir}", *PAIR, "--sites", "resid,attn,mlp,heads",
                                 "--out", str(out), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert set(data["grids"]) == {"resid", "attn", "mlp", "heads"}
    assert abs(data["grids"]["resid"]["mean_effect"][-1][-1] - 1.0) < 1e-4  # last layer, last position
    assert data["pairs"][0]["differing_positions"] == [7]
    assert (out / "page.html").is_file() and (out / "results.json").is_file()
    table = runner.invoke(app, ["patch", "--model", f"hf:{tiny_gemma_dir}", *PAIR, "--out", str(tmp_path / "t")])
    assert table.exit_code == 0 and "largest normalised effects" in table.stdout and "resid.3" in table.stdout


def test_patch_pairs_file(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    pairs = tmp_path / "pairs.jsonl"
    rows = [{"clean": "A B C D (A) true", "corrupted": "A B C 7 (A) true", "answer": "1", "wrong": "0"},
            {"clean": "A B C 5 (A) true", "corrupted": "A B C 9 (A) true", "answer": "1", "wrong": "0", "note": "ok"}]
    pairs.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    result = runner.invoke(app, ["patch", "--model", f"hf:{tiny_gemma_dir}", "--pairs", str(pairs), "--sites", "heads",
                                 "--head-positions", "each", "--layers", "-1", "--out", str(tmp_path / "o"), "--json"])
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)
    assert len(data["pairs"]) == 2 and list(data["grids"]) == ["heads.pos"]
    assert len(data["grids"]["heads.pos"]["rows"]) == 4  # one layer × 4 heads


def test_patch_errors(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    model = ["--model", f"hf:{tiny_gemma_dir}", "--out", str(tmp_path / "x")]
    mismatch = runner.invoke(app, ["patch", *model, "--clean", "A B C D", "--corrupted", "A B", "--answer", "1", "--wrong", "0"])
    assert mismatch.exit_code == 2 and "same number of tokens" in mismatch.output
    assert "clean:" in mismatch.output and "corrupted:" in mismatch.output  # both tokenizations shown
    bad_site = runner.invoke(app, ["patch", *model, *PAIR, "--sites", "resid,neurons"])
    assert bad_site.exit_code == 2 and "--sites" in bad_site.output
    bad_layer = runner.invoke(app, ["patch", *model, *PAIR, "--layers", "7"])
    assert bad_layer.exit_code == 2 and "out of range" in bad_layer.output
    missing = runner.invoke(app, ["patch", *model, "--clean", "A"])
    assert missing.exit_code == 2 and "missing --corrupted, --answer, --wrong" in missing.output
    bad_file = tmp_path / "bad.jsonl"
    bad_file.write_text('{"clean": "A B C D (A) true", "corrupted": "A B C 7 (A) true"}\n{"clean": "A B C D", "corrupted": "A"}\n', encoding="utf-8")
    from_file = runner.invoke(app, ["patch", *model, "--pairs", str(bad_file)])
    assert from_file.exit_code == 2 and f"{bad_file}:2" in from_file.output and "same number of tokens" in from_file.output
    no_field = tmp_path / "nofield.jsonl"
    no_field.write_text('{"clean": "A B"}\n', encoding="utf-8")
    missing_field = runner.invoke(app, ["patch", *model, "--pairs", str(no_field)])
    assert missing_field.exit_code == 2 and f"{no_field}:1" in missing_field.output and "corrupted" in missing_field.output
    api = runner.invoke(app, ["patch", "--model", "openai:http://127.0.0.1:9/v1#m", *PAIR, "--out", str(tmp_path)])
    assert api.exit_code == 2 and "local model" in api.output
