"""`oversight steer` over a tiny model with CliRunner: generations, task effect, direction reuse, errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from oversight.cli import app

runner = CliRunner()


@pytest.fixture()
def sets(tmp_path: Path) -> tuple[Path, Path]:
    pos, neg = tmp_path / "pos.txt", tmp_path / "neg.txt"
    pos.write_text("The capital of France is Paris.\nAnswer: Yes.\n")
    neg.write_text("If John has a pet, then John has a dog.\nAnswer: No.\n")
    return pos, neg


def test_steer_generates_before_and_after_and_measures_a_task(tiny_gemma_dir: Path, sets: tuple[Path, Path], tmp_path: Path) -> None:
    out = tmp_path / "s"
    result = runner.invoke(app, [
        "steer", "--model", f"hf:{tiny_gemma_dir}", "--layer", "1", "--positive", str(sets[0]), "--negative", str(sets[1]),
        "--coef", "0", "--coef", "6", "--normalise", "--prompt", "The capital of Italy is", "--max-tokens", "6",
        "--task", "safety/sycophancy", "--limit", "3", "--no-cache", "--out", str(out), "--json",
    ])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    (gen,) = payload["generations"]
    assert gen["steered"][0] == [0.0, gen["baseline"]]  # coefficient 0 adds nothing
    assert payload["direction"]["site"] == "resid.1" and payload["direction"]["n_positive"] == 2
    fingerprints = {s["fingerprint"] for s in payload["steerings"]}
    assert len(fingerprints) == 2 and all("+steer:" in f for f in fingerprints)
    evals = {e["coef"]: e for e in payload["evaluation"]}
    assert set(evals) == {0.0, 6.0}
    zero = {c["metric"]: c for c in evals[0.0]["comparisons"]}
    assert zero["shift"]["diff"] == pytest.approx(0.0, abs=1e-6) and zero["shift"]["n"] == 3
    pushed = {c["metric"]: c for c in evals[6.0]["comparisons"]}
    assert pushed["shift"]["diff"] != pytest.approx(0.0, abs=1e-6)  # a real push moves the scores
    for name in ("results.json", "page.html", "direction.json", "runs/baseline/results.json", "runs/steer_6_norm/results.json"):
        assert (out / name).is_file(), name
    assert "Effect on tasks" in (out / "page.html").read_text()

    # The saved direction steers again; a mismatched --layer is refused.
    again = runner.invoke(app, ["steer", "--model", f"hf:{tiny_gemma_dir}", "--direction", str(out / "direction.json"),
                                "--coef", "6", "--normalise", "--prompt", "The capital of Italy is", "--max-tokens", "6",
                                "--out", str(tmp_path / "again"), "--json"])
    assert again.exit_code == 0, again.output
    assert json.loads(again.stdout)["generations"][0]["steered"][0][1] == payload["generations"][0]["steered"][1][1]
    wrong = runner.invoke(app, ["steer", "--model", f"hf:{tiny_gemma_dir}", "--direction", str(out / "direction.json"),
                                "--layer", "2", "--out", str(tmp_path / "w")])
    assert wrong.exit_code == 2 and "resid.1" in wrong.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give either --direction"),
        (["--positive", "{pos}", "--negative", "{neg}"], "need --layer"),
        (["--positive", "{pos}", "--negative", "{neg}", "--layer", "12"], "out of range"),
        (["--positive", "{pos}", "--negative", "{neg}", "--layer", "1", "--model", "openai:http://127.0.0.1:9/v1#m"], "needs a local model"),
        (["--positive", "{pos}", "--negative", "{neg}", "--layer", "1", "--reduce", "max"], "last or mean"),
    ],
)
def test_steer_clear_errors(tiny_gemma_dir: Path, sets: tuple[Path, Path], tmp_path: Path, args: list[str], message: str) -> None:
    filled = [a.format(pos=sets[0], neg=sets[1]) for a in args]
    result = runner.invoke(app, ["steer", "--model", f"hf:{tiny_gemma_dir}", *filled, "--out", str(tmp_path / "e")])
    assert result.exit_code == 2, result.output
    assert message in " ".join(result.output.split())
