import numpy as np
import pytest
from scipy.stats import spearmanr

from pneumo import store
from pneumo.inference import explain
from pneumo.io import read_film
from pneumo.modeling import models
from pneumo.preprocess import to_display, to_model_input


@pytest.fixture(scope="module")
def film_input(tiny_model, pneumonia_film):
    return to_model_input(read_film(pneumonia_film), tiny_model.input_size)


@pytest.fixture(scope="module")
def explainer(tiny_model):
    return explain.Explainer(tiny_model)


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_maps_have_the_input_size_and_unit_range(explainer, film_input, method):
    heat = explainer.heatmap(film_input, method)
    assert heat.shape == film_input.shape[:2] and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_maps_print_and_warn_nothing(explainer, film_input, method, capfd):
    import warnings

    explainer.heatmap(film_input, method)  # first call builds the graph
    capfd.readouterr()
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        explainer.heatmaps(np.stack([film_input] * 2), method)
    assert [str(w.message) for w in caught] == []
    assert capfd.readouterr().out == ""  # no progress bar on a server's stdout


def test_scorecam_scores_like_stock_tf_keras_vis(tiny_model, explainer, film_input):
    from tf_keras_vis.scorecam import Scorecam
    from tf_keras_vis.utils.scores import CategoricalScore

    stock = Scorecam(explain.two_class_view(tiny_model.model), clone=True)  # stock predict()
    expected = stock(CategoricalScore(1), film_input[None], penultimate_layer=tiny_model.explain_layer,
                     seek_penultimate_conv_layer=False, max_N=explain.SCORECAM_MAX_CHANNELS,
                     batch_size=explain.SCORECAM_MAX_CHANNELS)
    expected = np.clip(np.nan_to_num(np.asarray(expected, np.float32)[0]), 0, 1)
    np.testing.assert_allclose(explainer.heatmap(film_input, "scorecam"), expected, atol=1e-5)


def test_scorecam_predicts_through_a_view_not_a_patched_model(tiny_model, explainer, film_input):
    view = explainer._methods["scorecam"].model
    assert "predict" not in vars(view)  # a method of the view's class, never an instance's attribute
    assert "predict" not in vars(tiny_model.model)
    batch = np.stack([film_input, film_input[::-1]])
    stock = np.asarray(explain.two_class_view(tiny_model.model)(batch, training=False))
    np.testing.assert_array_equal(view.predict([batch], batch_size=2), stock)
    np.testing.assert_allclose(view.predict([batch], batch_size=1), stock, atol=1e-6)  # batch by batch


def test_batch_maps_match_single_maps(explainer, film_input):
    batch = explainer.heatmaps(np.stack([film_input, film_input[::-1]]), "gradcam")
    np.testing.assert_allclose(batch[0], explainer.heatmap(film_input, "gradcam"), atol=1e-4)


@pytest.mark.parametrize("method", ["gradcam", "saliency"])
def test_maps_change_when_weights_are_randomised(tiny_model, tmp_path, tiny_card, film_input, method):
    import keras

    keras.utils.set_random_seed(99)
    store.save(models.build("cnn", 64, width=8), tiny_card, tmp_path / "random")
    randomised = explain.Explainer(store.load("random", tmp_path))
    original = explain.Explainer(tiny_model).heatmap(film_input, method)
    other = randomised.heatmap(film_input, method)
    assert np.abs(original - other).mean() > 0.02
    assert spearmanr(original.ravel(), other.ravel()).statistic < 0.95


def test_unknown_method_and_target_are_refused(tiny_model, explainer, film_input):
    with pytest.raises(ValueError, match="unknown method"):
        explainer.heatmap(film_input, "lime")
    with pytest.raises(ValueError, match="unknown class 'COVID' for the pneumonia map"):
        explainer.heatmap(film_input, towards="COVID")
    with pytest.raises(ValueError, match="unknown explanation target"):
        explain.Explainer(tiny_model, target="lungs")
    with pytest.raises(ValueError, match="needs the loaded subtype model"):
        explain.Explainer(tiny_model, target="subtype")


def test_overlay_keeps_the_film_where_the_map_is_cold(tiny_model, pneumonia_film):
    gray = to_display(read_film(pneumonia_film), 64)
    heat = np.zeros((64, 64), np.float32)
    heat[20:40, 20:40] = 1.0
    painted = explain.overlay(gray, heat, opacity=0.6)
    assert painted.shape == (64, 64, 3) and painted.dtype == np.uint8
    np.testing.assert_array_equal(painted[0, 0], [gray[0, 0]] * 3)
    red = np.array(explain.COLOR_STOPS[-1][1])
    expected = np.round(0.4 * gray[30, 30] + 0.6 * red)
    np.testing.assert_array_equal(painted[30, 30], expected)
    with pytest.raises(ValueError):
        explain.overlay(gray, heat[:10], 0.5)


def test_colour_scale_runs_from_cold_to_warm():
    ends = explain.colorize(np.array([[0.0, 1.0]]))
    assert tuple(ends[0, 0]) == explain.COLOR_STOPS[0][1]
    assert tuple(ends[0, 1]) == explain.COLOR_STOPS[-1][1]


