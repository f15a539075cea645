"""Cross-validated training on a small set of real films: out-of-fold honesty, resuming, the ensemble."""

import json

import keras
import numpy as np
import pytest
from sklearn.metrics import roc_auc_score

from pneumo import data, folds, store
from pneumo.modeling import models
from pneumo.stats import calibration
from pneumo.training import crossval
from pneumo.training.train import TrainConfig

pytestmark = pytest.mark.slow
K = 2


@pytest.fixture(scope="module")
def small_data(train_dir, tmp_path_factory):
    """About 60 real films, spread over the patient numbers, linked into a Kaggle-layout folder."""
    root = tmp_path_factory.mktemp("films")
    for class_name in data.CLASSES:
        (root / "train" / class_name).mkdir(parents=True)
        films = sorted((train_dir / class_name).iterdir())
        for path in films[:: len(films) // 30][:30]:
            (root / "train" / class_name / path.name).symlink_to(path)
    return root


@pytest.fixture(scope="module")
def config(small_data, tmp_path_factory):
    out = tmp_path_factory.mktemp("store") / "ens"
    return TrainConfig(data=str(small_data), out=str(out), input_size=32, width=8, epochs=1,
                       border_penalty=0.05, border_allowance=0.15)


@pytest.fixture(scope="module")
def run_dir(config, tmp_path_factory):
    run = tmp_path_factory.mktemp("run")
    for scheme in folds.SCHEMES:
        crossval.train_folds(config, scheme, K, run, log=lambda _: None)
    return run


@pytest.fixture(scope="module")
def records(config):
    return data.find_films(config.data, splits=("train", "val"))


@pytest.mark.parametrize("scheme", folds.SCHEMES)
def test_each_out_of_fold_logit_comes_from_the_model_that_never_saw_the_patient(run_dir, records, scheme):
    assigned = folds.assign_folds(records, scheme, K)
    logits = crossval.out_of_fold_logits(run_dir, scheme, K, len(records))
    inputs = data.load_inputs(records, 32).astype(np.float32)
    for fold in range(K):
        held = assigned == fold
        assert {r.patient for r, h in zip(records, held) if h}.isdisjoint(
            {r.patient for r, h in zip(records, held) if not h})
        model = keras.saving.load_model(run_dir / scheme / f"fold{fold}" / "model.keras", safe_mode=True)
        again = np.asarray(keras.Model(model.input, model.get_layer("logit").output)(inputs[held]))[:, 0]
        np.testing.assert_allclose(logits[held], again, atol=1e-5)
        record = json.loads((run_dir / scheme / f"fold{fold}" / crossval.FOLD_DONE).read_text())
        assert record["n_train"] == int((~held).sum()) and record["n_held_out"] == int(held.sum())


def test_a_rerun_trains_only_the_unfinished_fold(run_dir, config):
    kept = run_dir / "random" / "fold0" / "model.keras"
    before = kept.stat().st_mtime_ns
    (run_dir / "random" / "fold1" / crossval.FOLD_DONE).unlink()  # as if fold 1 was interrupted
    lines = []
    crossval.train_folds(config, "random", K, run_dir, log=lines.append)
    assert kept.stat().st_mtime_ns == before
    assert any("random fold 2/2 done" in line for line in lines)
    assert not any("random fold 1/2" in line for line in lines)
    assert crossval.finished_folds(run_dir, "random", K) == [0, 1]


def test_another_sensitivity_target_reuses_the_finished_folds(run_dir, config):
    other = TrainConfig(**{**config.__dict__, "min_sensitivity": 0.8})
    assert other.min_sensitivity != config.min_sensitivity
    lines = []
    crossval.train_folds(other, "block", K, run_dir, log=lines.append)
    assert lines == [f"block folds: all {K} already trained in {run_dir / 'block'}"]


def test_a_run_folder_of_another_recipe_is_refused(run_dir, config):
    other = TrainConfig(**{**config.__dict__, "epochs": 3})
    with pytest.raises(ValueError, match="holds folds of another run .different recipe"):
        crossval.train_folds(other, "random", K, run_dir)


@pytest.fixture(scope="module")
def ensemble(run_dir, config):
    folder = crossval.assemble(config, run_dir, K, ship="random", resamples=50, log=lambda _: None)
    return store.load(folder.name, folder.parent)


def test_the_ensemble_is_the_mean_of_its_members_logits_through_the_temperature(ensemble, run_dir):
    members = [keras.saving.load_model(run_dir / "random" / f"fold{f}" / "model.keras", safe_mode=True)
               for f in range(K)]
    x = np.random.default_rng(0).integers(0, 256, (6, 32, 32, 1)).astype(np.float32)
    mean_logit = np.mean([np.asarray(keras.Model(m.input, m.get_layer("logit").output)(x))[:, 0]
                          for m in members], axis=0)
    expected = calibration.sigmoid(mean_logit / ensemble.card["temperature"])
    np.testing.assert_allclose(np.asarray(ensemble.model(x))[:, 0], expected, atol=1e-5)
    card = ensemble.card["ensemble"]
    assert card["member_sha256"] == [store.file_sha256(run_dir / "random" / f"fold{f}" / "model.keras")
                                     for f in range(K)]
    assert card["member_tower_sha256"] == [models.tower_sha256(models.member_tower_weights(ensemble.model, i))
                                           for i in range(K)]


def test_the_cards_out_of_fold_figures_reproduce_from_its_stored_logits(ensemble, config):
    card = ensemble.card
    stored = card["out_of_fold"]
    chosen = card["cross_validation"]["chosen_on"]
    labels = [int(name.split("/")[1] == "PNEUMONIA") for name in stored["films"]]
    probs = calibration.sigmoid(np.array(stored[f"{chosen}_logit"]) / card["temperature"])
    assert roc_auc_score(labels, probs) == pytest.approx(card["validation"]["roc_auc"], abs=1e-4)
    assert card["validation"]["threshold"] == card["threshold"]
    records, assigned = folds.held_out_records(card, config.data)
    assert np.array_equal(assigned, stored["random_fold"])
    assert set(card["cross_validation"]["schemes"]) == {"random", "block"}
    assert card["guard"]["fitted_on"]["n_val"] == int((assigned == 0).sum())
