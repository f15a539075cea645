import json

import numpy as np
import pytest

from pneumo import data, store
from pneumo.predict import Classifier
from pneumo.train import TrainConfig, train


@pytest.mark.slow
def test_smoke_training_writes_a_complete_verifiable_model(train_dir, tmp_path):
    config = TrainConfig(data=str(train_dir.parent), out=str(tmp_path / "store" / "smoke"),
                         input_size=64, width=8, epochs=1, limit=96, batch_size=16,
                         checkpoint_dir=str(tmp_path / "runs"), max_minutes=10)
    folder = train(config, log=lambda message: None)
    card = json.loads((folder / store.CARD_FILE).read_text())
    for key in ("name", "architecture", "input", "classes", "threshold", "temperature",
                "preprocessing", "validation", "training", "intended_use", "limits", "sha256"):
        assert key in card, key
    for key in ("n", "accuracy", "sensitivity", "specificity", "roc_auc", "ece", "confusion_matrix"):
        assert key in card["validation"], key
    for key in ("command", "seed", "epochs_run", "seconds", "data_manifest_sha256", "split", "libraries"):
        assert key in card["training"], key
    assert card["validation"]["sensitivity"] >= 0.95  # the operating point's promise
    assert card["input"] == {"size": 64, "channels": 1, "range": [0, 255], "shape": [64, 64, 1]}
    profile = store.read_profile("smoke", folder.parent)
    assert profile["n_films"] == card["training"]["n_train"] + card["training"]["n_val"]

    loaded = store.load("smoke", folder.parent)
    assert store.verify("smoke", folder.parent) == card["sha256"]
    # The recorded validation figures come back from the saved model and the recorded split.
    records = data.find_films(train_dir.parent, splits=("train", "val"))
    _, val = data.split_by_patient(records, card["training"]["split"]["val_fraction"], card["training"]["seed"])
    assert len(val) > card["validation"]["n"]  # limit=96 thinned validation too
    assert card["temperature"] > 0 and np.isfinite(card["threshold"])
    probs = [a.p_pneumonia for a in Classifier(loaded).assess_many((str(r.path), r.path) for r in val[:8])]
    assert all(0.0 <= p <= 1.0 for p in probs)
