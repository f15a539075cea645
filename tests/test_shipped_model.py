"""The model that ships in model_store: intact, documented, and its figures reproducible."""

import json

import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pneumo import data, folds, store
from pneumo.inference.predict import Classifier
from pneumo.modeling import models
from pneumo.render import model_card
from pneumo.stats import calibration

MAX_MODEL_MB = 30


@pytest.fixture(scope="module")
def shipped():
    return store.load(store.default_model_name(store.REPO_STORE), store.REPO_STORE)


def test_default_model_verifies_and_is_small(shipped):
    assert store.verify(shipped.name, store.REPO_STORE) == shipped.card["sha256"]
    assert (shipped.path / store.MODEL_FILE).stat().st_size < MAX_MODEL_MB * 1e6


def test_card_documents_what_inference_needs(shipped):
    card = shipped.card
    assert card["classes"] == ["NORMAL", "PNEUMONIA"]
    assert shipped.model.input_shape == (None, card["input"]["size"], card["input"]["size"], 1)
    assert shipped.model.get_layer(card["explain_layer"]) is not None
    assert 0 < card["threshold"] < 1 and card["temperature"] > 0
    assert card["validation"]["sensitivity"] >= card["operating_point"]["min_sensitivity"]
    assert card["intended_use"] and len(card["limits"]) >= 3
    assert any("calibrate-site" in limit for limit in card["limits"])
    profile = store.read_profile(shipped.name, store.REPO_STORE)
    assert profile["n_films"] == len(card["out_of_fold"]["films"]) == card["training"]["n_train"]


def test_the_shipped_predictor_is_the_ensemble_the_card_names(shipped):
    members = shipped.card["ensemble"]
    assert members["members"] == len(members["member_sha256"]) == 5
    for index, expected in enumerate(members["member_tower_sha256"]):
        assert models.tower_sha256(models.member_tower_weights(shipped.model, index)) == expected


def test_out_of_fold_figures_reproduce_from_the_stored_per_film_logits(shipped):
    card = shipped.card
    stored, cv = card["out_of_fold"], card["cross_validation"]
    labels = np.array([int(name.split("/")[1] == "PNEUMONIA") for name in stored["films"]])
    assert len(labels) == 5216
    for scheme, point in cv["at_operating_point"].items():
        probs = calibration.sigmoid(np.array(stored[f"{scheme}_logit"]) / card["temperature"])
        assert roc_auc_score(labels, probs) == pytest.approx(point["figures"]["roc_auc"]["value"], abs=1e-4)
        caught = (probs[labels == 1] >= card["threshold"]).mean()
        assert caught == pytest.approx(point["figures"]["sensitivity"]["value"], abs=1e-3)
    headline = model_card.headline(card)
    assert headline["scheme"] == cv["chosen_on"] == card["validation"]["kind"].split("(")[1].split()[0]
    assert card["validation"]["roc_auc"] == pytest.approx(headline["figures"]["roc_auc"]["value"], abs=1e-4)


def test_no_out_of_fold_film_was_seen_by_the_member_that_scored_it(shipped, train_dir):
    records, assigned = folds.held_out_records(shipped.card, train_dir.parent)
    stored = shipped.card["out_of_fold"]
    assert [f"{r.split}/{r.class_name}/{r.path.name}" for r in records] == stored["films"]
    for scheme in folds.SCHEMES:
        scheme_folds = np.array(stored[f"{scheme}_fold"])
        for fold in range(shipped.card["cross_validation"]["k"]):
            held = {r.patient for r, f in zip(records, scheme_folds) if f == fold}
            seen = {r.patient for r, f in zip(records, scheme_folds) if f != fold}
            assert held and held.isdisjoint(seen), (scheme, fold)


@pytest.fixture(scope="module")
def validation(shipped, train_dir) -> list[data.FilmRecord]:
    """The films the first member never saw, re-derived from the card (and checked by hash)."""
    return folds.training_records(shipped.card, train_dir.parent)[1]


@pytest.fixture(scope="module")
def validation_normal_inputs(shipped, validation):
    """Model inputs of every validation normal film, decoded once for the module."""
    normals = [r for r in validation if r.label == 0]
    return data.load_inputs(normals, shipped.input_size).astype("float32")


@pytest.mark.slow
@pytest.mark.parametrize("sigma", [0.01, 0.015])
def test_a_soft_normal_film_is_not_read_as_pneumonia(shipped, validation_normal_inputs, sigma):
    """A child who moved or a low-resolution scan gives a soft film: softness is not pneumonia.

    Every validation normal film is blurred with a Gaussian of ``sigma`` of the side
    (1% is 2 px at 192 px, 20 px on a 2,000-px film); the share read as pneumonia may
    rise by 3 points at most.
    """
    from pneumo.evaluation.faithfulness import blur_canvas

    inputs = validation_normal_inputs
    classifier = Classifier(shipped, guard=None)
    sharp = (classifier.predict_inputs(inputs, 64) >= classifier.threshold).mean()
    soft_inputs = blur_canvas(inputs, sigma * shipped.input_size)
    soft = (classifier.predict_inputs(soft_inputs, 64) >= classifier.threshold).mean()
    assert len(inputs) > 200
    assert soft <= sharp + 0.03, f"{soft:.3f} of soft normal films read as pneumonia, {sharp:.3f} when sharp"


@pytest.fixture(scope="module")
def stored_explanations(shipped) -> dict:
    """explain-eval's stored figures, or a failure when they are missing or for another model file."""
    from pneumo.evaluation import faithfulness_results

    result = faithfulness_results.read_explanations(shipped.path, shipped.card["sha256"])
    assert result is not None, "explanations.json is missing or was measured on another model file"
    return result


def test_stored_explanation_figures_are_for_the_shipped_model_file(stored_explanations):
    assert stored_explanations["films"] == "validation" and stored_explanations["n_films"] >= 100


def test_stored_explanation_figures_meet_every_target(stored_explanations):
    """explain-eval's figures for this model file, saved beside it, meet every product target."""
    from pneumo.evaluation import faithfulness_results

    checks = faithfulness_results.check_targets(stored_explanations)
    assert len(checks) == 5
    assert all(check["met"] for check in checks.values()), checks


@pytest.mark.slow
def test_gradcam_keeps_its_weight_off_the_border_of_validation_films(shipped, validation):
    """Other films than explain-eval's: the median Grad-CAM border share stays under the target."""
    import numpy as np

    from pneumo import folds
    from pneumo.evaluation.faithfulness_results import TARGETS
    from pneumo.inference import explain

    sample = folds.stratified_sample(validation, 80, seed=1)
    maps = explain.Explainer(shipped).heatmaps(data.load_inputs(sample, shipped.input_size).astype("float32"))
    shares = [explain.border_share(heatmap) for heatmap in maps]
    assert np.median(shares) < TARGETS["gradcam"]["border_share_median_max"]
