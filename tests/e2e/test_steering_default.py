"""Steering the default model (Gemma 3 270M) with a sentiment direction: the effect has the right sign."""

from __future__ import annotations

import pytest

from oversight.interp.steering import SteeredModel, Steering, mean_difference
from oversight.models.base import LoglikelihoodRequest
from oversight.models.default import load_default

pytestmark = pytest.mark.e2e

POSITIVE = ["I absolutely loved it. It was wonderful.", "What a fantastic day, I feel so happy.",
            "The film was brilliant and moving.", "The service was excellent and the staff were lovely."]
NEGATIVE = ["I absolutely hated it. It was awful.", "What a terrible day, I feel so miserable.",
            "The film was dull and painful.", "The service was dreadful and the staff were horrible."]


def test_a_sentiment_direction_moves_sentiment_both_ways() -> None:
    model = load_default()
    d = mean_difference(model.model, model.tokenizer, POSITIVE, NEGATIVE, 6, reduce="mean", fingerprint=model.info.fingerprint)
    requests = [LoglikelihoodRequest("My day was", " wonderful"), LoglikelihoodRequest("My day was", " awful")]

    def margin(coef: float | None) -> float:
        target = model if coef is None else SteeredModel(model, Steering(d, coef))
        good, bad = target.loglikelihood(requests)
        return good.logprob - bad.logprob

    plain = margin(None)
    assert margin(0.0) == pytest.approx(plain, abs=1e-5)
    assert margin(4.0) > plain + 1.0
    assert margin(-4.0) < plain - 1.0
