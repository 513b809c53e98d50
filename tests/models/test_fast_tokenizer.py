"""The saved tokenizer behaves as AutoTokenizer's, and a changed tokenizer is loaded afresh."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import pytest
from transformers import AutoTokenizer

from oversight.models import fast_tokenizer
from oversight.models.fast_tokenizer import load_tokenizer

TEXTS = [
    "Question: Is the sky blue? Answer: (A) Yes",
    "If John has a pet, then John has a dog.",
    "  spaces  and\nnewlines\t",
    "<bos>The capital of France is Paris.<eos>",
    "ünïcödé 🙂",
]


@pytest.fixture()
def model_dir(tiny_gemma_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("OVERSIGHT_CACHE_DIR", str(tmp_path / "cache"))
    copy = tmp_path / "model"
    shutil.copytree(tiny_gemma_dir, copy)
    return copy


def _saved(tmp_path: Path) -> list[Path]:
    root = tmp_path / "cache" / "tokenizers"
    return sorted(p for p in root.iterdir() if not p.name.startswith(".")) if root.exists() else []


def test_second_load_reads_the_saved_tokenizer_and_encodes_the_same(model_dir: Path, tmp_path: Path) -> None:
    original = AutoTokenizer.from_pretrained(model_dir)
    first = load_tokenizer(model_dir)
    assert len(_saved(tmp_path)) == 1
    second = load_tokenizer(model_dir)
    for tok in (first, second):
        assert (tok.bos_token_id, tok.eos_token_id, tok.pad_token_id) == (
            original.bos_token_id, original.eos_token_id, original.pad_token_id,
        )
        for text in TEXTS:
            ids = original.encode(text)
            assert tok.encode(text) == ids
            assert tok.encode(text, add_special_tokens=False) == original.encode(text, add_special_tokens=False)
            assert tok.decode(ids, skip_special_tokens=True) == original.decode(ids, skip_special_tokens=True)


def test_a_changed_tokenizer_file_is_loaded_afresh(model_dir: Path, tmp_path: Path) -> None:
    load_tokenizer(model_dir)
    config_path = model_dir / "tokenizer_config.json"
    config = json.loads(config_path.read_text())
    config["model_max_length"] = 77
    config_path.write_text(json.dumps(config))
    os.utime(config_path, ns=(1, 1))  # a new modification time, whatever the clock's resolution
    assert load_tokenizer(model_dir).model_max_length == 77
    assert len(_saved(tmp_path)) == 2


def test_an_unreadable_saved_tokenizer_is_rebuilt(model_dir: Path, tmp_path: Path) -> None:
    load_tokenizer(model_dir)
    (saved,) = _saved(tmp_path)
    (saved / "tokenizer.json").write_text("{not json")
    tok = load_tokenizer(model_dir)
    assert tok.encode(TEXTS[0]) == AutoTokenizer.from_pretrained(model_dir).encode(TEXTS[0])
    assert json.loads((saved / "tokenizer.json").read_text())  # saved again, whole


def test_a_tokenizer_that_behaves_differently_is_not_saved(model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fast_tokenizer, "_same_behaviour", lambda a, b: False)
    load_tokenizer(model_dir)
    assert _saved(tmp_path) == []
