"""Measuring explanations: curves, canvases, baselines, the random-weights model, checks up front, the CLI.

The figures made of what is measured are tested in test_faithfulness_results.py, their words in
test_faithfulness_words.py, the choice of films in test_folds.py.
"""

import json
import random
import shutil
from pathlib import Path

import numpy as np
import pytest

from pneumo import data
from pneumo.cli import main
from pneumo.evaluation import faithfulness
from pneumo.evaluation.faithfulness_results import trapezoid_auc
from pneumo.inference import explain

SIZE = 32


def region_score(rows: slice, cols: slice):
    """A toy model: P(pneumonia) is the mean brightness of one square region, in [0, 1]."""

    def score(batch: np.ndarray) -> np.ndarray:
        return batch[:, rows, cols, 0].mean(axis=(1, 2)) / 255.0

    return score


def test_pixel_ranks_put_the_most_salient_first_and_break_ties_by_seed():
    heat = np.zeros((4, 4))
    heat[1, 2] = 1.0
    heat[3, 0] = 0.5
    ranks = faithfulness.pixel_ranks(heat, np.random.default_rng(0))
    assert ranks[1 * 4 + 2] == 0 and ranks[3 * 4 + 0] == 1
    assert sorted(ranks) == list(range(16))
    same = faithfulness.pixel_ranks(heat, np.random.default_rng(0))
    other = faithfulness.pixel_ranks(heat, np.random.default_rng(1))
    np.testing.assert_array_equal(ranks, same)
    assert not np.array_equal(ranks, other)  # the 14 tied zeros come in another order


def test_perturbed_films_change_a_growing_share_of_pixels():
    film = np.full((SIZE, SIZE, 1), 200.0, np.float32)
    canvas = np.zeros_like(film)
    ranks = faithfulness.pixel_ranks(np.random.default_rng(0).random((SIZE, SIZE)),
                                     np.random.default_rng(0))
    deletion, insertion = faithfulness.perturbed_films(film, canvas, ranks, steps=4)
    assert deletion.shape == insertion.shape == (3, SIZE, SIZE, 1)
    removed = (deletion == 0).mean(axis=(1, 2, 3))
    np.testing.assert_allclose(removed, [0.25, 0.5, 0.75])
    np.testing.assert_array_equal(insertion == 200.0, deletion == 0)


def test_a_map_of_the_pixels_the_model_uses_beats_random_and_its_opposite():
    film = np.full((SIZE, SIZE, 1), 255.0, np.float32)
    canvas = np.zeros_like(film)
    rows, cols = slice(4, 12), slice(18, 28)
    score = region_score(rows, cols)
    true_map = np.zeros((SIZE, SIZE), np.float32)
    true_map[rows, cols] = 1.0
    rng = np.random.default_rng(0)
    maps = {"true": true_map, "inverse": 1.0 - true_map,
            "random": faithfulness.random_map(SIZE, 8, np.random.default_rng(3))}
    curves = faithfulness.film_curves(score, film, canvas, maps, steps=16, rng=rng)
    auc = {name: {kind: trapezoid_auc(c) for kind, c in pair.items()}
           for name, pair in curves.items()}
    assert curves["true"]["deletion"][0] == pytest.approx(1.0)
    assert curves["true"]["deletion"][-1] == pytest.approx(0.0)
    assert auc["true"]["deletion"] < auc["random"]["deletion"] < auc["inverse"]["deletion"]
    assert auc["true"]["insertion"] > auc["random"]["insertion"] > auc["inverse"]["insertion"]
    assert auc["true"]["deletion"] < 0.1 and auc["true"]["insertion"] > 0.9


def test_random_map_is_seeded_and_drawn_on_the_feature_grid():
    first = faithfulness.random_map(64, 4, np.random.default_rng(5))
    again = faithfulness.random_map(64, 4, np.random.default_rng(5))
    np.testing.assert_array_equal(first, again)
    assert first.shape == (64, 64) and 0 <= first.min() and first.max() <= 1
    assert len(np.unique(first)) == 16
    assert np.ptp(first[:16, :16]) == 0  # one value per 16-px cell


def test_gaussian_map_is_centred():
    heat = faithfulness.gaussian_map(64, 0.25)
    assert heat.max() == pytest.approx(1.0, abs=0.01)
    np.testing.assert_allclose(heat, heat[::-1, ::-1], atol=1e-6)
    assert explain.border_share(heat) < explain.border_share(np.ones((64, 64)))


