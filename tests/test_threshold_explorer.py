"""pneumo.stats.metrics' threshold explorer: exact from per-film predictions, derived from a stored ROC curve."""

import numpy as np
import pytest

from pneumo.stats import metrics


@pytest.fixture
def validation():
    """A card's validation section for 400 scored films, with and without per-film predictions."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.clip(0.35 * labels + rng.random(400) * 0.65, 0, 1).round(5)
    section = metrics.evaluate(labels, probs, 0.5)
    section["curves"] = metrics.curves(labels, probs, max_points=1000)
    section["predictions"] = {"labels": labels.tolist(), "p_pneumonia": probs.tolist()}
    return section


def _without_predictions(validation: dict) -> dict:
    return {k: v for k, v in validation.items() if k != "predictions"}


def test_roc_derived_figures_are_exact_at_the_curve_points(validation):
    roc = validation["curves"]["roc"]
    for threshold in roc["threshold"][1:-1:7]:
        exact = metrics.validation_at_threshold(validation, threshold)
        derived = metrics.validation_at_threshold(_without_predictions(validation), threshold)
        assert exact["basis"] == "predictions" and derived["basis"] == "roc"
        for key in ("sensitivity", "specificity", "ppv", "npv", "accuracy"):
            assert derived[key] == pytest.approx(exact[key], abs=1e-4), (threshold, key)
        assert derived["confusion_matrix"] == exact["confusion_matrix"]


@pytest.mark.parametrize("max_points", [1000, 20])
def test_roc_derived_figures_are_close_between_points(validation, max_points):
    labels = validation["predictions"]["labels"]
    probs = validation["predictions"]["p_pneumonia"]
    thin = {**_without_predictions(validation), "curves": metrics.curves(labels, probs, max_points=max_points)}
    for threshold in np.linspace(0.05, 0.95, 19):
        exact = metrics.at_threshold(labels, probs, threshold)
        derived = metrics.validation_at_threshold(thin, float(threshold))
        assert derived["sensitivity"] == pytest.approx(exact["sensitivity"], abs=0.08)
        assert derived["specificity"] == pytest.approx(exact["specificity"], abs=0.08)


def test_operating_threshold_reproduces_the_card(validation):
    figures = metrics.validation_at_threshold(validation, validation["threshold"])
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        assert figures[key] == pytest.approx(validation[key])


def test_figures_from_rates_follow_prevalence():
    figures = metrics.figures_from_rates(0.9, 0.8, positives=30, negatives=70, threshold=0.5)
    assert figures["confusion_matrix"] == [[56, 14], [3, 27]]
    assert figures["ppv"] == pytest.approx(27 / 41)
    assert figures["npv"] == pytest.approx(56 / 59)


def test_sweep_spans_zero_to_one(validation):
    sweep = metrics.threshold_sweep(validation, points=11)
    assert sweep["threshold"][0] == 0.0 and sweep["threshold"][-1] == 1.0
    assert sweep["sensitivity"][0] == pytest.approx(1.0)
    assert all(np.diff(sweep["sensitivity"]) <= 1e-12)


def test_missing_curve_and_predictions_is_an_error():
    with pytest.raises(ValueError, match="neither"):
        metrics.validation_at_threshold({"confusion_matrix": [[1, 0], [0, 1]]}, 0.5)


def test_card_figures_are_used_at_the_operating_threshold(validation):
    without = _without_predictions(validation)
    figures = metrics.validation_at_threshold(without, validation["threshold"])
    assert figures["basis"] == "card"
    for key in ("sensitivity", "specificity", "ppv", "npv"):
        assert figures[key] == validation[key]
