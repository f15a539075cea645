"""The figures made of the curves and maps: areas, rank correlations, summaries, targets, the stored file."""

import json
import math
from pathlib import Path

import numpy as np
import pytest

from pneumo.evaluation.faithfulness import CANVASES
from pneumo.evaluation.faithfulness_results import (
    BASELINES,
    EXPLANATIONS_FILE,
    _round,
    check_targets,
    per_film_figures,
    rank_correlations,
    read_explanations,
    save_explanations,
    summarize_method,
    trapezoid_auc,
)


@pytest.mark.parametrize("curve, area", [
    ([1.0, 0.0], 0.5),
    ([0.7] * 25, 0.7),
    (np.linspace(1, 0, 25), 0.5),
    ([0.0, 1.0, 1.0, 1.0, 1.0], 0.875),
])
def test_trapezoid_auc_of_known_curves(curve, area):
    assert trapezoid_auc(curve) == pytest.approx(area)


def test_trapezoid_auc_needs_two_points():
    with pytest.raises(ValueError, match="at least two points"):
        trapezoid_auc([0.5])


def test_trapezoid_auc_is_the_trapezoid_sum_written_out():
    curve = np.random.default_rng(0).random(25)
    by_hand = sum((curve[i] + curve[i + 1]) / 2 for i in range(24)) / 24
    assert trapezoid_auc(curve) == pytest.approx(by_hand, rel=1e-12)


def test_rank_correlations_of_a_map_with_itself_are_one_and_constant_maps_undefined():
    maps = np.random.default_rng(0).random((3, 16, 16))
    np.testing.assert_allclose(rank_correlations(maps, maps), 1.0)
    flat = np.zeros((1, 16, 16))
    assert math.isnan(rank_correlations(maps[:1], flat)[0])


def test_randomisation_is_averaged_over_random_models_and_keeps_each_ones_figure():
    rng = np.random.default_rng(1)
    own = rng.random((4, 16, 16))
    same, opposite = own.copy(), 1.0 - own  # rho +1 and -1 on every film
    unrelated = rng.random((4, 16, 16))
    unrelated[0] = 0.5  # a constant map: undefined for that film, left out of the means
    random_maps = [{"m": same}, {"m": opposite}, {"m": unrelated}]
    films = per_film_figures({"m": own}, random_maps, {"m": {
        "deletion": np.zeros((0, 3)), "insertion": np.zeros((0, 3))}})["m"]
    by_model = films["randomization_spearman_by_model"]
    assert by_model.shape == (3, 4) and math.isnan(by_model[2, 0])
    np.testing.assert_allclose(by_model[:2], [[1.0] * 4, [-1.0] * 4])
    np.testing.assert_allclose(films["randomization_spearman"][0], 0.0)  # (1 - 1) / 2: NaN left out
    figures = summarize_method(films, {b: films for b in BASELINES})
    assert figures["randomization_spearman_by_model"][:2] == pytest.approx([1.0, -1.0])
    assert figures["randomization_spearman_max_model"] == pytest.approx(1.0)
    assert figures["randomization_spearman"] == pytest.approx(films["randomization_spearman"].mean())
    assert figures["randomization_undefined"] == 0
    assert _round(by_model)[2][0] is None  # JSON-ready, nested


def test_check_targets():
    result = {"gradcam": {"deletion_beats_random": 0.95, "insertion_beats_random": 0.5,
                          "randomization_spearman": 0.1, "border_share_median": 0.2}}
    checks = check_targets(result)
    assert checks["gradcam.deletion_beats_random"]["met"] is True
    assert checks["gradcam.insertion_beats_random"]["met"] is False
    assert checks["gradcam.randomization_spearman_max"]["met"] is True
    assert checks["gradcam.border_share_median_max"] == {"value": 0.2, "target": 0.15, "met": False}
    assert checks["gradcam.deletion_auc_below_gaussian"]["met"] is None  # no figures to compare


def test_gradcam_must_beat_the_centred_gaussian_on_deletion():
    result = {"gradcam": {"deletion_auc": 0.40}, "baselines": {"gaussian": {"deletion_auc": 0.38}}}
    check = check_targets(result)["gradcam.deletion_auc_below_gaussian"]
    assert check == {"value": 0.40, "target": 0.38, "met": False}  # a centre prior, not evidence
    result["baselines"]["gaussian"]["deletion_auc"] = 0.42
    assert check_targets(result)["gradcam.deletion_auc_below_gaussian"]["met"] is True


def test_save_and_read_explanations(tmp_path):
    result = {"model_sha256": "abc", "gradcam": {"deletion_auc": 0.3}}
    path = save_explanations(result, tmp_path)
    assert path == tmp_path / EXPLANATIONS_FILE
    assert read_explanations(tmp_path, "abc") == result
    assert read_explanations(tmp_path, "another model") is None
    assert read_explanations(tmp_path / "nowhere") is None
    with pytest.raises(ValueError, match="model_sha256"):
        save_explanations({"gradcam": {}}, tmp_path)


def test_the_shipped_models_stored_figures_are_read():
    """model_store's explanations.json, as the model page reads it: for its own model file."""
    folder = Path(__file__).resolve().parents[1] / "model_store" / "cnn160x5"
    card = json.loads((folder / "card.json").read_text())
    stored = read_explanations(folder, card["sha256"])
    assert stored is not None and stored["films"] == "validation"
    assert set(BASELINES) <= set(stored["baselines"]) and stored["settings"]["canvas"] in CANVASES
    checks = check_targets(stored)
    assert len(checks) == 5 and all(check["met"] for check in checks.values()), checks
