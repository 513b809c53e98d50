"""The probe monitor end to end: train and save a probe on a tiny model, run it over a store."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import select
from typer.testing import CliRunner

from oversight.cli import app
from oversight.interp.probe_file import load_probe
from oversight.interp.probes import prompt_features
from oversight.models.registry import load_model
from oversight.monitors.base import build_monitor, monitor_info
from oversight.monitors.probe import ProbeModelMismatch, ProbeMonitor
from oversight.store import Transcript, open_store
from oversight.store.schema import Verdict
from oversight.transcripts import Transcript as Chat

runner = CliRunner()
REPLIES = ["The capital of France is Paris.", "7 + 5 = 13.", "A mouse is larger than an elephant.", "12 is smaller than 30."]


@pytest.fixture(scope="module")
def saved_probe(tiny_gemma_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("probe-run")
    path = out / "probe.json"
    result = runner.invoke(app, ["probe", "--model", f"hf:{tiny_gemma_dir}", "--dataset", "facts", "--n", "60",
                                 "--layer", "2", "--out", str(out), "--save", str(path), "--json"])
    assert result.exit_code == 0, result.output
    return path


def test_the_probe_monitor_is_registered() -> None:
    assert monitor_info("probe").cost == "model"
    listing = runner.invoke(app, ["monitors"])
    assert listing.exit_code == 0 and "probe" in listing.output


def test_monitor_scores_the_store_and_stores_verdicts(saved_probe: Path, tiny_gemma_dir: Path, tmp_path: Path) -> None:
    db = f"sqlite:///{tmp_path / 'store.db'}"
    with open_store(db) as store:
        store.add_transcripts([Transcript.from_pairs([("user", "Tell me a fact."), ("assistant", r)]) for r in REPLIES])
        store.add_transcripts([Transcript.from_pairs([("user", "Is anyone there?")])])  # nothing to probe
    args = ["monitor", "--monitor", "probe", "--option", f"probe={saved_probe}", "--option", f"model=hf:{tiny_gemma_dir}",
            "--db", db, "--json"]
    first = runner.invoke(app, args)
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert (report["scored"], report["errors"]) == (5, 0)
    version = report["version"]
    assert version.startswith("1-") and version.endswith("-last_assistant-0")

    with open_store(db) as store, store.session() as s:
        rows = {r.transcript_id: r for r in s.scalars(select(Verdict).where(Verdict.monitor == "probe")).all()}
        transcripts = {t.id: t for batch in store.iter_transcripts() for t in batch}
    assert len(rows) == 5
    # The stored score is P(false) from the saved probe on the reply's prompt activations.
    saved = load_probe(saved_probe)
    lm = load_model(f"hf:{tiny_gemma_dir}")
    replies = {int(tid): t.messages[-1].content for tid, t in transcripts.items() if tid is not None and t.messages[-1].role == "assistant"}
    feats = prompt_features(lm.model, lm.tokenizer, [saved.template.prompt(r) for r in replies.values()],  # type: ignore[attr-defined]
                            [saved.record.site])
    expected = 1.0 - saved.probe.predict_proba(feats[saved.record.site])
    for (tid, reply), want in zip(replies.items(), expected, strict=True):
        row = rows[tid]
        assert row.score == pytest.approx(float(want), abs=1e-5)
        assert row.label == str(int(want >= 0.5))
        assert saved.record.site in (row.evidence or "") and row.evidence_end == len(reply)
    empty = next(r for tid, r in rows.items() if tid not in replies)
    assert empty.score == 0.0 and "no last assistant text" in (empty.evidence or "")

    again = runner.invoke(app, args)
    assert again.exit_code == 0 and json.loads(again.stdout)["scored"] == 0  # resumable: nothing left


def test_monitor_refuses_a_model_with_other_weights(saved_probe: Path, tmp_path: Path) -> None:
    from tiny_models import save_tiny_model

    other = save_tiny_model("gemma3", tmp_path / "other", seed=1)
    with pytest.raises(ProbeModelMismatch, match="train a new probe"):
        ProbeMonitor(saved_probe, model=f"hf:{other}")
    result = runner.invoke(app, ["monitor", "--monitor", "probe", "--option", f"probe={saved_probe}",
                                 "--option", f"model=hf:{other}", "--db", f"sqlite:///{tmp_path / 's.db'}"])
    assert result.exit_code == 2
    assert "was trained on" in result.stderr and "has weights" in result.stderr


def test_monitor_options_and_views(saved_probe: Path, tiny_gemma_dir: Path) -> None:
    lm = load_model(f"hf:{tiny_gemma_dir}")
    monitor = build_monitor("probe", probe=str(saved_probe), model=lm, fault_label=1, text="last_user")
    chat = Chat.from_pairs(1, [("user", "2 + 2 = 4."), ("assistant", "No.")])
    (verdict,) = monitor.score([chat])
    other = ProbeMonitor(saved_probe, model=lm, text="last_user")
    (flipped,) = other.score([chat])
    assert verdict.score == pytest.approx(1.0 - flipped.score) and verdict.span == (0, 0, len("2 + 2 = 4."))
    assert monitor.info.version != other.info.version  # different settings never share verdicts
    assert "true" in monitor.info.detects and "false" in other.info.detects
    whole = ProbeMonitor(saved_probe, model=lm, text="all").score([chat])[0]
    assert whole.span is None and 0.0 <= whole.score <= 1.0
    with pytest.raises(Exception, match="fault_label"):
        ProbeMonitor(saved_probe, model=lm, fault_label=2)
    with pytest.raises(Exception, match="text must be"):
        build_monitor("probe", probe=str(saved_probe), model=lm, text="everything")
    assert np.isfinite(verdict.score)


def test_monitor_needs_a_local_model(saved_probe: Path) -> None:
    with pytest.raises(Exception, match="needs a local model"):
        ProbeMonitor(saved_probe, model="openai:http://127.0.0.1:9/v1#m")
