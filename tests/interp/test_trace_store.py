"""Streaming activations to disk: read-back equals the in-memory capture, memory stays bounded,
a killed capture resumes at the next shard, and mismatched or broken stores are refused clearly."""

from __future__ import annotations

import gc
import json
import warnings
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import PreTrainedModel

from oversight.errors import DataError, OversightError
from oversight.interp.activation_store import ActivationStore, read_manifest, write_activations
from oversight.interp.trace import Activations, capture
from tiny_models import tiny_model, tiny_tokenizer

WORDS = ["the", "capital", "of", "France", "is", "Paris", "and", "John", "has", "a", "dog", "Yes", "No", "true", "false", "1", "2", "3", "+", "=", "?"]
TEXTS = [" ".join(WORDS[(i * 7 + k) % len(WORDS)] for k in range(1 + i % 9)) for i in range(23)]


@pytest.fixture(scope="module", params=["gemma3", "gpt2"])
def lm(request: pytest.FixtureRequest) -> tuple[PreTrainedModel, Any]:
    tok = tiny_tokenizer()
    return tiny_model(request.param, tok), tok


def same(a: Activations, b: Activations, rel: float = 0.0) -> None:
    """Equal, or equal up to ``rel`` (shards batch texts differently from one in-memory capture, and
    padding to another length moves float32 rounding)."""
    assert set(a.sites) == set(b.sites) and set(a.patterns) == set(b.patterns)
    pairs = [(a.sites[n], b.sites[n]) for n in a.sites]
    pairs += [(x, y) for n in a.patterns for x, y in zip(a.patterns[n], b.patterns[n], strict=True)]
    for x, y in pairs:
        assert x.dtype == y.dtype and x.shape == y.shape
        assert torch.equal(x, y) if not rel else (x.float() - y.float()).abs().max() <= rel * max(1.0, float(y.float().abs().max()))
    assert a.offsets == b.offsets and a.token_ids == b.token_ids and a.positions == b.positions


@pytest.mark.parametrize(
    ("positions", "dtype"),
    [("last", torch.float32), ("all", torch.bfloat16), ([0, -1], torch.float32), ("mask", torch.float32)],
)
def test_read_back_equals_the_in_memory_capture(lm: tuple[PreTrainedModel, Any], tmp_path: Path, positions: Any, dtype: torch.dtype) -> None:
    model, tok = lm
    if positions == "mask":
        positions = [[k % 3 == 0 for k in range(len(tok(t)["input_ids"]))] for t in TEXTS]
    sites = ["embed", "resid.1", "neurons.0", "pattern.1"]
    store = write_activations(model, tok, TEXTS, sites, tmp_path / "acts", positions=positions, dtype=dtype,
                              batch_size=4, texts_per_shard=5, model_name="tiny", fingerprint="sha256:test")
    expected = capture(model, tok, TEXTS, sites, positions=positions, dtype=dtype, batch_size=4)
    assert len(list((tmp_path / "acts").glob("shard-*.safetensors"))) == 5
    same(store.read(), expected, rel=1e-2 if dtype == torch.bfloat16 else 1e-5)
    one_shard = write_activations(model, tok, TEXTS, sites, tmp_path / "one", positions=positions, dtype=dtype,
                                  batch_size=4, texts_per_shard=100, fingerprint="sha256:test")
    same(one_shard.read(), expected)  # the same batches as the in-memory capture: bit for bit
    reopened = ActivationStore(tmp_path / "acts")
    assert reopened.manifest.complete and reopened.n_texts == len(TEXTS)
    part = reopened.read(["resid.1", "pattern.1"], 3, 12)  # crosses two shard boundaries
    whole = reopened.read()
    for i in range(3, 12):
        assert torch.equal(part.of("resid.1", i - 3), whole.of("resid.1", i))
        assert torch.equal(part.of("pattern.1", i - 3), whole.of("pattern.1", i))
        assert torch.equal(reopened.of("neurons.0", i), whole.of("neurons.0", i))
    assert part.token_ids == expected.token_ids[3:12]
    firsts = [first for first, _ in reopened.iter_texts("embed", batch=10)]
    assert firsts == [0, 10, 20]


def test_manifest_records_what_a_resume_must_match(lm: tuple[PreTrainedModel, Any], tmp_path: Path) -> None:
    model, tok = lm
    write_activations(model, tok, TEXTS, ["resid.0", "resid.-1"], tmp_path, texts_per_shard=10, model_name="tiny", fingerprint="sha256:abc")
    manifest = json.loads((tmp_path / "manifest.json").read_text())
    assert manifest["format"] == "oversight-activations/1"
    assert manifest["fingerprint"] == "sha256:abc" and manifest["model"] == "tiny"
    assert manifest["sites"] == ["resid.0", "resid.-1"] and manifest["positions"] == "last"
    assert manifest["dtype"] == "float32" and manifest["n_texts"] == 23
    assert [(s["start"], s["stop"]) for s in manifest["shards"]] == [(0, 10), (10, 20), (20, 23)]
    with pytest.raises(OversightError, match=r"sites=.*use another directory"):
        write_activations(model, tok, TEXTS, "resid.1", tmp_path, texts_per_shard=10, model_name="tiny", fingerprint="sha256:abc")
    with pytest.raises(OversightError, match=r"fingerprint="):
        write_activations(model, tok, TEXTS, ["resid.0", "resid.-1"], tmp_path, texts_per_shard=10, model_name="tiny", fingerprint="sha256:other")
    with pytest.raises(OversightError, match=r"inputs_sha256="):
        write_activations(model, tok, [*TEXTS[:-1], "changed"], ["resid.0", "resid.-1"], tmp_path, texts_per_shard=10, model_name="tiny", fingerprint="sha256:abc")


