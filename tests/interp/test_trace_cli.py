"""`oversight trace` on a saved tiny model: a store that reads back as the library's capture, a
summary, a page, resuming, and one clear line for each mistake a user can make."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from oversight.cli import app
from oversight.interp.activation_store import ActivationStore
from oversight.interp.trace import capture
from oversight.models.registry import load_model

runner = CliRunner()
TEXTS = ["The capital of France is Paris.", "Yes", "If John has a pet, then John has a dog.", "A B C D"]


@pytest.fixture(scope="module")
def data(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("texts") / "texts.jsonl"
    path.write_text("".join(json.dumps({"text": t, "label": i % 2}) + "\n" for i, t in enumerate(TEXTS)))
    return path


def test_trace_writes_a_store_a_summary_and_a_page(tiny_gemma_dir: Path, data: Path, tmp_path: Path) -> None:
    out = tmp_path / "acts"
    args = ["trace", "--model", f"hf:{tiny_gemma_dir}", "--data", str(data), "--sites", "resid.0,mlp.-1,pattern.1",
            "--positions", "all", "--out", str(out), "--texts-per-shard", "3", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload["n_texts"] == 4 and payload["shards"] == 2 and payload["complete"] and payload["dtype"] == "float32"
    assert [s["site"] for s in payload["sites"]] == ["resid.0", "mlp.-1", "pattern.1"]
    resid, _, pattern = payload["sites"]
    assert resid["shape"] == [-1, 64] and pattern["shape"] == [4, -1, -1] and pattern["mean_entropy"] > 0
    assert resid["mean_norm"] > 0 and resid["max_abs"] > 0
    assert json.loads((out / "summary.json").read_text())["sites"] == payload["sites"]
    page = (out / "page.html").read_text()
    assert "<svg" in page and "pattern.1" in page

    lm = load_model(f"hf:{tiny_gemma_dir}")
    stored = ActivationStore(out)
    assert stored.manifest.fingerprint == lm.info.fingerprint
    expected = capture(lm.model, lm.tokenizer, TEXTS, ["resid.0", "mlp.-1"], positions="all")  # type: ignore[attr-defined]
    for i in range(len(TEXTS)):
        got = stored.of("resid.0", i)
        assert torch.allclose(got, expected.of("resid.0", i), atol=1e-5 * float(got.abs().max()))

    again = runner.invoke(app, args)  # a complete store: nothing to redo
    assert again.exit_code == 0 and json.loads(again.stdout)["n_texts"] == 4


def test_trace_of_texts_with_token_positions_and_bfloat16(tiny_gemma_dir: Path, tmp_path: Path) -> None:
    result = runner.invoke(app, ["trace", "--model", f"hf:{tiny_gemma_dir}", "--text", "The capital of France", "--text", "A B C",
                                 "--sites", "resid.2", "--positions", "0,-1", "--cache-dtype", "bfloat16", "--out", str(tmp_path / "t")])
    assert result.exit_code == 0, result.output
    assert "resid.2" in result.stdout and "[2, 64]" in result.stdout
    acts = ActivationStore(tmp_path / "t").read()
    assert acts["resid.2"].shape == (2, 2, 64) and acts["resid.2"].dtype == torch.bfloat16


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        (["--sites", "resid.9"], "layer 9 is out of range: this model has 4 layers"),
        (["--sites", "model.layers.0.self_atn"], "near matches: model.layers.0.self_attn"),
        (["--sites", "resid.0", "--cache-dtype", "float16"], "use float32 or bfloat16"),
        (["--sites", "resid.0", "--positions", "first"], "--positions 'first'"),
        (["--sites", " , "], "--sites is empty"),
    ],
)
def test_trace_mistakes_get_one_clear_line(tiny_gemma_dir: Path, tmp_path: Path, extra: list[str], message: str) -> None:
    result = runner.invoke(app, ["trace", "--model", f"hf:{tiny_gemma_dir}", "--text", "hello", "--out", str(tmp_path / "x"), *extra])
    assert result.exit_code == 2, result.output
    assert message in result.output and "Traceback" not in result.output
    assert not (tmp_path / "x").exists()


def test_trace_refuses_api_models_and_ambiguous_inputs(data: Path, tmp_path: Path) -> None:
    api = runner.invoke(app, ["trace", "--model", "openai:http://127.0.0.1:9/v1#m", "--text", "hi", "--sites", "resid.0", "--out", str(tmp_path / "a")])
    assert api.exit_code == 2 and "needs a local model" in api.output
    both = runner.invoke(app, ["trace", "--text", "hi", "--data", str(data), "--sites", "resid.0", "--out", str(tmp_path / "b")])
    assert both.exit_code == 2 and "give --text (repeatable) or --data FILE" in both.output
    missing = runner.invoke(app, ["trace", "--data", str(tmp_path / "none.jsonl"), "--sites", "resid.0", "--out", str(tmp_path / "c")])
    assert missing.exit_code == 2 and "none.jsonl: file not found" in missing.output
