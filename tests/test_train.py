import json

import numpy as np
import pytest

from pneumo import data, store
from pneumo.inference.predict import Classifier
from pneumo.training.train import TrainConfig, train


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


@pytest.mark.slow
def test_training_continues_from_a_stored_model_validated_on_the_same_films(train_dir, tmp_path):
    import dataclasses

    log = lambda message: None  # noqa: E731
    base = TrainConfig(data=str(train_dir.parent), out=str(tmp_path / "store" / "parent"),
                       input_size=64, width=8, epochs=1, limit=96, batch_size=16,
                       checkpoint_dir=str(tmp_path / "runs"), max_minutes=10)
    parent = store.load("parent", train(base, log=log).parent)
    # With a learning rate of 0 the trainable weights stay exactly the parent's.
    child_config = dataclasses.replace(base, out=str(tmp_path / "store" / "child"), learning_rate=0.0,
                                       start_from=str(parent.path))
    child = store.load("child", train(child_config, log=log).parent)
    assert child.card["training"]["start_from"] == {"name": "parent", "created": parent.card["created"],
                                                    "sha256": parent.card["sha256"]}
    for mine, theirs in zip(child.model.trainable_weights, parent.model.trainable_weights, strict=True):
        assert np.array_equal(mine.numpy(), theirs.numpy()), mine.path
    # Films this run validates on must not be the parent's training films.
    with pytest.raises(ValueError, match="validated on other films"):
        train(dataclasses.replace(child_config, seed=1), log=log)
    with pytest.raises(ValueError, match="same shape"):
        train(dataclasses.replace(child_config, width=16), log=log)


def _films_with_evidence_in_centre_and_border(n: int, size: int, rng):
    """Pneumonia films carry the same bright mark twice: in the centre and in the border band."""
    x = rng.normal(90, 20, (n, size, size, 1)).clip(0, 255).astype("float32")
    y = (np.arange(n) % 2).astype("float32")
    centre, edge = slice(size // 2 - 6, size // 2 + 6), slice(0, 6)
    x[y == 1, centre, centre] += 90
    x[y == 1, edge, centre] += 90
    return x, y


@pytest.mark.parametrize("weight", [0.0, 2.0])
def test_border_penalty_adds_its_loss_only_when_weighted(weight):
    import keras

    from pneumo.modeling import models
    from pneumo.training.train import BorderPenalized

    keras.utils.set_random_seed(0)
    model = models.build("cnn", 64, width=8)
    fitted = BorderPenalized(model, weight)
    x, _ = _films_with_evidence_in_centre_and_border(4, 64, np.random.default_rng(0))
    probs = fitted(x, training=True)
    assert len(fitted.losses) == (1 if weight else 0)
    if weight:
        assert 0.0 < float(fitted.losses[0]) <= weight
    assert np.allclose(fitted(x), model(x))  # predictions are the model's own
    assert probs.shape == (4, 1)


def test_border_share_is_each_films_gradcam_border_share(tiny_model):
    from pneumo.inference import explain
    from pneumo.training.train import BorderPenalized

    x, _ = _films_with_evidence_in_centre_and_border(6, 64, np.random.default_rng(3))
    maps = explain.Explainer(tiny_model).heatmaps(x, "gradcam")
    painted = np.array([explain.border_share(m) for m in maps])
    assert painted.std() > 0.01  # films that differ, so the comparison means something
    fitted = BorderPenalized(tiny_model.model, 1.0)
    for film, expected in zip(x, painted):
        fitted.border_share.reset_state()
        fitted(film[None])
        assert float(fitted.border_share.result()) == pytest.approx(expected, abs=1e-4)
    # Only the part of a film's share above the allowance is penalised.
    allowance = float(np.median(painted))
    hinged = BorderPenalized(tiny_model.model, 2.0, allowance=allowance)
    penalties = []
    for film in x:  # one call each: spatial dropout makes every training call differ
        hinged.border_share.reset_state()
        hinged(film[None], training=True)
        share, penalties = float(hinged.border_share.result()), penalties + [float(hinged.losses[0])]
        assert penalties[-1] == pytest.approx(2.0 * max(share - allowance, 0.0), abs=1e-5)
    assert min(penalties) == 0.0 < max(penalties)  # films on both sides of the allowance


@pytest.mark.slow
def test_border_penalty_moves_the_evidence_off_the_border():
    import keras

    from pneumo.modeling import models
    from pneumo.training.train import BorderPenalized

    x, y = _films_with_evidence_in_centre_and_border(256, 64, np.random.default_rng(0))
    shares, aucs = {}, {}
    for weight in (0.0, 2.0):
        keras.utils.set_random_seed(0)
        fitted = BorderPenalized(models.build("cnn", 64, width=8), weight)
        fitted.compile(optimizer=keras.optimizers.Adam(2e-3), loss="binary_crossentropy",
                       metrics=[keras.metrics.AUC(name="auc")])
        # Figures of the last epoch's training batches: 8 epochs are too few for batch
        # normalisation's running statistics to settle, which held-out films would need.
        history = fitted.fit(x, y, batch_size=16, epochs=8, verbose=0)
        shares[weight] = history.history["border_share"][-1]
        aucs[weight] = history.history["auc"][-1]
    assert min(aucs.values()) > 0.95  # both read the mark
    assert shares[2.0] < 0.5 * shares[0.0]  # the penalised one reads it in the centre
