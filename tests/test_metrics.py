import numpy as np
import pytest
from sklearn import metrics as skm

from pneumo.stats import calibration, metrics


@pytest.fixture
def scored():
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 2, 400)
    probs = np.clip(0.35 * labels + rng.random(400) * 0.65, 0, 1)
    return labels, probs


def test_evaluate_agrees_with_scikit_learn(scored):
    labels, probs = scored
    result = metrics.evaluate(labels, probs, 0.5)
    predicted = (probs >= 0.5).astype(int)
    tn, fp, fn, tp = skm.confusion_matrix(labels, predicted).ravel()
    assert result["confusion_matrix"] == [[tn, fp], [fn, tp]]
    assert result["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert result["sensitivity"] == pytest.approx(skm.recall_score(labels, predicted))
    assert result["specificity"] == pytest.approx(skm.recall_score(labels, predicted, pos_label=0))
    assert result["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, probs))
    assert result["average_precision"] == pytest.approx(skm.average_precision_score(labels, probs))
    assert result["brier"] == pytest.approx(skm.brier_score_loss(labels, probs))
    f1 = skm.f1_score(labels, predicted, average=None)
    assert result["per_class"]["NORMAL"]["f1-score"] == pytest.approx(f1[0])
    assert result["per_class"]["PNEUMONIA"]["support"] == int(labels.sum())


def test_known_confusion_matrix():
    labels = [0, 0, 0, 1, 1, 1, 1]
    probs = [0.1, 0.6, 0.2, 0.9, 0.4, 0.7, 0.8]
    result = metrics.evaluate(labels, probs, 0.5, ["", "", "", "virus", "bacteria", "virus", "bacteria"])
    assert result["confusion_matrix"] == [[2, 1], [1, 3]]
    assert result["sensitivity"] == pytest.approx(0.75)
    assert result["specificity"] == pytest.approx(2 / 3)
    assert result["ppv"] == pytest.approx(0.75)
    assert result["recall_by_subtype"] == {"bacteria": {"recall": 0.5, "support": 2},
                                           "virus": {"recall": 1.0, "support": 2}}


def test_ece_of_a_known_case():
    # Two bins: 0.2 predicted, 0.0 observed; 0.8 predicted, 1.0 observed -> ECE 0.2.
    labels = np.array([0, 0, 1, 1])
    probs = np.array([0.2, 0.2, 0.8, 0.8])
    assert metrics.expected_calibration_error(labels, probs) == pytest.approx(0.2)
    assert metrics.expected_calibration_error([0, 1], [0.0, 1.0]) == pytest.approx(0.0)


@pytest.mark.parametrize("target", [0.8, 0.9, 0.95])
def test_threshold_keeps_the_promise_with_a_margin_and_the_best_balance(scored, target):
    labels, probs = scored
    threshold = metrics.choose_threshold(labels, probs, target)
    chosen = metrics.at_threshold(labels, probs, threshold)
    n_pos = int(labels.sum())
    caught = round(chosen["sensitivity"] * n_pos)
    assert metrics.wilson_lower_bound(caught, n_pos) >= target
    # No other threshold that keeps the bound has a higher Youden index (brute force).
    for t in np.unique(probs[labels == 1]):
        other = metrics.at_threshold(labels, probs, t)
        if metrics.wilson_lower_bound(round(other["sensitivity"] * n_pos), n_pos) >= target:
            assert other["sensitivity"] + other["specificity"] <= \
                chosen["sensitivity"] + chosen["specificity"] + 1e-12


def test_threshold_does_not_sit_on_the_knife_edge():
    # Separable validation: the highest threshold keeping 95% would miss 5% of pneumonia;
    # the chosen one keeps every pneumonia film and every normal one.
    labels = np.array([0] * 100 + [1] * 100)
    probs = np.concatenate([np.linspace(0.0, 0.3, 100), np.linspace(0.6, 1.0, 100)])
    threshold = metrics.choose_threshold(labels, probs, 0.95)
    assert threshold == pytest.approx(0.6)
    assert metrics.at_threshold(labels, probs, threshold)["sensitivity"] == 1.0


def test_threshold_falls_back_for_few_pneumonia_films():
    labels = np.array([0, 0, 1, 1, 1])
    probs = np.array([0.1, 0.5, 0.4, 0.7, 0.9])
    assert metrics.choose_threshold(labels, probs, 0.95) == pytest.approx(0.4)


def test_wilson_bound_of_known_cases():
    assert metrics.wilson_lower_bound(95, 100) == pytest.approx(0.8882, abs=1e-4)
    assert metrics.wilson_lower_bound(0, 0) == 0.0


def test_threshold_needs_positives():
    with pytest.raises(ValueError, match="pneumonia"):
        metrics.choose_threshold([0, 0], [0.1, 0.2])


def test_curves_are_thinned_and_bounded(scored):
    labels, probs = scored
    result = metrics.curves(labels, probs, max_points=50)
    assert len(result["roc"]["fpr"]) <= 50 and result["roc"]["fpr"][0] == 0.0
    assert sum(result["reliability"]["count"]) == len(labels)


def test_temperature_recovers_a_known_one():
    rng = np.random.default_rng(1)
    true_logits = rng.normal(0, 2, 20000)
    labels = (rng.random(20000) < calibration.sigmoid(true_logits)).astype(float)
    # A model three times too confident: the fitted temperature undoes it.
    assert calibration.fit_temperature(3 * true_logits, labels) == pytest.approx(3.0, rel=0.08)


def test_temperature_improves_likelihood_and_ece():
    rng = np.random.default_rng(2)
    true_logits = rng.normal(0, 1.5, 5000)
    labels = (rng.random(5000) < calibration.sigmoid(true_logits)).astype(float)
    overconfident = 4 * true_logits
    t = calibration.fit_temperature(overconfident, labels)
    assert calibration.negative_log_likelihood(overconfident, labels, t) < \
        calibration.negative_log_likelihood(overconfident, labels, 1.0)
    before = metrics.expected_calibration_error(labels, calibration.sigmoid(overconfident))
    after = metrics.expected_calibration_error(labels, calibration.sigmoid(overconfident / t))
    assert after < before / 2


def test_sigmoid_is_stable_at_extremes():
    out = calibration.sigmoid(np.array([-1000.0, 0.0, 1000.0]))
    np.testing.assert_allclose(out, [0.0, 0.5, 1.0])
    assert np.all(np.isfinite(out))


def test_sigmoid_is_scipys_expit_in_float64():
    from scipy.special import expit

    logits = np.random.default_rng(3).normal(0, 8, 1000).astype(np.float32)
    out = calibration.sigmoid(logits)
    assert out.dtype == np.float64
    np.testing.assert_array_equal(out, expit(logits.astype(np.float64)))


def test_reliability_curve_bins_like_scikit_learn(scored):
    """Same bins and figures as ``calibration_curve``, plus the counts it does not give.

    Ours keeps NumPy's mean per bin; scikit-learn divides bin sums, which can differ in the
    last bits, so the figures are compared to 1e-12 and ours stays (the stored numbers do not move).
    """
    from sklearn.calibration import calibration_curve

    labels, probs = scored
    probs = probs.copy()
    probs[:4] = [0.0, 0.1, 0.5, 1.0]  # on bin edges
    ours = metrics.reliability_curve(labels, probs, bins=10)
    observed, predicted = calibration_curve(labels, probs, n_bins=10, strategy="uniform")
    np.testing.assert_allclose(ours["observed"], observed, rtol=0, atol=1e-12)
    np.testing.assert_allclose(ours["predicted"], predicted, rtol=0, atol=1e-12)
    edges = np.linspace(0, 1, 11)
    expected = np.bincount(np.searchsorted(edges[1:-1], probs), minlength=10)
    assert ours["count"] == [int(n) for n in expected if n]
