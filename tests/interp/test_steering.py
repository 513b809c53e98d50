"""Steering on tiny models: zero is a no-op, a direction acts from its layer on, hooks go away,
the steered model is a different model to caches and run directories."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from oversight.errors import DataError, SpecError
from oversight.evals.resolve import resolve_tasks
from oversight.interp.sites import layout, residual_sites
from oversight.interp.steering import (
    Direction,
    SteeredModel,
    Steering,
    evaluate_steering,
    generate_texts,
    load_direction,
    mean_difference,
    reference_norm,
    steered,
)
from oversight.interp.trace import capture, forward_with, tokenize
from oversight.models.base import GenerationRequest, LoglikelihoodRequest
from oversight.models.cache import ResponseCache
from oversight.models.hf import HFModel, load_hf

POSITIVE = ["The capital of France is Paris.", "Answer: Yes.", "true true true"]
NEGATIVE = ["If John has a pet, then John has a dog.", "Answer: No.", "false false false"]
PROMPTS = ["The capital of Italy is", "Question: Is the sky blue? Answer:"]


@pytest.fixture(scope="module")
def tiny(tiny_model_dir: Path) -> HFModel:
    return load_hf(str(tiny_model_dir))


@pytest.fixture(scope="module")
def gemma(tiny_gemma_dir: Path) -> HFModel:
    return load_hf(str(tiny_gemma_dir))


def direction(model: HFModel, layer: int = 1) -> Direction:
    return mean_difference(model.model, model.tokenizer, POSITIVE, NEGATIVE, layer, fingerprint=model.info.fingerprint)


def no_hooks(model: torch.nn.Module) -> bool:
    return all(not m._forward_hooks and not m._forward_pre_hooks for m in model.modules())


def test_mean_difference_is_the_difference_of_last_token_means(tiny: HFModel) -> None:
    d = direction(tiny, 1)
    pos = capture(tiny.model, tiny.tokenizer, POSITIVE, "resid.1")["resid.1"]
    neg = capture(tiny.model, tiny.tokenizer, NEGATIVE, "resid.1")["resid.1"]
    torch.testing.assert_close(d.vector, pos.mean(0) - neg.mean(0))
    assert d.site == "resid.1" and (d.n_positive, d.n_negative) == (3, 3)
    assert d.reference_norm == pytest.approx(float(torch.cat([pos, neg]).norm(dim=-1).mean()), rel=1e-5)


def test_mean_reduction_averages_over_non_special_tokens(tiny: HFModel) -> None:
    d = mean_difference(tiny.model, tiny.tokenizer, POSITIVE, NEGATIVE, -1, reduce="mean")
    last = layout(tiny.model).n_layers - 1
    assert d.site == f"resid.{last}" and d.reduce == "mean"
    acts = capture(tiny.model, tiny.tokenizer, POSITIVE[:1], f"resid.{last}", positions="all")
    expected_first = acts.of(f"resid.{last}", 0)[1:].mean(0)  # BOS left out
    neg = mean_difference(tiny.model, tiny.tokenizer, POSITIVE[:1], POSITIVE[:1], last, reduce="mean")
    assert float(neg.vector.abs().max()) == 0.0
    assert reference_norm(tiny.model, tiny.tokenizer, POSITIVE[:1], f"resid.{last}") == pytest.approx(float(expected_first.norm()), rel=1e-5)


def test_adding_zero_changes_nothing(tiny: HFModel) -> None:
    zero = SteeredModel(tiny, Steering(direction(tiny), 0.0))
    requests = [LoglikelihoodRequest(p, " Paris") for p in PROMPTS]
    assert zero.loglikelihood(requests) == tiny.loglikelihood(requests)
    gen = [GenerationRequest(prompt=p, max_tokens=8) for p in PROMPTS]
    assert [r.text for r in zero.generate(gen)] == [r.text for r in tiny.generate(gen)]


def test_a_direction_changes_activations_at_and_after_its_layer_only(tiny: HFModel) -> None:
    layer = 1
    steering = Steering(direction(tiny, layer), 4.0)
    batch = tokenize(tiny.tokenizer, PROMPTS)
    sites = residual_sites(tiny.model)
    plain = forward_with(tiny.model, batch, capture=sites, stop_early=False)
    pushed = forward_with(tiny.model, batch, capture=sites, interventions=[steering.intervention()], stop_early=False)
    for site in sites:
        mask = batch.attention_mask.bool()
        same = torch.equal(plain[site.name][mask], pushed[site.name][mask])
        assert same == (site.layer is not None and site.layer < layer), site.name
    # At the layer itself the change is exactly the added vector, at every real position.
    delta = (pushed[f"resid.{layer}"] - plain[f"resid.{layer}"])[batch.attention_mask.bool()]
    torch.testing.assert_close(delta, steering.vector.expand_as(delta), atol=1e-4, rtol=1e-4)
    assert no_hooks(tiny.model)


def test_steering_changes_generations_and_logits(tiny: HFModel) -> None:
    strong = SteeredModel(tiny, Steering(direction(tiny), 8.0, normalise=True))
    requests = [LoglikelihoodRequest(p, " Paris") for p in PROMPTS]
    assert strong.loglikelihood(requests) != tiny.loglikelihood(requests)
    before = generate_texts(tiny, PROMPTS, max_tokens=8)
    after = generate_texts(tiny, PROMPTS, steering=strong.steering, max_tokens=8)
    assert before != after
    assert no_hooks(tiny.model)


def test_hooks_are_removed_after_the_block_even_on_error(gemma: HFModel) -> None:
    steering = Steering(direction(gemma), 2.0)
    with steered(gemma.model, steering):
        assert not no_hooks(gemma.model)
    assert no_hooks(gemma.model)
    with pytest.raises(RuntimeError, match="boom"), steered(gemma.model, steering):
        raise RuntimeError("boom")
    assert no_hooks(gemma.model)


def test_the_steered_fingerprint_names_vector_and_coefficient(gemma: HFModel) -> None:
    d = direction(gemma)
    a, b = SteeredModel(gemma, Steering(d, 4.0)), SteeredModel(gemma, Steering(d, 4.0))
    assert a.info.fingerprint == b.info.fingerprint != gemma.info.fingerprint
    assert a.info.fingerprint.startswith(gemma.info.fingerprint)
    assert SteeredModel(gemma, Steering(d, 2.0)).info.fingerprint != a.info.fingerprint
    assert SteeredModel(gemma, Steering(d, 4.0, normalise=True)).info.fingerprint != a.info.fingerprint
    other = Direction(d.vector + 1e-3, d.site, d.source, d.fingerprint, d.reference_norm)
    assert SteeredModel(gemma, Steering(other, 4.0)).info.fingerprint != a.info.fingerprint
    assert "resid.1" in a.info.spec


def test_a_direction_from_another_model_is_refused(gemma: HFModel) -> None:
    d = direction(gemma)
    alien = Direction(d.vector, d.site, d.source, "sha256:another-model", d.reference_norm)
    with pytest.raises(SpecError, match="another model"):
        SteeredModel(gemma, Steering(alien, 1.0))


def test_direction_files_round_trip_and_tampering_is_caught(gemma: HFModel, tmp_path: Path) -> None:
    d = direction(gemma)
    path = d.save(tmp_path / "dir.json")
    back = load_direction(path)
    torch.testing.assert_close(back.vector, d.vector)
    assert (back.site, back.fingerprint, back.reference_norm) == (d.site, d.fingerprint, d.reference_norm)
    payload = json.loads(path.read_text())
    payload["vector"][0] += 1.0
    path.write_text(json.dumps(payload))
    with pytest.raises(DataError, match="sha256"):
        load_direction(path)
    (tmp_path / "other.json").write_text('{"format": "something"}')
    with pytest.raises(DataError, match="not a direction or probe"):
        load_direction(tmp_path / "other.json")


def test_a_saved_probe_gives_its_unit_direction(gemma: HFModel, tmp_path: Path) -> None:
    from oversight.interp.contrast import ContrastTemplate
    from oversight.interp.probe_file import save_probe
    from oversight.interp.probes import fit_mean_difference

    x = capture(gemma.model, gemma.tokenizer, POSITIVE + NEGATIVE, "resid.2")["resid.2"].numpy()
    probe = fit_mean_difference(x, [1, 1, 1, 0, 0, 0])
    path = save_probe(tmp_path / "probe.json", probe, model_spec="tiny", fingerprint=gemma.info.fingerprint,
                      site="resid.2", layer=2, position="last", template=ContrastTemplate("{text}", ("Yes", "No")))
    d = load_direction(path)
    assert d.site == "resid.2" and d.fingerprint == gemma.info.fingerprint
    assert float(d.vector.norm()) == pytest.approx(1.0, abs=1e-5)
    np.testing.assert_allclose(d.vector.numpy(), probe.direction, rtol=1e-5, atol=1e-6)
    with pytest.raises(SpecError, match="reference norm"):
        Steering(d, 1.0, normalise=True)
    assert SteeredModel(gemma, Steering(d, 3.0)).loglikelihood([LoglikelihoodRequest("Answer:", " Yes")])


def test_evaluate_steering_compares_paired_runs_with_separate_caches(gemma: HFModel, tmp_path: Path) -> None:
    tasks = resolve_tasks(["safety/sycophancy"])
    cache = ResponseCache(tmp_path / "cache.sqlite")
    steering = Steering(direction(gemma), 6.0, normalise=True)
    baseline, evals = evaluate_steering(gemma, [steering], tasks, tmp_path / "runs", limit=6, cache=cache)
    (result,) = evals
    assert baseline == tmp_path / "runs" / "baseline" and result.run_dir == tmp_path / "runs" / "steer_6_norm"
    metrics = {c.metric: c for c in result.comparisons}
    assert "moved_toward_user" in metrics and metrics["moved_toward_user"].comparison.n == 6
    keys = {row[0] for row in cache._conn.execute("SELECT DISTINCT model FROM responses")}
    assert len(keys) == 2 and any("+steer:" in k for k in keys)
    config = json.loads((result.run_dir / "config.json").read_text())
    assert "+steer:" in config["model"]["fingerprint"]
    # The steered run really differs from the baseline: its loglikelihoods are not the same.
    rows_a = [json.loads(x) for x in (baseline / "samples.jsonl").read_text().splitlines()]
    rows_b = [json.loads(x) for x in (result.run_dir / "samples.jsonl").read_text().splitlines()]
    assert [r["loglikelihoods"] for r in rows_a] != [r["loglikelihoods"] for r in rows_b]
    cache.close()