def test_randomized_model_keeps_the_architecture_and_changes_the_weights(tiny_model):
    random = faithfulness.randomized_model(tiny_model, seed=3)
    again = faithfulness.randomized_model(tiny_model, seed=3)
    assert [w.shape for w in random.model.weights] == [w.shape for w in tiny_model.model.weights]
    kernels = [(a, b, c) for a, b, c in zip(tiny_model.model.weights, random.model.weights,
                                            again.model.weights) if "kernel" in a.path]
    assert kernels and any(not np.allclose(a.numpy(), b.numpy()) for a, b, _ in kernels)
    assert all(np.array_equal(b.numpy(), c.numpy()) for _, b, c in kernels)  # seeded


def test_randomized_model_gives_the_weights_of_a_build_after_reseeding_without_reseeding(tmp_path):
    """The same random ensemble as ``keras.utils.set_random_seed(seed)`` then building, before and after
    the global generators are disturbed, and NumPy's global state is left as it was."""
    import keras

    from pneumo.modeling import models
    from pneumo.store import LoadedModel

    def ensemble():
        return models.build_ensemble([models.build("cnn", 64, width=8) for _ in range(2)], 1.0, width=8)

    card = {"architecture": "cnn", "input": {"size": 64, "channels": 1}, "temperature": 1.0,
            "explain_layer": "last_conv", "ensemble": {"members": 2}, "training": {"config": {"width": 8}}}
    keras.utils.set_random_seed(4)
    expected = ensemble()  # how the random model was drawn when it reseeded every generator
    loaded = LoadedModel("pair", tmp_path, ensemble(), card)
    random.seed(11)
    np.random.seed(12)
    state = np.random.get_state()
    drawn = faithfulness.randomized_model(loaded, seed=4)
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    assert [w.path for w in drawn.model.weights] == [w.path for w in expected.weights]
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(drawn.model.weights, expected.weights))
    np.random.seed(99)
    again = faithfulness.randomized_model(loaded, seed=4)
    assert all(np.array_equal(a.numpy(), b.numpy()) for a, b in zip(drawn.model.weights, again.model.weights))


def test_randomized_model_refuses_a_card_that_does_not_match(tiny_model):
    from pneumo.store import LoadedModel

    wrong = {**tiny_model.card, "training": {"config": {"width": 16}}}
    with pytest.raises(ValueError, match="does not match"):
        faithfulness.randomized_model(LoadedModel("tiny", tiny_model.path, tiny_model.model, wrong))


def test_canvases_take_the_normal_films_of_the_set():
    rng = np.random.default_rng(0)
    inputs = rng.uniform(0, 255, (5, 8, 8, 1)).astype(np.float32)
    labels = np.array([0, 1, 0, 1, 1])
    positives = np.flatnonzero(labels == 1)
    mean = faithfulness.make_canvases(inputs, labels, positives, faithfulness.FaithfulnessConfig(canvas="mean"))
    assert mean.shape == (3, 8, 8, 1)
    np.testing.assert_allclose(mean[2], (inputs[0] + inputs[2]) / 2, rtol=1e-6)
    normal = faithfulness.make_canvases(inputs, labels, positives, faithfulness.FaithfulnessConfig(canvas="normal"))
    assert all(any(np.array_equal(c, inputs[i]) for i in (0, 2)) for c in normal)
    blur = faithfulness.make_canvases(inputs, labels, positives, faithfulness.FaithfulnessConfig(canvas="blur"))
    assert np.ptp(blur[0]) < np.ptp(inputs[1])  # smoother than the film it blurs
    for canvas in ("mean", "normal"):
        with pytest.raises(ValueError, match="needs normal films"):
            faithfulness.make_canvases(inputs[positives], labels[positives], np.arange(3),
                                       faithfulness.FaithfulnessConfig(canvas=canvas))


