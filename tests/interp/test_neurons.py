"""Neuron top-k search on tiny models: streaming equals brute force, memory is bounded, pages escape."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from oversight.errors import DataError, SpecError
from oversight.interp.corpus import load_dataset, read_texts
from oversight.interp.neurons import (
    TopK,
    find_top_activations,
    mlp_width,
    neuron_search,
    neurons_page,
)
from oversight.interp.pages import render_page
from oversight.interp.sites import layout, resolve_sites
from oversight.interp.trace import forward_with, pad
from oversight.models.hf import HFModel, load_hf

TEXTS = [
    "If John has a pet, then John has a dog.",
    "The capital of France is Paris. The capital of Italy is Rome.",
    "Question: Is the sky blue? Answer: Yes.",
    "User: please help me. Assistant: I cannot help with that request.",
    "A B C D (A) (B) true false 0 1 2 3",
    "John does not have a dog.",
    "The capital of Italy is Rome.",
    "0 1 2 3 4 5 6 7 8 9 + - = ?",
    "Answer: No. Question: Is Paris in France?",
    "please help me with the sky",
    "dog cat pet dog cat pet",
    "true false true false true",
]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFModel:
    return load_hf(str(tiny_model_dir))


def brute_force(model: HFModel, texts: list[str], layer: int) -> list[tuple[torch.Tensor, list[int]]]:
    """Every text alone (no padding at all): its neuron activations [tokens, n] and token ids."""
    (site,) = resolve_sites(model.model, f"neurons.{layer}")
    out = []
    for text in texts:
        ids = model.tokenizer(text)["input_ids"]
        raw = forward_with(model.model, pad([ids], pad_id=0), capture=[site])[site.name]
        out.append((raw[0].float(), ids))
    return out


def test_streaming_top_k_equals_brute_force_over_all_activations(tiny: HFModel) -> None:
    layer, k, before, after = 1, 4, 3, 2
    buffers = find_top_activations(tiny.model, tiny.tokenizer, TEXTS, layer, k=k, batch_size=3, window=(before, after))
    every = brute_force(tiny, TEXTS, layer)
    special = set(tiny.tokenizer.all_special_ids)
    candidates = [(t, p) for t, (_, ids) in enumerate(every) for p, i in enumerate(ids) if i not in special]
    values = torch.stack([every[t][0][p] for t, p in candidates])  # [all tokens, n]
    expected = values.topk(k, dim=0).values.T  # [n, k]
    torch.testing.assert_close(buffers.values, expected, atol=1e-4, rtol=1e-4)
    assert buffers.n_tokens == len(candidates)
    torch.testing.assert_close(buffers.sums.float(), values.sum(0), atol=1e-3, rtol=1e-4)
    # Each kept entry points at a real token whose activation and window are what brute force sees.
    for neuron in range(0, buffers.values.shape[0], 17):
        for j in range(k):
            text, pos = int(buffers.texts[neuron, j]), int(buffers.positions[neuron, j])
            acts, ids = every[text]
            assert ids[pos] not in special
            assert float(acts[pos, neuron]) == pytest.approx(float(buffers.values[neuron, j]), abs=1e-4)
            for w, offset in enumerate(range(-before, after + 1)):
                q = pos + offset
                if 0 <= q < len(ids):
                    assert int(buffers.context_ids[neuron, j, w]) == ids[q]
                    assert float(buffers.context_acts[neuron, j, w]) == pytest.approx(float(acts[q, neuron]), abs=1e-4)
                else:
                    assert int(buffers.context_ids[neuron, j, w]) == -1


def test_buffers_do_not_grow_with_the_corpus(tiny: HFModel) -> None:
    small = find_top_activations(tiny.model, tiny.tokenizer, TEXTS[:3], 0, k=5, batch_size=2)
    large = find_top_activations(tiny.model, tiny.tokenizer, TEXTS * 6, 0, k=5, batch_size=2)
    assert large.n_tokens > 10 * small.n_tokens // 2
    assert small.nbytes() == large.nbytes() == TopK.empty(mlp_width(tiny.model, 0), 5).nbytes()
    assert all(a.shape == b.shape for a, b in [(small.values, large.values), (small.context_acts, large.context_acts)])


def test_a_corpus_shorter_than_k_leaves_empty_slots(tiny: HFModel) -> None:
    result = neuron_search(tiny.model, tiny.tokenizer, ["dog"], 0, k=20)
    n_real = result.n_tokens
    assert 0 < n_real < 20
    assert all(len(n.contexts) == n_real for n in result.neurons)
    json.dumps(result.to_dict())  # every value is JSON-serialisable


def test_results_summarise_contexts_and_cut_long_texts(tiny: HFModel) -> None:
    texts = [*TEXTS, " ".join(["dog cat"] * 60)]
    result = neuron_search(tiny.model, tiny.tokenizer, texts, -1, k=3, max_tokens=32, model_name="tiny", fingerprint="fp")
    assert result.layer == layout(tiny.model).n_layers - 1 and result.site == f"neurons.{result.layer}"
    long = sum(len(tiny.tokenizer(t)["input_ids"]) > 32 for t in texts)
    assert 1 <= long < len(texts) and result.n_truncated == long and result.n_texts == len(texts)
    assert len(result.neurons) == mlp_width(tiny.model, result.layer)
    top = result.ranked()[0]
    assert top.max == max(n.max for n in result.neurons)
    ctx = top.contexts[0]
    assert ctx.activations[ctx.focus] == pytest.approx(ctx.activation, abs=1e-3)
    assert sum(c for _, c in top.top_tokens) == len(top.contexts)
    assert all(0.0 <= n.density <= 1.0 for n in result.neurons)


def test_layer_out_of_range_is_a_clear_error(tiny: HFModel) -> None:
    with pytest.raises(SpecError, match="out of range"):
        neuron_search(tiny.model, tiny.tokenizer, TEXTS, 99)


def test_page_escapes_hostile_text(tiny_gemma_dir: Path) -> None:
    model = load_hf(str(tiny_gemma_dir))
    hostile = ['<script>alert("x")</script> dog', '"><img src=x onerror=alert(1)> cat', "</td></tr></table><b>bold</b>"]
    result = neuron_search(model.model, model.tokenizer, hostile * 2 + TEXTS, 0, k=8, model_name="<i>model</i>")
    html = render_page(neurons_page(result, show=64, command="oversight neurons --data '<x>'"))
    lowered = html.lower()
    assert "<script" not in lowered and "<img" not in lowered and "<b>" not in lowered and "<i>model" not in lowered
    assert "&lt;" in html
    assert "neuron " in html and "▶0" in html


def test_read_texts_from_text_jsonl_and_csv_files(tmp_path: Path) -> None:
    (tmp_path / "a.txt").write_text("first\n\nsecond\n")
    (tmp_path / "b.jsonl").write_text('{"text": "one"}\n{"text": "two"}\n')
    (tmp_path / "c.csv").write_text("id,prompt\n1,hello\n2,world\n")
    assert read_texts(tmp_path / "a.txt") == ["first", "second"]
    assert read_texts(tmp_path / "b.jsonl") == ["one", "two"]
    assert read_texts(tmp_path / "c.csv") == ["hello", "world"]
    assert read_texts(tmp_path / "c.csv", field="id", limit=1) == ["1"]


def test_read_texts_errors_name_file_line_and_field(tmp_path: Path) -> None:
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "ok"}\n{"text": 3}\n')
    with pytest.raises(DataError, match=r"bad.jsonl:2, field 'text'"):
        read_texts(bad)
    nofield = tmp_path / "nofield.jsonl"
    nofield.write_text('{"body": "x"}\n')
    with pytest.raises(DataError, match="no text field"):
        read_texts(nofield)
    with pytest.raises(DataError, match="not found"):
        read_texts(tmp_path / "missing.txt")


def test_built_in_datasets(tmp_path: Path) -> None:
    safety = load_dataset("safety", limit=5)
    assert len(safety) == 5 and all(isinstance(t, str) and t for t in safety)
    with pytest.raises(SpecError, match="built-in sets are"):
        load_dataset("nope")
    with pytest.raises(DataError, match=r"needs truthfulqa/TruthfulQA\.csv"):
        load_dataset("truthfulqa", root=tmp_path)


def test_built_in_datasets_from_the_shared_data(shared_data: Path) -> None:
    for name in ("truthfulqa", "moderation", "refusal", "harmbench", "persona"):
        texts = load_dataset(name, root=shared_data, limit=3)
        assert len(texts) == 3 and all(t.strip() for t in texts), name
