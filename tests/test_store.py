import json
import shutil

import numpy as np
import pytest

from pneumo import store
from pneumo.modeling import models


def test_round_trip_keeps_weights_and_records_the_checksum(tiny_store, tiny_model):
    card = store.read_card("tiny", tiny_store)
    assert card["sha256"] == store.file_sha256(tiny_store / "tiny" / store.MODEL_FILE)
    assert card["name"] == "tiny"
    assert store.list_models(tiny_store) == ["tiny"]
    assert store.default_model_name(tiny_store) == "tiny"
    assert tiny_model.input_size == 64 and tiny_model.threshold == 0.5
    x = np.random.default_rng(0).uniform(0, 255, (2, 64, 64, 1)).astype(np.float32)
    reloaded = store.load("tiny", tiny_store)
    np.testing.assert_allclose(np.asarray(reloaded.model(x)), np.asarray(tiny_model.model(x)))


def test_a_changed_model_file_is_refused(tiny_store, tampered_copy):
    copy = tampered_copy(tiny_store, "tiny", store.MODEL_FILE)
    with pytest.raises(store.ModelStoreError, match="integrity check"):
        store.load("tiny", copy)


def test_a_damaged_card_is_one_clear_error(tiny_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    (copy / "tiny" / store.CARD_FILE).write_text("{not json")
    with pytest.raises(store.ModelStoreError, match="card"):
        store.load("tiny", copy)


def test_unknown_and_missing_models_name_the_choices(tiny_store, tmp_path):
    with pytest.raises(store.ModelStoreError, match=r"Unknown model 'nope'; choose from \['tiny'\]"):
        store.load("nope", tiny_store)
    with pytest.raises(store.ModelStoreError, match="holds no model"):
        store.default_model_name(tmp_path)


def test_several_models_without_default_ask_for_a_name(tiny_store, tmp_path):
    copy = tmp_path / "store"
    shutil.copytree(tiny_store, copy)
    shutil.copytree(copy / "tiny", copy / "other")
    (copy / store.DEFAULT_FILE).unlink()
    with pytest.raises(store.ModelStoreError, match="several models"):
        store.default_model_name(copy)


def test_safe_mode_refuses_code_in_a_model_file(tmp_path, tiny_card):
    import keras

    inputs = keras.Input((64, 64, 1))
    outputs = keras.layers.Lambda(lambda x: x[:, :1, 0, 0] * 0 + 0.5)(inputs)
    store.save(keras.Model(inputs, outputs), tiny_card, tmp_path / "lambda")
    with pytest.raises(store.ModelStoreError, match="cannot be loaded"):
        store.load("lambda", tmp_path)


def test_profile_is_read_when_present(tmp_path, tiny_card):
    store.save(models.build("cnn", 64, width=8), tiny_card, tmp_path / "m", profile={"n_films": 3})
    assert store.read_profile("m", tmp_path) == {"n_films": 3}
    assert json.loads((tmp_path / "m" / store.CARD_FILE).read_text())["name"] == "m"
