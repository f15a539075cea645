import numpy as np
import pytest

from pneumo.modeling import models


def test_compact_cnn_takes_films_in_0_255_and_returns_a_probability():
    model = models.build("cnn", 64, width=8)
    assert model.input_shape == (None, 64, 64, 1)
    assert model.output_shape == (None, 1)
    assert model.layers[1].name == "scale"  # scaling lives inside the model
    out = np.asarray(model(np.full((2, 64, 64, 1), 255.0, np.float32)))
    assert out.shape == (2, 1) and np.all((out > 0) & (out < 1))
    assert model.get_layer(models.explain_layer("cnn")).output.shape[1:3] == (4, 4)


def test_temperature_divides_the_logit():
    import keras

    cold = models.build("cnn", 64, width=8)
    hot = models.build("cnn", 64, width=8, temperature=4.0)
    hot.set_weights(cold.get_weights())
    x = np.random.default_rng(0).uniform(0, 255, (3, 64, 64, 1)).astype(np.float32)
    logits = np.asarray(keras.Model(cold.input, cold.get_layer("logit").output)(x))[:, 0]
    expected = 1 / (1 + np.exp(-logits / 4.0))
    np.testing.assert_allclose(np.asarray(hot(x))[:, 0], expected, rtol=1e-5)


@pytest.mark.parametrize("bad", [dict(architecture="vgg"), dict(temperature=0.0)])
def test_build_refuses_bad_arguments(bad):
    with pytest.raises(ValueError):
        models.build(**{"architecture": "cnn", **bad})


@pytest.mark.slow
@pytest.mark.parametrize("architecture", ["densenet121", "resnet50", "mobilenetv2", "efficientnetb0"])
def test_backbones_build_from_scratch(architecture):
    model = models.build(architecture, 96)
    assert model.output_shape == (None, 1)
    assert model.get_layer(models.explain_layer(architecture)).output.shape[-1] > 100
    assert np.isfinite(np.asarray(model(np.zeros((1, 96, 96, 1), np.float32)))).all()


def test_an_ensemble_is_its_members_mean_logit_through_the_temperature(tmp_path):
    import keras
    import numpy as np

    from pneumo.stats import calibration

    members = []
    for seed in (1, 2, 3):
        keras.utils.set_random_seed(seed)
        members.append(models.build("cnn", 32, width=8))
    ensemble = models.build_ensemble(members, temperature=1.7, width=8)
    x = np.random.default_rng(0).integers(0, 256, (5, 32, 32, 1)).astype("float32")
    logits = [np.asarray(keras.Model(m.input, m.get_layer("logit").output)(x))[:, 0] for m in members]
    expected = calibration.sigmoid(np.mean(logits, axis=0) / 1.7)
    np.testing.assert_allclose(np.asarray(ensemble(x))[:, 0], expected, atol=1e-6)
    # The names the guard, the explainer and the border penalty look up are a single model's.
    assert ensemble.get_layer("last_conv").output.shape[-1] == 3 * 64
    assert ensemble.get_layer("pool").output.shape[-1] == 3 * 64
    for index, member in enumerate(members):
        assert models.tower_sha256(models.member_tower_weights(ensemble, index)) == \
            models.tower_sha256(models.member_tower_weights(member))
    ensemble.save(tmp_path / "e.keras")
    again = keras.saving.load_model(tmp_path / "e.keras", safe_mode=True)
    np.testing.assert_allclose(np.asarray(again(x)), np.asarray(ensemble(x)), atol=1e-6)


def test_an_ensemble_needs_members_of_one_size():
    with pytest.raises(ValueError, match="at least one member"):
        models.build_ensemble([])
    with pytest.raises(ValueError, match="different input sizes"):
        models.build_ensemble([models.build("cnn", 32, width=8), models.build("cnn", 48, width=8)], width=8)
