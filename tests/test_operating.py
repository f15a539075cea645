"""Threshold rules, their transfer across blocks, and patient-grouped bootstrap intervals."""

import numpy as np
import pytest

from pneumo.stats import calibration, metrics, operating


def scores(seed=0, n=(400, 600), shift=3.0):
    """Logits of two overlapping classes: normals around -shift/2, pneumonia around +shift/2."""
    rng = np.random.default_rng(seed)
    logits = np.concatenate([rng.normal(-shift / 2, 1, n[0]), rng.normal(shift / 2, 1, n[1])])
    labels = np.concatenate([np.zeros(n[0], int), np.ones(n[1], int)])
    return labels, logits


@pytest.mark.parametrize("rule", list(operating.RULES))
def test_every_rule_gives_a_threshold_inside_the_scores(rule):
    labels, logits = scores()
    probs = calibration.sigmoid(logits)
    threshold = operating.threshold_by_rule(rule, labels, probs, 0.95)
    assert probs.min() <= threshold <= probs.max()


def test_the_sensitivity_bound_is_the_highest_threshold_keeping_the_bound():
    labels, logits = scores()
    probs = calibration.sigmoid(logits)
    threshold = operating.threshold_by_rule("sensitivity_bound", labels, probs, 0.95)
    caught = int((probs[labels == 1] >= threshold).sum())
    assert metrics.wilson_lower_bound(caught, 600) >= 0.95
    assert metrics.wilson_lower_bound(caught - 1, 600) < 0.95  # one more miss breaks it
    assert threshold >= operating.threshold_by_rule("youden_wilson", labels, probs, 0.95)


def test_the_logit_midpoint_sits_between_the_class_percentiles():
    labels, logits = scores()
    threshold = operating.threshold_by_rule("logit_midpoint", labels, calibration.sigmoid(logits))
    expected = (np.percentile(logits[labels == 0], 95) + np.percentile(logits[labels == 1], 5)) / 2
    assert np.log(threshold / (1 - threshold)) == pytest.approx(expected, abs=1e-9)


def test_an_unknown_rule_or_no_pneumonia_is_refused():
    with pytest.raises(ValueError, match="unknown threshold rule 'median'"):
        operating.threshold_by_rule("median", np.array([0, 1]), np.array([0.2, 0.8]))
    with pytest.raises(ValueError, match="needs pneumonia films"):
        operating.threshold_by_rule("logit_midpoint", np.array([0, 0]), np.array([0.2, 0.8]))


def test_transfer_measures_each_block_with_a_threshold_chosen_on_the_others():
    labels, logits = scores()
    blocks = np.arange(len(labels)) % 4
    logits = logits + np.where(blocks == 3, 1.5, 0.0)  # block 3 is shifted towards pneumonia
    rows = operating.transfer_by_block(labels, logits, blocks, "youden_wilson", 0.95)
    assert [r["block"] for r in rows] == [0, 1, 2, 3]
    for row in rows:
        rest = blocks != row["block"]
        temperature = calibration.fit_temperature(logits[rest], labels[rest])
        assert row["temperature"] == pytest.approx(temperature)
        assert row["threshold"] == pytest.approx(operating.threshold_by_rule(
            "youden_wilson", labels[rest], calibration.sigmoid(logits[rest] / temperature), 0.95))
    summary = operating.summarise_transfer(rows)
    assert summary["specificity"]["worst"] == pytest.approx(rows[3]["specificity"])  # the shifted block
    assert summary["specificity"]["worst"] < summary["specificity"]["mean"]


def test_intervals_contain_the_figure_and_resample_patients_not_films():
    labels, logits = scores(n=(150, 250))
    probs = calibration.sigmoid(logits)
    groups = [f"p{i}" for i in range(len(labels))]
    alone = operating.figures_with_intervals(labels, probs, 0.5, groups, resamples=300)
    for key in ("roc_auc", "sensitivity", "specificity", "accuracy", "ece"):
        assert alone[key]["low"] <= alone[key]["value"] <= alone[key]["high"], key
    # The same films, each patient filmed four times: four times as many films, the same
    # patients, so the interval must not narrow as if they were new patients.
    repeated = operating.figures_with_intervals(np.repeat(labels, 4), np.repeat(probs, 4), 0.5,
                                                np.repeat(groups, 4), resamples=300)
    width = lambda f: f["roc_auc"]["high"] - f["roc_auc"]["low"]  # noqa: E731
    assert width(repeated) == pytest.approx(width(alone), rel=0.3)
    as_films = operating.figures_with_intervals(np.repeat(labels, 4), np.repeat(probs, 4), 0.5,
                                                [f"f{i}" for i in range(4 * len(labels))], resamples=300)
    assert width(as_films) < 0.7 * width(repeated)


def test_weighted_figures_equal_pneumo_metrics_on_repeated_films():
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 120)
    probs = np.round(np.clip(labels * 0.25 + rng.random(120) * 0.75, 0, 1), 2)  # rounded: ties
    repeats = rng.integers(0, 4, (5, 120)).astype(float)
    computed = operating.weighted_figures(labels, probs, 0.4, repeats)
    for row, weights in enumerate(repeats):
        index = np.repeat(np.arange(120), weights.astype(int))
        expected = metrics.evaluate(labels[index], probs[index], 0.4)
        for key in operating.FIGURES:
            assert computed[key][row] == pytest.approx(expected[key], abs=1e-12), key


def test_the_bootstrap_draws_whole_patients():
    patients = ["a", "a", "b", "c", "c", "c"]
    weights = operating.patient_weights(patients, resamples=200, seed=1)
    assert weights.shape == (200, 6)
    assert (weights[:, 0] == weights[:, 1]).all() and (weights[:, 3] == weights[:, 5]).all()
    assert (weights[:, [0, 2, 3]].sum(axis=1) == 3).all()  # as many patients as there are
    np.testing.assert_array_equal(weights, operating.patient_weights(patients, resamples=200, seed=1))


def test_the_rule_kept_is_the_one_whose_sensitivity_holds_on_every_new_block():
    from pneumo.training.crossval import choose_rule

    def rows(sensitivities, specificities):
        return [{"sensitivity": se, "specificity": sp, "accuracy": 0.9, "roc_auc": 0.99, "ece": 0.02}
                for se, sp in zip(sensitivities, specificities)]

    transfers = {"edge": rows([0.99, 0.97, 0.91], [0.99, 0.99, 0.98]),  # mean 0.957, worst 0.91
                 "safe": rows([0.98, 0.97, 0.96], [0.96, 0.95, 0.94]),
                 "safer": rows([0.99, 0.98, 0.97], [0.93, 0.92, 0.90])}
    assert choose_rule(transfers, 0.95) == "safe"  # holds everywhere, then the best worst specificity
    assert choose_rule(transfers, 0.965) == "safer"
    assert choose_rule({"edge": transfers["edge"], "low": rows([0.90] * 3, [0.99] * 3)}, 0.95) == "edge"
    assert choose_rule({"low": rows([0.90] * 3, [0.99] * 3), "lower": rows([0.80] * 3, [0.99] * 3)},
                       0.95) == "low"
