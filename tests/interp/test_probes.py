"""Supervised probes on synthetic features, and saved probe files (interp/probes.py, probe_file.py)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from oversight.errors import DataError
from oversight.interp.contrast import ContrastTemplate
from oversight.interp.probe_file import SavedAccuracy, load_probe, save_probe
from oversight.interp.probes import (
    accuracy,
    best_by_validation,
    best_threshold,
    fit_logistic,
    fit_mean_difference,
    parse_position,
    run_probes,
)


def separable(n: int = 300, d: int = 40, seed: int = 0, margin: float = 3.0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Labels on a known direction ``v`` with a margin; large nuisance variance elsewhere."""
    rng = np.random.default_rng(seed)
    v = rng.normal(size=d)
    v /= np.linalg.norm(v)
    y = rng.integers(0, 2, n)
    x = rng.normal(scale=1.0, size=(n, d)) + 50.0  # a big offset: preprocessing must handle it
    x -= np.outer(x @ v - 50.0 * v.sum(), v)  # remove the noise along v
    x += np.outer((2 * y - 1) * margin, v)
    return x, y, v


@pytest.mark.parametrize("fit", [fit_logistic, fit_mean_difference])
def test_probes_separate_separable_features(fit) -> None:  # type: ignore[no-untyped-def]
    x, y, v = separable()
    probe = fit(x[:200], y[:200])
    assert accuracy(probe.predict(x[200:]), y[200:]).value == 1.0
    assert probe.direction @ v > 0.9  # it found the direction, pointing to "true"
    p = probe.predict_proba(x[200:])
    assert ((p >= 0.5) == (y[200:] == 1)).all() and ((p >= 0) & (p <= 1)).all()


def test_logistic_chooses_c_by_cross_validation_on_train_only() -> None:
    x, y, _ = separable(n=120, d=80, margin=0.6, seed=2)
    probe = fit_logistic(x, y, cs=(0.001, 0.1, 10.0), folds=4)
    assert probe.details["C"] in (0.001, 0.1, 10.0)
    assert 0.5 <= probe.details["cv_accuracy"] <= 1.0 and probe.details["cv_folds"] == 4
    np.testing.assert_allclose(probe.mean, x.mean(0))
    np.testing.assert_allclose(probe.scale, x.std(0))


def test_mean_difference_threshold_maximises_training_accuracy() -> None:
    scores = np.array([0.1, 0.2, 0.3, 0.8, 0.9, 1.0])
    labels = np.array([0, 0, 0, 1, 1, 1])
    cut = best_threshold(scores, labels)
    assert 0.3 < cut < 0.8
    x = np.array([[0.0], [0.1], [1.0], [1.2]])
    probe = fit_mean_difference(x, [0, 0, 1, 1])
    assert probe.details["train_accuracy"] == 1.0 and list(probe.predict(x)) == [0, 0, 1, 1]


def test_probes_need_both_labels_and_finite_features() -> None:
    with pytest.raises(ValueError, match="both true"):
        fit_logistic(np.zeros((4, 2)), [1, 1, 1, 1])
    with pytest.raises(ValueError, match="NaN"):
        fit_mean_difference(np.array([[np.nan], [1.0]]), [0, 1])


def test_accuracy_has_a_wilson_interval() -> None:
    acc = accuracy([1, 0, 1, 1], [1, 0, 0, 1])
    assert (acc.correct, acc.n, acc.value) == (3, 4, 0.75)
    assert 0.2 < acc.low < 0.75 < acc.high <= 1.0


def test_sweep_chooses_the_informative_site_on_validation() -> None:
    x, y, _ = separable(n=200, seed=5)
    noise = np.random.default_rng(1).normal(size=x.shape)
    groups = [f"g{i // 2}" for i in range(200)]
    run = run_probes({"resid.0": noise, "resid.1": x, "resid.2": noise[:, ::-1].copy()}, list(y), groups, dataset="synthetic")
    assert run.split_sizes["validation"] > 0
    for kind in ("logistic", "mean_difference"):
        assert run.chosen[kind].site == "resid.1" and run.chosen[kind].test.value > 0.95
        assert best_by_validation(run.scores, kind).site == "resid.1"
    by_site = {(s.site, s.kind): s for s in run.scores}
    assert by_site[("resid.0", "logistic")].test.value < 0.8  # noise stays near chance
    single = run_probes({"resid.1": x}, list(y), groups, dataset="synthetic")
    assert single.split_sizes["validation"] == 0 and single.rule == "the only site"
    assert json.dumps(run.to_json())  # plain JSON


def test_parse_position() -> None:
    assert parse_position("last") == "last" and parse_position("-2") == -2
    with pytest.raises(Exception, match="token index"):
        parse_position("first")


def test_saved_probe_round_trip_and_checks(tmp_path: Path) -> None:
    x, y, _ = separable()
    probe = fit_logistic(x[:200], y[:200])
    acc = accuracy(probe.predict(x[200:]), y[200:])
    path = save_probe(tmp_path / "p.json", probe, model_spec="hf:/m", fingerprint="sha256:abc", site="resid.3", layer=3,
                      position="last", template=ContrastTemplate("{text}"), accuracy=SavedAccuracy.of(acc, "test"),
                      dataset="synthetic", n_train=200)
    assert path.name == "p.json" and (tmp_path / "p.safetensors").is_file()
    loaded = load_probe(path)
    assert loaded.record.model.fingerprint == "sha256:abc" and loaded.record.site == "resid.3"
    assert loaded.record.accuracy is not None and loaded.record.accuracy.value == 1.0
    np.testing.assert_allclose(loaded.probe.predict_proba(x), probe.predict_proba(x))
    assert loaded.template.prompt("t") == "t"

    record = json.loads(path.read_text())
    record["weights"] = "../elsewhere.safetensors"
    (tmp_path / "escape.json").write_text(json.dumps(record))
    with pytest.raises(DataError, match="bare file name") as err:
        load_probe(tmp_path / "escape.json")
    assert err.value.field == "weights"

    (tmp_path / "p.safetensors").write_bytes((tmp_path / "p.safetensors").read_bytes()[:-8])
    with pytest.raises(DataError, match="sha256") as err2:
        load_probe(path)
    assert err2.value.field == "weights_sha256"

    (tmp_path / "junk.json").write_text('{"format": "something else"}')
    with pytest.raises(DataError, match="not a saved probe"):
        load_probe(tmp_path / "junk.json")
    del record["site"]
    record["weights"] = "p.safetensors"
    (tmp_path / "nosite.json").write_text(json.dumps(record))
    with pytest.raises(DataError) as err3:
        load_probe(tmp_path / "nosite.json")
    assert err3.value.field == "site"
