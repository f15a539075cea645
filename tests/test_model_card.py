"""pneumo.render.model_card: the model page's values from a real card (the shipped model's)."""

import json
from pathlib import Path

import pytest

from pneumo import store
from pneumo.render import model_card
from pneumo.stats import metrics

CARD = Path(__file__).resolve().parent.parent / "model_store" / "cnn160x5" / "card.json"


@pytest.fixture(scope="module")
def validation() -> dict:
    return json.loads(CARD.read_text())["validation"]


def test_format_interval():
    assert model_card.format_interval({"value": 0.98149, "low": 0.9751, "high": 0.98632}) == "0.981 (0.975-0.986)"
    assert model_card.format_interval({"value": 0.5, "low": None, "high": 0.6}, digits=2) == "0.50"
    assert model_card.format_interval({"value": None}) == "n/a" and model_card.format_interval(None) == "n/a"


def test_prevalence_and_roc_points_from_the_confusion_matrix(validation):
    (tn, fp), (fn, tp) = validation["confusion_matrix"]  # [[1313, 28], [84, 3791]]
    assert model_card.prevalence(validation["confusion_matrix"]) == pytest.approx((fn + tp) / 5216)
    assert model_card.prevalence([[0, 0], [0, 0]]) == 0.0
    assert model_card.roc_point(validation) == pytest.approx((fp / (tn + fp), tp / (fn + tp)))
    assert model_card.roc_point({}) == (1, 0)


def test_curve_points_mark_the_models_and_the_chosen_threshold(validation):
    points = model_card.curve_points(validation)
    assert points.prevalence == pytest.approx(3875 / 5216)
    assert points.roc == {"model's threshold": pytest.approx((1 - validation["specificity"],
                                                              validation["sensitivity"]))}
    assert points.pr == {"model's threshold": (validation["sensitivity"], validation["ppv"])}
    chosen = metrics.validation_at_threshold(validation, 0.05)
    both = model_card.curve_points(validation, chosen)
    assert list(both.roc) == ["model's threshold", "chosen threshold 0.050"]
    assert both.roc["chosen threshold 0.050"] == pytest.approx((1 - chosen["specificity"], chosen["sensitivity"]))


def test_validation_metrics_label_average_precision_as_such(validation):
    tiles = model_card.validation_metrics(validation)
    assert [(t.label, t.value) for t in tiles] == [
        ("Accuracy", "0.979"), ("Sensitivity", "0.978"), ("Specificity", "0.979"), ("ROC AUC", "0.997"),
        ("Average precision (AP)", "0.999"), ("ECE", "0.029")]
    assert {t.value for t in model_card.validation_metrics({})} == {"n/a"}


def test_threshold_metrics_and_caption(validation):
    operating = metrics.validation_at_threshold(validation, validation["threshold"])
    same = model_card.threshold_metrics(operating, operating)
    assert [t.label for t in same] == ["Sensitivity", "Specificity", "PPV", "NPV"]
    assert all(t.delta is None for t in same)
    assert same[0].value == f"{operating['sensitivity']:.3f}"
    chosen = metrics.validation_at_threshold(validation, 0.05)
    moved = model_card.threshold_metrics(chosen, operating)
    assert moved[0].delta == f"{chosen['sensitivity'] - operating['sensitivity']:+.3f}"
    assert moved[0].delta.startswith("+") and moved[1].delta.startswith("-")
    (tn, fp), (fn, tp) = chosen["confusion_matrix"]
    caption = model_card.threshold_caption(chosen)
    assert caption.startswith(f"At 0.0500: {tp} pneumonia films caught, {fn} missed; {tn} normal films "
                              f"cleared, {fp} flagged. Figures ")
    assert model_card.THRESHOLD_BASIS_WORDS[chosen["basis"]] in caption


def test_architecture_facts_and_guard_sentence():
    card = json.loads(CARD.read_text())
    loaded = store.LoadedModel(name="cnn160x5", path=CARD.parent, model=None, card=card)  # the card is enough
    facts = model_card.architecture_facts(loaded)
    assert facts["Architecture"] == "ensemble of 5 compact CNNs (mean of their logits), 3,327,811 parameters"
    assert facts["Calibration"] == "temperature scaling, T = 0.641"
    assert facts["Operating threshold"].startswith("0.3398: ")
    sentence = model_card.guard_sentence(loaded.card["guard"], ensemble=True)
    assert ("9 of 1043 real films were refused (1.4% when the thresholds are set on half the patients and "
            "counted on the other half) and 50 were read with a note") in sentence and sentence.endswith(
        "(388 pictures made from the training films by rotating, inverting or tiling them, or generated: "
        "photographs, documents, noise, blanks; not real out-of-scope films): 1.0000.")
    assert "On the ensemble's first member's held-out films, where its thresholds were set (in-distribution" \
        in sentence
    assert model_card.guard_sentence({}).endswith("? of ? real films were refused; AUROC against the "
                                                  "out-of-scope evaluation set: n/a.")


