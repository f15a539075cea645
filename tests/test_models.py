import numpy as np
import pytest

from pneumo import models


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