def test_border_share():
    heat = np.zeros((100, 100))
    heat[40:60, 40:60] = 1
    assert explain.border_share(heat) == 0.0
    heat[0:5, :] = 1
    assert explain.border_share(heat) == pytest.approx(500 / 900)
    assert explain.border_share(np.zeros((10, 10))) == 0.0


def test_cell_paint_gives_the_border_share_of_an_enlarged_grid():
    from scipy.ndimage import zoom

    grid = np.random.default_rng(0).random((6, 6)) ** 3
    grid[0, 0] = 5.0  # a hot corner cell
    band, whole = explain.cell_paint(6, 96)
    painted = zoom(grid, 16, order=1)  # how tf-keras-vis enlarges a Grad-CAM grid
    assert painted.shape == (96, 96)
    assert explain.border_share(painted) == pytest.approx((grid * band).sum() / (grid * whole).sum(), rel=1e-9)
    assert band[0, 0] / whole[0, 0] > 0.95  # a corner cell paints almost only the band
    assert band[2:4, 2:4].max() == pytest.approx(0.0, abs=1e-9)  # the centre cells paint none of it


def test_border_share_floor_weighs_only_the_warm_part():
    heat = np.full((100, 100), 0.3)  # a diffuse low tail everywhere, border included
    heat[40:60, 40:60] = 1.0
    assert explain.border_share(heat) > 0.3
    assert explain.border_share(heat, floor=explain.WARM_FLOOR) == 0.0


@pytest.mark.parametrize("spot, warned", [
    ((slice(0, 10), slice(0, 10)), True),      # a corner marker
    ((slice(2, 10), slice(30, 70)), True),     # text along the top edge
    ((slice(35, 65), slice(20, 50)), False),   # a lung field
    ((slice(5, 45), slice(20, 50)), False),    # an apex that reaches into the band
])
def test_attention_warning_follows_the_warm_spot(spot, warned):
    heat = np.full((100, 100), 0.2)
    heat[spot] = 1.0
    message = explain.attention_warning(heat)
    assert (message == explain.ATTENTION_WARNING) if warned else message is None


def test_attention_warning_is_quiet_on_an_empty_map():
    assert explain.attention_warning(np.zeros((64, 64))) is None


# -- the subtype target: which regions made the film look bacterial -----------------------------

@pytest.fixture(scope="module")
def subtype_model(tiny_subtype_model):
    return store.load_subtype(tiny_subtype_model)


@pytest.fixture(scope="module")
def subtype_explainer(tiny_subtype_model, subtype_model):
    return explain.Explainer(tiny_subtype_model, target="subtype", subtype=subtype_model)


def test_subtype_maps_explain_the_subtype_network_not_the_main_one(tiny_subtype_model, subtype_model,
                                                                  subtype_explainer, film_input):
    """The subtype map is Grad-CAM of P(bacterial) computed by hand, and differs from the pneumonia map."""
    import tensorflow as tf

    assert subtype_explainer.classes == ("viral", "bacterial")
    net = subtype_model.model
    layer = net.get_layer(subtype_explainer.layer)
    features_and_logit = tf.keras.Model(net.inputs, [layer.output, net.get_layer("temperature").output])
    with tf.GradientTape() as tape:
        features, scaled = features_and_logit([film_input[None]], training=False)
        score = scaled[:, 0]  # ReplaceToLinear: the logit, not the sigmoid
    grads = tape.gradient(score, features)
    cam = tf.nn.relu(tf.reduce_sum(features * tf.reduce_mean(grads, axis=(1, 2), keepdims=True), axis=-1))[0]
    from scipy.ndimage import zoom

    cam = zoom(cam.numpy(), film_input.shape[0] / cam.shape[0], order=1)
    cam = (cam - cam.min()) / max(cam.max() - cam.min(), 1e-12)
    heat = subtype_explainer.heatmap(film_input, "gradcam")
    assert np.corrcoef(heat.ravel(), cam.ravel())[0, 1] > 0.95
    pneumonia_map = explain.Explainer(tiny_subtype_model).heatmap(film_input, "gradcam")
    assert np.abs(heat - pneumonia_map).mean() > 0.02  # another network (seeded differently)


@pytest.mark.parametrize("method", list(explain.METHODS))
def test_subtype_maps_have_the_input_size_for_every_method(subtype_explainer, film_input, method):
    heat = subtype_explainer.heatmap(film_input, method)
    assert heat.shape == film_input.shape[:2] and heat.dtype == np.float32
    assert 0.0 <= heat.min() and heat.max() <= 1.0


def test_subtype_map_classes(tiny_subtype_model, subtype_model, subtype_explainer, film_input):
    towards_bacterial = subtype_explainer.heatmap(film_input, "gradcam")
    np.testing.assert_allclose(subtype_explainer.heatmap(film_input, "gradcam", "bacterial"), towards_bacterial)
    towards_viral = subtype_explainer.heatmap(film_input, "gradcam", "viral")
    assert np.abs(towards_bacterial - towards_viral).mean() > 0.01  # evidence against is another map
    with pytest.raises(ValueError, match="unknown class 'PNEUMONIA' for the subtype map"):
        subtype_explainer.heatmap(film_input, towards="PNEUMONIA")
    with pytest.raises(ValueError, match="only it takes one"):
        explain.Explainer(tiny_subtype_model, target="pneumonia", subtype=subtype_model)