def test_a_killed_capture_resumes_at_the_next_shard(lm: tuple[PreTrainedModel, Any], tmp_path: Path) -> None:
    model, tok = lm
    settings: dict[str, Any] = {"positions": "all", "batch_size": 2, "texts_per_shard": 4, "fingerprint": "sha256:x"}
    reports: list[int] = []

    def interrupt_in_shard_three(done: int, total: int) -> None:
        reports.append(done)
        if done > 9:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        write_activations(model, tok, TEXTS, ["resid.0", "mlp.1"], tmp_path, progress=interrupt_in_shard_three, **settings)
    assert [(s.start, s.stop) for s in read_manifest(tmp_path).shards] == [(0, 4), (4, 8)]
    with pytest.raises(OversightError, match=r"incomplete .8 of 23 texts"):
        ActivationStore(tmp_path).read()
    assert ActivationStore(tmp_path).read("mlp.1", 0, 8).offsets is not None  # what is done can be read already
    kept = {p.name: p.stat().st_mtime_ns for p in tmp_path.glob("shard-*.safetensors")}
    (tmp_path / "shard-00002.safetensors.tmp").write_bytes(b"half a shard from the killed run")
    resumed: list[int] = []
    store = write_activations(model, tok, TEXTS, ["resid.0", "mlp.1"], tmp_path, progress=lambda d, t: resumed.append(d), **settings)
    assert resumed[0] == 8 and resumed[-1] == 23  # started after the two finished shards
    assert all((tmp_path / name).stat().st_mtime_ns == t for name, t in kept.items())
    same(store.read(), capture(model, tok, TEXTS, ["resid.0", "mlp.1"], positions="all", batch_size=2), rel=1e-5)
    assert not list(tmp_path.glob("*.tmp"))


def live_tensor_bytes() -> int:
    """Bytes of every tensor storage Python can reach (each storage once)."""
    storages: dict[int, int] = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for obj in gc.get_objects():
            if isinstance(obj, torch.Tensor):
                storage = obj.untyped_storage()
                storages[storage.data_ptr()] = storage.nbytes()
    return sum(storages.values())


def test_memory_stays_bounded_by_a_couple_of_shards(tmp_path: Path) -> None:
    tok = tiny_tokenizer()
    model = tiny_model("gemma3", tok)
    texts = TEXTS * 12  # 276 texts, every token at every layer
    sites = [f"resid.{i}" for i in range(model.config.num_hidden_layers)]
    gc.collect()
    baseline = live_tensor_bytes()
    peak = 0

    def measure(done: int, total: int) -> None:
        nonlocal peak
        if done % 20 == 0 or done == total:  # a whole shard captured, not yet written: the high point
            peak = max(peak, live_tensor_bytes() - baseline)

    write_activations(model, tok, texts, sites, tmp_path, positions="all", batch_size=8, texts_per_shard=20, fingerprint="sha256:x", progress=measure)
    shard_bytes = [p.stat().st_size for p in tmp_path.glob("shard-*.safetensors")]
    assert len(shard_bytes) == 14
    assert peak < 2.5 * max(shard_bytes)  # one shard being built (+ the batch in flight), never the store
    assert sum(shard_bytes) > 5 * peak


def test_broken_or_foreign_directories_are_refused(lm: tuple[PreTrainedModel, Any], tmp_path: Path) -> None:
    model, tok = lm
    (tmp_path / "other").mkdir()
    (tmp_path / "other" / "notes.txt").write_text("mine")
    with pytest.raises(OversightError, match=r"is not an activation store"):
        write_activations(model, tok, TEXTS, "resid.0", tmp_path / "other", fingerprint="sha256:x")
    with pytest.raises(OversightError, match=r"no manifest.json"):
        ActivationStore(tmp_path / "other")
    with pytest.raises(OversightError, match=r"float32 or bfloat16"):
        write_activations(model, tok, TEXTS, "resid.0", tmp_path / "f16", dtype=torch.float16, fingerprint="sha256:x")
    store = write_activations(model, tok, TEXTS, "resid.0", tmp_path / "ok", fingerprint="sha256:x", texts_per_shard=10)
    with pytest.raises(OversightError, match=r"has no site resid.3; it holds resid.0"):
        store.read("resid.3")
    with pytest.raises(OversightError, match=r"text range \[20, 30\) is outside the 23 texts"):
        store.read(start=20, stop=30)
    (tmp_path / "ok" / "shard-00001.safetensors").write_bytes(b"garbage")
    with pytest.raises(DataError, match=r"shard-00001.safetensors: unreadable shard"):
        store.read()
    manifest = json.loads((tmp_path / "ok" / "manifest.json").read_text())
    manifest["dtype"] = "float16"
    (tmp_path / "ok" / "manifest.json").write_text(json.dumps(manifest))
    with pytest.raises(DataError, match=r"manifest.json, field 'dtype'"):
        ActivationStore(tmp_path / "ok")
