"""Measuring explanations: curves, baselines, randomisation, film choice, the CLI and the stored file."""

import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest

from pneumo import data, explain, faithfulness
from pneumo.cli import main

SIZE = 32


def region_score(rows: slice, cols: slice):
    """A toy model: P(pneumonia) is the mean brightness of one square region, in [0, 1]."""

    def score(batch: np.ndarray) -> np.ndarray:
        return batch[:, rows, cols, 0].mean(axis=(1, 2)) / 255.0

    return score


@pytest.mark.parametrize("curve, area", [
    ([1.0, 0.0], 0.5),
    ([0.7] * 25, 0.7),
    (np.linspace(1, 0, 25), 0.5),
    ([0.0, 1.0, 1.0, 1.0, 1.0], 0.875),
])
def test_trapezoid_auc_of_known_curves(curve, area):
    assert faithfulness.trapezoid_auc(curve) == pytest.approx(area)


def test_trapezoid_auc_needs_two_points():
    with pytest.raises(ValueError, match="at least two points"):
        faithfulness.trapezoid_auc([0.5])


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
    auc = {name: {kind: faithfulness.trapezoid_auc(c) for kind, c in pair.items()}
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


def test_rank_correlations_of_a_map_with_itself_are_one_and_constant_maps_undefined():
    maps = np.random.default_rng(0).random((3, 16, 16))
    np.testing.assert_allclose(faithfulness.rank_correlations(maps, maps), 1.0)
    flat = np.zeros((1, 16, 16))
    assert math.isnan(faithfulness.rank_correlations(maps[:1], flat)[0])


def test_randomisation_is_averaged_over_random_models_and_keeps_each_ones_figure():
    rng = np.random.default_rng(1)
    own = rng.random((4, 16, 16))
    same, opposite = own.copy(), 1.0 - own  # rho +1 and -1 on every film
    unrelated = rng.random((4, 16, 16))
    unrelated[0] = 0.5  # a constant map: undefined for that film, left out of the means
    random_maps = [{"m": same}, {"m": opposite}, {"m": unrelated}]
    films = faithfulness.per_film_figures({"m": own}, random_maps, {"m": {
        "deletion": np.zeros((0, 3)), "insertion": np.zeros((0, 3))}})["m"]
    by_model = films["randomization_spearman_by_model"]
    assert by_model.shape == (3, 4) and math.isnan(by_model[2, 0])
    np.testing.assert_allclose(by_model[:2], [[1.0] * 4, [-1.0] * 4])
    np.testing.assert_allclose(films["randomization_spearman"][0], 0.0)  # (1 - 1) / 2: NaN left out
    figures = faithfulness.summarize_method(films, {b: films for b in faithfulness.BASELINES})
    assert figures["randomization_spearman_by_model"][:2] == pytest.approx([1.0, -1.0])
    assert figures["randomization_spearman_max_model"] == pytest.approx(1.0)
    assert figures["randomization_spearman"] == pytest.approx(films["randomization_spearman"].mean())
    assert figures["randomization_undefined"] == 0
    assert faithfulness._round(by_model)[2][0] is None  # JSON-ready, nested


def test_randomized_model_keeps_the_architecture_and_changes_the_weights(tiny_model):
    random = faithfulness.randomized_model(tiny_model, seed=3)
    again = faithfulness.randomized_model(tiny_model, seed=3)
    assert [w.shape for w in random.model.weights] == [w.shape for w in tiny_model.model.weights]
    kernels = [(a, b, c) for a, b, c in zip(tiny_model.model.weights, random.model.weights,
                                            again.model.weights) if "kernel" in a.path]
    assert kernels and any(not np.allclose(a.numpy(), b.numpy()) for a, b, _ in kernels)
    assert all(np.array_equal(b.numpy(), c.numpy()) for _, b, c in kernels)  # seeded


def test_randomized_model_refuses_a_card_that_does_not_match(tiny_model):
    from pneumo.store import LoadedModel

    wrong = {**tiny_model.card, "training": {"config": {"width": 16}}}
    with pytest.raises(ValueError, match="does not match"):
        faithfulness.randomized_model(LoadedModel("tiny", tiny_model.path, tiny_model.model, wrong))


def _records(n_normal: int, n_pneumonia: int) -> list[data.FilmRecord]:
    return ([data.FilmRecord(Path(f"n{i}.jpeg"), 0, "train", f"n{i}", None) for i in range(n_normal)]
            + [data.FilmRecord(Path(f"p{i}.jpeg"), 1, "train", f"p{i}", None) for i in range(n_pneumonia)])


@pytest.mark.parametrize("limit, expected", [(20, (5, 15)), (4, (1, 3)), (2, (1, 1)), (500, (25, 75))])
def test_stratified_sample_keeps_class_shares(limit, expected):
    records = _records(25, 75)
    chosen = faithfulness.stratified_sample(records, limit, seed=1)
    counts = (sum(r.label == 0 for r in chosen), sum(r.label == 1 for r in chosen))
    assert counts == expected and len(set(chosen)) == len(chosen)
    assert chosen == faithfulness.stratified_sample(records, limit, seed=1)
    assert chosen != faithfulness.stratified_sample(records, limit, seed=2) or limit >= 100


def _dummy_kaggle_root(root: Path) -> Path:
    """Empty files with Kermany names: enough for finding and splitting, never decoded."""
    for split, per_class in (("train", 10), ("val", 2), ("test", 3)):
        for name in data.CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                stem = f"person{i}_bacteria_{i}" if name == "PNEUMONIA" else f"IM-{i:04d}-0001"
                (folder / f"{stem}_{split}.jpeg").write_bytes(b"")
    return root


def test_select_records_finds_the_models_validation_films(tmp_path, tiny_card):
    from pneumo.train import validation_names_sha256

    root = _dummy_kaggle_root(tmp_path / "chest_xray")
    records = data.find_films(root, splits=("train", "val"))
    train, validation = data.split_by_patient(records, 0.25, 7)
    card = {**tiny_card, "training": {"split": {"val_fraction": 0.25, "seed": 7,
                                                "validation_films_sha256": validation_names_sha256(validation)}}}
    chosen, films = faithfulness.select_records(root, card, None)
    assert films == "validation"
    assert {r.path.name for r in chosen} == {r.path.name for r in validation}
    assert not {r.path.name for r in chosen} & {r.path.name for r in train}
    inside, films = faithfulness.select_records(root / "train", card, "validation")
    assert films == "validation" and {r.path.name for r in inside} <= {r.path.name for r in validation}
    assert all(r.split == "train" for r in inside)


def test_select_records_without_a_recorded_split(tmp_path, tiny_card):
    root = _dummy_kaggle_root(tmp_path / "chest_xray")
    chosen, films = faithfulness.select_records(root, tiny_card, None)
    assert films == "test" and {r.split for r in chosen} == {"test"}
    with pytest.raises(ValueError, match="does not hold this model's training data"):
        faithfulness.select_records(root, tiny_card, "validation")
    assert faithfulness.select_records(root, tiny_card, "all")[1] == "all"


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


def test_canvas_note_warns_only_when_the_canvas_scores_like_the_films():
    def result(film_p, canvas_p):
        return {"settings": {"canvas": "blur", "film_p_pneumonia": film_p, "canvas_p_pneumonia": canvas_p}}

    assert "compare with --canvas mean or --canvas normal." in faithfulness.canvas_note(result(0.95, 0.97))
    assert faithfulness.canvas_note(result(0.95, 0.10)) is None


def test_check_targets():
    result = {"gradcam": {"deletion_beats_random": 0.95, "insertion_beats_random": 0.5,
                          "randomization_spearman": 0.1, "border_share_median": 0.2}}
    checks = faithfulness.check_targets(result)
    assert checks["gradcam.deletion_beats_random"]["met"] is True
    assert checks["gradcam.insertion_beats_random"]["met"] is False
    assert checks["gradcam.randomization_spearman_max"]["met"] is True
    assert checks["gradcam.border_share_median_max"] == {"value": 0.2, "target": 0.15, "met": False}
    assert checks["gradcam.deletion_auc_below_gaussian"]["met"] is None  # no figures to compare


def test_gradcam_must_beat_the_centred_gaussian_on_deletion():
    result = {"gradcam": {"deletion_auc": 0.40}, "baselines": {"gaussian": {"deletion_auc": 0.38}}}
    check = faithfulness.check_targets(result)["gradcam.deletion_auc_below_gaussian"]
    assert check == {"value": 0.40, "target": 0.38, "met": False}  # a centre prior, not evidence
    result["baselines"]["gaussian"]["deletion_auc"] = 0.42
    assert faithfulness.check_targets(result)["gradcam.deletion_auc_below_gaussian"]["met"] is True
    row = faithfulness.target_rows(faithfulness.check_targets(result))[-1]
    assert row == {"target": "Grad-CAM: deletion AUC below the centred Gaussian's 0.42", "measured": 0.4,
                   "met": "yes"}


def test_target_rows_and_reading_guide_say_what_was_measured():
    result = {"gradcam": {"deletion_beats_random": 0.95, "insertion_beats_random": 0.5,
                          "randomization_spearman": 0.1, "border_share_median": 0.2,
                          "randomization_spearman_by_model": [0.31, -0.12, None]},
              "n_films": 7, "settings": {"canvas": "normal", "randomization_models": 3}}
    rows = faithfulness.target_rows(faithfulness.check_targets(result))
    assert rows[0] == {"target": "Grad-CAM: deletion beats random on at least 0.9", "measured": 0.95,
                       "met": "yes"}
    assert [r["met"] for r in rows] == ["yes", "no", "yes", "no", "n/a"]
    guide = faithfulness.reading_guide(result)
    assert "7 validation films" in guide and "normal canvas" in guide
    assert "averaged over 3 random models (Grad-CAM: -0.12 to 0.31" in guide


def test_save_and_read_explanations(tmp_path):
    result = {"model_sha256": "abc", "gradcam": {"deletion_auc": 0.3}}
    path = faithfulness.save_explanations(result, tmp_path)
    assert path == tmp_path / faithfulness.EXPLANATIONS_FILE
    assert faithfulness.read_explanations(tmp_path, "abc") == result
    assert faithfulness.read_explanations(tmp_path, "another model") is None
    assert faithfulness.read_explanations(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="model_sha256"):
        faithfulness.save_explanations({"gradcam": {}}, tmp_path)


@pytest.fixture(scope="module")
def tiny_split(tmp_path_factory, train_dir) -> Path:
    """A split folder of 3 real films per class, copied to a temporary folder."""
    root = tmp_path_factory.mktemp("explain") / "test"
    for name in data.CLASSES:
        (root / name).mkdir(parents=True)
        for film in sorted((train_dir / name).iterdir())[:3]:
            shutil.copy(film, root / name / film.name)
    return root


@pytest.mark.parametrize("canvas", faithfulness.CANVASES)
def test_cli_writes_every_method_with_its_figures(tiny_store, tiny_split, tmp_path, monkeypatch, canvas):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    out = tmp_path / "explain.json"
    assert main(["explain-eval", "--data", str(tiny_split), "--json", str(out), "--steps", "4",
                 "--canvas", canvas, "--random-models", "2"]) == 0
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
])
def test_cli_mistakes_are_one_sentence(tiny_store, tiny_split, monkeypatch, capsys, argv, message):
    monkeypatch.setenv("PNEUMO_MODEL_STORE", str(tiny_store))
    argv = [a.replace("{split}", str(tiny_split)) for a in argv]
    assert main(["explain-eval", *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1