@pytest.mark.parametrize("canvas", ["mean", "normal"])
def test_a_canvas_of_normal_films_is_refused_up_front_without_normal_films(canvas):
    config = faithfulness.FaithfulnessConfig(canvas=canvas)
    with pytest.raises(ValueError, match=f"the '{canvas}' canvas needs normal films") as caught:
        faithfulness.check_can_measure([1, 1, 1], config)
    assert "all 3 are pneumonia films" in str(caught.value) and str(caught.value).count(". ") == 0
    faithfulness.check_can_measure([1, 0, 1], config)
    faithfulness.check_can_measure([1, 1, 1], faithfulness.FaithfulnessConfig(canvas="blur"))
    with pytest.raises(ValueError, match="no films to measure"):
        faithfulness.check_can_measure([], config)


def test_measure_refuses_before_it_explains_a_film(tiny_model, monkeypatch):
    def explained(*args, **kwargs):
        raise AssertionError("maps were computed before the request was checked")

    monkeypatch.setattr(faithfulness, "compute_maps", explained)
    monkeypatch.setattr(faithfulness, "randomized_model", explained)
    inputs = np.zeros((2, tiny_model.input_size, tiny_model.input_size, 1), np.uint8)
    with pytest.raises(ValueError, match="needs normal films"):
        faithfulness.measure(tiny_model, inputs, np.array([1, 1]), faithfulness.FaithfulnessConfig())


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory, train_dir) -> Path:
    """A split folder of 3 real films per class, copied to a temporary folder."""
    root = tmp_path_factory.mktemp("explain") / "test"
    for name in data.CLASSES:
        (root / name).mkdir(parents=True)
        for film in sorted((train_dir / name).iterdir())[:3]:
            shutil.copy(film, root / name / film.name)
    return root


@pytest.fixture(scope="module")
def pneumonia_split(tiny_split) -> Path:
    """A split folder of pneumonia films only: no canvas of normal films can be made from it."""
    root = tiny_split.parent / "pneumonia_only"
    shutil.copytree(tiny_split / "PNEUMONIA", root / "PNEUMONIA")
    return root


@pytest.mark.parametrize("canvas", faithfulness.CANVASES)
def test_cli_writes_every_method_with_its_figures(tiny_store, tiny_split, tmp_path, monkeypatch, capsys, canvas):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    out = tmp_path / "explain.json"
    assert main(["explain-eval", "--data", str(tiny_split), "--json", str(out), "--steps", "4",
                 "--canvas", canvas, "--random-models", "2"]) == 0
    maps = 6 * len(explain.METHODS) * 3 + 3 * (len(explain.METHODS) + 2)  # 3 models' maps, then 3 films' curves
    summary = capsys.readouterr().err.splitlines()[-1]
    assert summary.startswith(f"explain-eval: done: {maps} maps in ")
    assert summary.endswith(f"; 6 films (3 pneumonia) explained by {len(explain.METHODS)} methods; wrote {out}")
    result = json.loads(out.read_text())
    assert result["n_films"] == 6 and result["films"] == "all" and result["n_pneumonia"] == 3
    for method in explain.METHODS:
        figures = result[method]
        for key in ("deletion_auc", "insertion_auc", "deletion_beats_random", "insertion_beats_random",
                    "randomization_spearman", "border_share_median", "n_films"):
            assert key in figures, (method, key)
        assert 0 <= figures["deletion_auc"] <= 1 and 0 <= figures["border_share_median"] <= 1
        assert figures["n_films"] == 6 and figures["n_curve_films"] == 3
    assert set(result["baselines"]) == {"random", "gaussian"}
    assert len(result["curves"]["fraction"]) == 5 and result["settings"]["canvas"] == canvas
    assert len(result["gradcam"]["randomization_spearman_by_model"]) == 2
    assert len(result["per_film"]["gradcam"]["randomization_spearman_by_model"]) == 2


@pytest.mark.parametrize("argv, message", [
    (["--data", "/no/such/folder"], "No such data folder"),
    (["--data", "{split}", "--split", "validation"], "does not hold this model's training data"),
    (["--data", "{split}", "--save"], "validation films only"),
    (["--data", "{split}", "--limit", "0"], "--limit must be at least 1"),
    (["--data", "{split}", "--random-models", "0"], "--random-models must be at least 1"),
    (["--data", "{pneumonia}"], "the 'mean' canvas needs normal films"),
])
def test_cli_mistakes_are_one_sentence(tiny_store, tiny_split, pneumonia_split, monkeypatch, capsys, argv,
                                       message):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    argv = [a.replace("{split}", str(tiny_split)).replace("{pneumonia}", str(pneumonia_split)) for a in argv]
    assert main(["explain-eval", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