def test_explanation_targets_are_the_stored_figures_judged():
    from pneumo.evaluation.faithfulness_results import check_targets
    from pneumo.render.faithfulness_words import target_rows

    stored = json.loads((CARD.parent / "explanations.json").read_text())
    rows = model_card.explanation_target_rows(stored)
    assert rows and rows == target_rows(check_targets(stored))
    assert {row["met"] for row in rows} <= {"yes", "no", "n/a"}
    assert model_card.explanation_target_rows({}) == []


def test_header_check_rows_follow_the_rules():
    from pneumo.guard import header

    rows = {row["Check"]: row for row in model_card.header_check_rows()}
    assert list(rows) == ["Modality", "Raw detector data", "Body part", "View", "Age"]
    assert rows["Modality"]["Read"].startswith(", ".join(header.RADIOGRAPHY))
    assert all(band in rows["Age"]["Read"] for _, _, band in header.AGE_BANDS)
    assert rows["Age"]["Refused"].startswith(f"{header.ADULT_AGE:.0f} years and over")


def test_header_checks_sentence_states_the_cards_figures():
    card = json.loads(CARD.read_text())
    sentence = model_card.header_checks_sentence(card)
    public = card["header_checks"]["public_files"]
    assert sentence.startswith(f"Of {public['n']} public DICOM files") and "9 CT" in sentence
    assert model_card.header_checks_sentence({}) is None


def test_the_headline_tiles_and_words_come_from_the_scheme_the_operating_point_was_chosen_on():
    card = json.loads(CARD.read_text())
    point = card["cross_validation"]["at_operating_point"][card["cross_validation"]["chosen_on"]]["figures"]
    tiles = model_card.headline_tiles(card)
    assert [t["label"] for t in tiles] == ["Accuracy", "Sensitivity", "Specificity"]
    for tile, key in zip(tiles, ("accuracy", "sensitivity", "specificity")):
        assert tile["value"] == f"{point[key]['value']:.3f}"
        assert tile["interval"] == f"95% interval {point[key]['low']:.3f}-{point[key]['high']:.3f}"
        assert tile["study"] == f"original study {model_card.ORIGINAL_STUDY[key]:.3f}"
    words = model_card.plain_headline(card)
    (tn, fp), (fn, tp) = point["confusion_matrix"]
    assert f"flags about {round(100 * tp / (tp + fn))};" in words
    assert f"clears about {round(100 * tn / (tn + fp))} and wrongly flags about {100 - round(100 * tn / (tn + fp))}" in words
    assert "shift-aware" in words and f"{point['n']:,} training films" in words
    guard = card["guard"]["validation"]
    assert words.endswith(f"refuse about {100 * guard['cross_fitted_rejection_rate']:.1f}% of such films "
                          f"(cross-fitted, on {guard['n']:,} of the training films), which get "
                          "no reading and are left to the clinician.")
    assert model_card.guard_refusal_words({key: value for key, value in card.items() if key != "guard"}) == ""
    # the headline's films were scored by block-fold models, not by the shipped (random-fold) members
    assert card["cross_validation"]["chosen_on"] == "block" and card["ensemble"]["scheme"] == "random"
    assert "each scored by the block-fold model that never saw that child (the shipped ensemble's members are " \
           "the random-fold models" in words
    assert "about 66 of 100 on new patients' films" in words
    other = {key: value for key, value in card.items() if key != model_card.PREDECESSOR_KEY}  # another model
    assert "model shipped before" not in model_card.plain_headline(other) + model_card.study_comparison_note(other)
    rows = card["cross_validation"]["transfer"][card["cross_validation"]["threshold_rule"]]
    sentence = model_card.headline_sentence(card)
    assert (f"the same rule kept sensitivity {sum(r['sensitivity'] for r in rows) / len(rows):.3f} on average "
            f"(worst block {min(r['sensitivity'] for r in rows):.3f})") in sentence
    assert "chosen on these same films" in sentence and "ensemble member that never saw" not in sentence
    without = {key: value for key, value in card.items() if key != "cross_validation"}
    assert model_card.headline_tiles(without) == [] and model_card.plain_headline(without) is None


# -- the bacterial-or-viral section -------------------------------------------------------------

@pytest.fixture(scope="module")
def subtype_card(tiny_subtype_store) -> dict:
    return store.read_card("tiny", tiny_subtype_store)


def test_subtype_validation_rebuilds_the_out_of_fold_films_from_labels_and_logits(subtype_card):
    import numpy as np

    section = model_card.subtype_section(subtype_card)
    labels, probs = model_card.subtype_predictions(section)
    assert labels == section["validation"]["label"]
    logits = np.array(section["validation"]["logit"])
    np.testing.assert_allclose(probs, 1 / (1 + np.exp(-logits / section["temperature"])))
    validation = model_card.subtype_validation(section)
    called = np.array(probs) >= section["threshold"]
    truth = np.array(labels, bool)
    matrix = [[int((~truth & ~called).sum()), int((~truth & called).sum())],
              [int((truth & ~called).sum()), int((truth & called).sum())]]
    assert validation["confusion_matrix"] == matrix == section["validation"]["figures"]["confusion_matrix"]
    assert validation["sensitivity"] == pytest.approx(called[truth].mean())
    assert validation["specificity"] == pytest.approx((~called[~truth]).mean())
    # the main model's explorer code path takes it, exactly from the films' probabilities
    at = metrics.validation_at_threshold(validation, 0.7)
    assert at["basis"] == "predictions"
    assert at["sensitivity"] == pytest.approx((np.array(probs)[truth] >= 0.7).mean())
    sweep = metrics.threshold_sweep(validation)
    assert sweep["sensitivity"][0] == 1.0 and sweep["specificity"][-1] == 1.0


