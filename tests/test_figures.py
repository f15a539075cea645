"""pneumo.figures: plotly figures from plain data, in the shared class colours."""

import numpy as np
import pytest

from pneumo import explain, figures
from pneumo.present import CLASS_COLOURS


def test_probability_bars_show_both_classes_threshold_and_interval():
    fig = figures.probability_bars(0.8, 0.6, (0.7, 0.85))
    bars = fig.data[0]
    assert list(bars.y) == ["NORMAL", "PNEUMONIA"]
    assert list(bars.x) == pytest.approx([0.2, 0.8])
    assert list(bars.marker.color) == [CLASS_COLOURS["NORMAL"], CLASS_COLOURS["PNEUMONIA"]]
    intervals = {trace.y[0]: tuple(trace.x) for trace in fig.data[1:]}
    assert intervals["PNEUMONIA"] == pytest.approx((0.7, 0.85))
    assert intervals["NORMAL"] == pytest.approx((0.15, 0.3))
    assert sorted(shape.x0 for shape in fig.layout.shapes) == pytest.approx([0.4, 0.6])


def test_colour_scale_strip_is_the_overlay_scale():
    strip = figures.colour_scale_strip(width=5, height=2)
    assert strip.shape == (2, 5, 3) and strip.dtype == np.uint8
    assert np.array_equal(strip[0], explain.colorize(np.linspace(0, 1, 5)))
    assert tuple(strip[0, 0]) == explain.COLOR_STOPS[0][1]
    assert tuple(strip[0, -1]) == explain.COLOR_STOPS[-1][1]


def test_card_figures_build_from_curves():
    roc = {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1], "threshold": [1, 0.5, 0]}
    assert len(figures.roc_figure(roc, 0.9, {"op": (0.1, 0.8)}).data) == 3
    assert len(figures.pr_figure({"precision": [1, 0.8], "recall": [0, 1]}, 0.9, 0.5).data) == 2
    assert len(figures.reliability_figure({"predicted": [0.2], "observed": [0.3], "count": [4]}).data) == 2
    heat = figures.confusion_matrix_figure([[5, 1], [2, 7]]).data[0]
    assert np.asarray(heat.z) == pytest.approx(np.array([[5 / 6, 1 / 6], [2 / 9, 7 / 9]]))


def test_faithfulness_curves_figure_draws_each_map_with_curves():
    curves = {"fraction": [0, 0.5, 1], "gradcam": {"deletion": [0.9, 0.2, 0.1], "insertion": [0.1, 0.8, 0.9]},
              "random": {"deletion": [0.9, 0.6, 0.1], "insertion": [0.1, 0.3, 0.9]}}
    names = {"gradcam": "Grad-CAM", "scorecam": "Score-CAM", "random": "Random map"}
    fig = figures.faithfulness_curves_figure(curves, names, "deletion")
    assert [t.name for t in fig.data] == ["Grad-CAM", "Random map"]  # no curves, no trace
    assert list(fig.data[0].y) == [0.9, 0.2, 0.1]
    assert list(figures.faithfulness_curves_figure(curves, names, "insertion").data[1].y) == [0.1, 0.3, 0.9]
    with pytest.raises(ValueError, match="kind"):
        figures.faithfulness_curves_figure(curves, names, "both")


def test_profile_figures_build_from_a_profile():
    profile = {
        "films": {"train": {"NORMAL": 3, "PNEUMONIA": 5}, "val": {"NORMAL": 1, "PNEUMONIA": 2}},
        "patients": {"NORMAL": 4, "PNEUMONIA": 6},
        "films_per_patient": {"NORMAL": {"1": 4}, "PNEUMONIA": {"1": 5, "2": 1}},
        "subtypes": {"bacteria": 4, "virus": 3},
        "image_sizes": {"width": [100, 120, 90], "height": [100, 100, 80],
                        "class": ["NORMAL", "PNEUMONIA", "NORMAL"]},
        "intensity": {"bins": [0, 0.5, 1], "histogram": {"NORMAL": [0.4, 0.6], "PNEUMONIA": [0.5, 0.5]}},
    }
    for build in (figures.films_per_split_figure, figures.subtypes_figure, figures.patients_figure,
                  figures.films_per_patient_figure, figures.image_size_figure, figures.aspect_ratio_figure,
                  figures.intensity_figure):
        assert build(profile).data, build.__name__
    split_bars = figures.films_per_split_figure(profile).data
    assert [b.name for b in split_bars] == ["NORMAL", "PNEUMONIA"]
    assert list(split_bars[1].y) == [5, 2]


def test_verdict_scale_shows_the_review_band_in_its_colour():
    from pneumo.present import REVIEW_COLOUR, REVIEW_WORDS

    bars = figures.verdict_scale(0.21).data
    assert [b.name for b in bars] == ["No pneumonia detected", REVIEW_WORDS, "Pneumonia likely"]
    assert [b.base[0] for b in bars] == pytest.approx([0.0, 0.21, 0.5])
    assert bars[1].marker.color == REVIEW_COLOUR
    assert len(figures.verdict_scale(0.5).data) == 2
