"""The model that ships in model_store: intact, documented, and its figures reproducible."""

import json

import pytest
from sklearn.metrics import roc_auc_score

from pneumo import data, store
from pneumo.predict import STATUS_OK, Classifier
from pneumo.train import validation_names_sha256

MAX_MODEL_MB = 20


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
    profile = store.read_profile(shipped.name, store.REPO_STORE)
    assert profile["n_films"] == card["training"]["n_train"] + card["training"]["n_val"]


@pytest.mark.slow
def test_recorded_validation_auc_reproduces_from_the_validation_films(shipped, train_dir):
    split = shipped.card["training"]["split"]
    records = data.find_films(train_dir.parent, splits=("train", "val"))
    _, val = data.split_by_patient(records, split["val_fraction"], split["seed"])
    assert validation_names_sha256(val) == split["validation_films_sha256"]
    results = list(Classifier(shipped, guard=None).assess_many((str(r.path), r.path) for r in val))
    assert all(r.status == STATUS_OK for r in results)
    auc = roc_auc_score(data.labels_of(val), [r.p_pneumonia for r in results])
    assert auc == pytest.approx(shipped.card["validation"]["roc_auc"], abs=0.005)
    json.dumps(shipped.card)  # the card is plain JSON