def test_subtype_rows_sentence_and_caption(subtype_card):
    section = model_card.subtype_section(subtype_card)
    rows = model_card.subtype_figure_rows(section)
    assert [r["Figure"] for r in rows] == ["Accuracy", "Sensitivity (bacterial)", "Specificity (viral)",
                                           "ROC AUC", "ECE"]
    assert rows[3]["Value (95% interval)"] == model_card.format_interval(section["validation"]["figures"]["roc_auc"])
    assert "(" in rows[0]["Value (95% interval)"]  # an interval, not a bare value
    sentence = model_card.subtype_sentence(section)
    assert section["validation"]["kind"] in sentence and "40 pneumonia films" in sentence
    assert f"{section['validation']['positives']} bacterial" in sentence
    chosen = metrics.validation_at_threshold(model_card.subtype_validation(section), 0.5)
    (tn, fp), (fn, tp) = chosen["confusion_matrix"]
    caption = model_card.threshold_caption(chosen, "bacterial", "viral")
    assert f"{tp} bacterial films read bacterial, {fn} read viral; {tn} viral films read viral, {fp} read bacterial" \
        in caption
    tiles = model_card.threshold_metrics(chosen, chosen, model_card.SUBTYPE_RATES)
    assert [t.label for t in tiles][:2] == ["Sensitivity (bacterial)", "Specificity (viral)"]


def test_a_card_without_a_subtype_section_has_none():
    card = json.loads(CARD.read_text())
    assert model_card.subtype_section({k: v for k, v in card.items() if k != "subtype"}) is None
    assert model_card.subtype_section({"subtype": {}}) is None


def test_the_review_band_outcomes_count_the_cards_out_of_fold_films_in_the_band():
    card = json.loads(CARD.read_text())
    predictions = card["validation"]["predictions"]
    threshold = card["threshold"]
    inside = [label for label, p in zip(predictions["labels"], predictions["p_pneumonia"]) if threshold <= p < 0.5]
    had, films, kind = model_card.review_band_outcomes(card, threshold)
    assert (had, films) == (sum(inside), len(inside)) and films > 0
    assert kind == card["validation"]["kind"] and kind.startswith("out-of-fold")
    assert model_card.review_band_outcomes(card, 0.5) is None  # no band at 50%
    assert model_card.band_outcomes({"validation": {}}, 0.2, 0.5) is None


def test_nearby_outcomes_count_the_band_that_holds_the_probability_cut_at_the_verdict_boundaries():
    card = {"validation": {"kind": "out-of-fold (block folds)",
                           "predictions": {"labels": [0, 1, 1, 0, 1, 1, 1, 0],
                                           "p_pneumonia": [0.0, 0.25, 0.29, 0.3, 0.36, 0.95, 1.0, 0.45]}}}
    threshold = 0.34
    assert model_card.nearby_outcomes(card, 0.21, threshold) == (2, 2, 0.2, 0.3, "out-of-fold (block folds)")
    assert model_card.nearby_outcomes(card, 0.3, threshold)[:4] == (0, 1, 0.3, 0.34)  # cut at the threshold
    assert model_card.nearby_outcomes(card, 0.35, threshold)[:4] == (1, 1, 0.34, 0.4)
    assert model_card.nearby_outcomes(card, 0.45, 0.42)[:4] == (0, 1, 0.42, 0.5)  # and at 50%
    assert model_card.nearby_outcomes(card, 1.0, threshold)[:2] == (2, 2)  # the top band holds 100%
    assert model_card.nearby_outcomes(card, 0.0, threshold)[:2] == (0, 1)
    words = model_card.nearby_words(card, 0.21, threshold)
    assert words == (
        "Measured out-of-fold (block folds): of the 2 training films scored between 20% and 30% (each by a fold "
        "model that never saw the child), 2 (100%) had pneumonia, in a set where 62% had it (where fewer of the "
        "children filmed have pneumonia, that share is lower). The model calls such a film normal, yet most of "
        "these had pneumonia: its probabilities run low here, so read this film as uncertain.")
    assert "of the 1 training film scored between 30% and 34% (" in model_card.nearby_words(card, 0.3, threshold)
    assert "between 30% and 34.0%" in model_card.nearby_words(card, 0.3, 0.3398)
    assert "read this film as uncertain" not in model_card.nearby_words(card, 0.3, threshold)  # 0 of 1
    assert "read this film as uncertain" not in model_card.nearby_words(card, 0.35, threshold)  # not called normal
    assert model_card.nearby_words(card, 0.55, threshold) is None  # no film scored there
    assert model_card.nearby_words({}, 0.5, threshold) is None
