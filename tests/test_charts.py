"""pneumo.render.charts: plotly figures from plain data, in the shared class colours.

Each test checks what the chart shows (x and y data, lines and where they sit, colours,
labels, hover text), worked out by hand from the inputs.
"""

import numpy as np
import pytest

from pneumo.inference import explain
from pneumo.render import charts, palette
from pneumo.render.wording import REVIEW_WORDS, VERDICT_WORDS

NORMAL, PNEUMONIA = palette.CLASS_COLOURS["NORMAL"], palette.CLASS_COLOURS["PNEUMONIA"]
PROFILE = {
    "films": {"train": {"NORMAL": 3, "PNEUMONIA": 5}, "val": {"NORMAL": 1, "PNEUMONIA": 2}},
    "patients": {"NORMAL": 4, "PNEUMONIA": 6},
    "films_per_patient": {"NORMAL": {"1": 4}, "PNEUMONIA": {"1": 5, "10": 1, "2": 1}},
    "subtypes": {"virus": 3, "bacteria": 4},
    "image_sizes": {"width": [100, 120, 90], "height": [100, 100, 80],
                    "class": ["NORMAL", "PNEUMONIA", "NORMAL"]},
    "intensity": {"bins": [0, 0.5, 1], "histogram": {"NORMAL": [0.4, 0.6], "PNEUMONIA": [0.5, 0.5]}},
}


def vertical_lines(fig) -> list[tuple[float, str, str]]:
    """(x, colour, dash) of every vertical line shape, left to right."""
    return sorted((shape.x0, shape.line.color, shape.line.dash) for shape in fig.layout.shapes
                  if shape.x0 == shape.x1)


def annotations(fig) -> dict[str, float]:
    """Annotation text -> its x position."""
    return {note.text: note.x for note in fig.layout.annotations}


# -- one film -----------------------------------------------------------------------------------

def test_probability_bars_show_both_classes_threshold_and_interval():
    fig = charts.probability_bars(0.8, 0.6, (0.7, 0.85))
    bars = fig.data[0]
    assert list(bars.y) == ["NORMAL", "PNEUMONIA"]
    assert list(bars.x) == pytest.approx([0.2, 0.8])
    assert list(bars.marker.color) == [NORMAL, PNEUMONIA]
    assert list(bars.text) == ["20%", "80%"]
    assert bars.hovertemplate == "%{y}: %{x:.4f}<extra></extra>"
    intervals = {trace.y[0]: trace for trace in fig.data[1:]}
    assert tuple(intervals["PNEUMONIA"].x) == pytest.approx((0.7, 0.85))
    assert tuple(intervals["NORMAL"].x) == pytest.approx((0.15, 0.3))
    assert intervals["PNEUMONIA"].hovertemplate == "PNEUMONIA: 0.7000 to 0.8500<extra>10-90% interval</extra>"
    assert intervals["NORMAL"].hovertemplate == "NORMAL: 0.1500 to 0.3000<extra>10-90% interval</extra>"
    assert [t.line.color for t in intervals.values()] == [palette.INK, palette.INK]
    assert [intervals[name].showlegend for name in ("PNEUMONIA", "NORMAL")] == [True, False]  # one legend entry
    # The threshold on the pneumonia bar (row 1) and its mirror on the normal bar (row 0).
    lines = sorted((s.x0, s.y0, s.y1) for s in fig.layout.shapes)
    assert np.asarray(lines) == pytest.approx(np.array([(0.4, -0.45, 0.45), (0.6, 0.55, 1.45)]))
    assert [line[1:] for line in vertical_lines(fig)] == [(palette.INK, "dash")] * 2
    assert annotations(fig) == {"threshold 60.0%": 0.6}
    assert tuple(fig.layout.xaxis.range) == (0, 1.08) and fig.layout.xaxis.tickformat == ".0%"


def test_probability_bars_without_interval_and_at_the_extremes():
    fig = charts.probability_bars(0.999, 0.3)
    assert len(fig.data) == 1  # no interval traces
    assert list(fig.data[0].x) == pytest.approx([0.001, 0.999])
    assert list(fig.data[0].text) == ["<1%", ">99%"]  # never claims certainty
    assert [x for x, _, _ in vertical_lines(fig)] == pytest.approx([0.3, 0.7])
    assert annotations(fig) == {"threshold 30.0%": 0.3}


def test_verdict_scale_shows_the_review_band_in_its_colour():
    fig = charts.verdict_scale(0.21)
    bars = fig.data
    assert [b.name for b in bars] == [VERDICT_WORDS["NORMAL"], REVIEW_WORDS, VERDICT_WORDS["PNEUMONIA"]]
    assert [b.name for b in bars] == ["No pneumonia detected", REVIEW_WORDS, "Pneumonia likely"]
    assert [b.base[0] for b in bars] == pytest.approx([0.0, 0.21, 0.5])
    assert [b.x[0] for b in bars] == pytest.approx([0.21, 0.29, 0.5])  # widths: each band ends where the next starts
    assert [b.marker.color for b in bars] == [NORMAL, palette.REVIEW_COLOUR, PNEUMONIA]
    assert bars[1].marker.color == palette.REVIEW_COLOUR
    assert [b.hovertemplate for b in bars] == [
        "No pneumonia detected: P(pneumonia) 0.0% to 21.0%<extra></extra>",
        f"{REVIEW_WORDS}: P(pneumonia) 21.0% to 50.0%<extra></extra>",
        "Pneumonia likely: P(pneumonia) 50.0% to 100.0%<extra></extra>"]
    assert vertical_lines(fig) == [(0.21, palette.INK, "dash")]
    assert annotations(fig) == {"operating threshold 21.0%": 0.21}


def test_verdict_scale_at_50_percent_has_no_review_band():
    bars = charts.verdict_scale(0.5).data
    assert len(bars) == 2
    assert [(b.base[0], b.x[0]) for b in bars] == [(0.0, 0.5), (0.5, 0.5)]
    assert [b.marker.color for b in bars] == [NORMAL, PNEUMONIA]


def test_colour_scale_strip_is_the_overlay_scale():
    strip = charts.colour_scale_strip(width=5, height=2)
    assert strip.shape == (2, 5, 3) and strip.dtype == np.uint8
    assert np.array_equal(strip[0], explain.colorize(np.linspace(0, 1, 5)))
    assert np.array_equal(strip[0], strip[1])  # every row the same ramp
    assert tuple(strip[0, 0]) == explain.COLOR_STOPS[0][1]
    assert tuple(strip[0, -1]) == explain.COLOR_STOPS[-1][1]


# -- a model card's validation ------------------------------------------------------------------

def test_confusion_matrix_shows_shares_of_each_true_class_and_counts():
    heat = charts.confusion_matrix_chart([[5, 1], [2, 7]]).data[0]
    assert np.asarray(heat.z) == pytest.approx(np.array([[5 / 6, 1 / 6], [2 / 9, 7 / 9]]))
    assert [list(row) for row in heat.text] == [["5<br>83% of normal", "1<br>17% of normal"],
                                                ["2<br>22% of pneumonia", "7<br>78% of pneumonia"]]
    assert list(heat.x) == ["predicted normal", "predicted pneumonia"]
    assert list(heat.y) == ["true normal", "true pneumonia"]
    assert (heat.zmin, heat.zmax) == (0, 1)


def test_confusion_matrix_with_an_empty_row_shows_zero_shares():
    fig = charts.confusion_matrix_chart([[5, 1], [0, 0]])
    heat = fig.data[0]
    assert np.asarray(heat.z) == pytest.approx(np.array([[5 / 6, 1 / 6], [0, 0]]))
    assert list(heat.text[1]) == ["0<br>0% of pneumonia", "0<br>0% of pneumonia"]
    assert fig.layout.yaxis.autorange == "reversed"  # true normal on top


def test_roc_chart_draws_chance_the_curve_and_the_points():
    roc = {"fpr": [0, 0.1, 1], "tpr": [0, 0.8, 1], "threshold": [1, 0.5, 0]}
    fig = charts.roc_chart(roc, 0.9, {"operating": (0.1, 0.8), "chosen": (0.3, 0.95)})
    chance, model, operating, chosen = fig.data
    assert (list(chance.x), list(chance.y)) == ([0, 1], [0, 1])
    assert (chance.line.color, chance.line.dash) == (palette.GUIDE_COLOUR, "dot")
    assert (list(model.x), list(model.y)) == (roc["fpr"], roc["tpr"])
    assert model.line.color == palette.PRIMARY_COLOUR
    assert (operating.name, list(operating.x), list(operating.y)) == ("operating", [0.1], [0.8])
    assert (chosen.name, list(chosen.x), list(chosen.y)) == ("chosen", [0.3], [0.95])
    assert [p.marker.color for p in (operating, chosen)] == [palette.INK, palette.ACCENT_COLOUR]
    assert [p.marker.symbol for p in (operating, chosen)] == ["circle", "diamond"]
    assert operating.hovertemplate == "operating: (%{x:.3f}, %{y:.3f})<extra></extra>"
    assert fig.layout.title.text == "ROC curve (AUC 0.900)"
    assert charts.roc_chart(roc).layout.title.text == "ROC curve"
    assert len(charts.roc_chart(roc).data) == 2


def test_pr_chart_draws_the_curve_and_the_prevalence_line():
    fig = charts.pr_chart({"precision": [1, 0.8], "recall": [0, 1]}, 0.9, 0.25)
    model, chance = fig.data
    assert (list(model.x), list(model.y)) == ([0, 1], [1, 0.8])  # recall across, precision up
    assert model.line.color == palette.PRIMARY_COLOUR
    assert (list(chance.x), list(chance.y)) == ([0, 1], [0.25, 0.25])
    assert chance.name == "chance (25% pneumonia)" and chance.line.color == palette.GUIDE_COLOUR
    assert fig.layout.title.text == "Precision-recall curve (AP 0.900)"
    assert len(charts.pr_chart({"precision": [1, 0.8], "recall": [0, 1]}).data) == 1


def test_reliability_chart_sizes_points_by_films_per_bin():
    fig = charts.reliability_chart({"predicted": [0.2, 0.7], "observed": [0.3, 0.6], "count": [1, 4]})
    perfect, model = fig.data
    assert (list(perfect.x), list(perfect.y)) == ([0, 1], [0, 1]) and perfect.line.color == palette.GUIDE_COLOUR
    assert (list(model.x), list(model.y)) == ([0.2, 0.7], [0.3, 0.6])
    assert list(model.marker.size) == pytest.approx([8 + 22 * 0.5, 30])  # 8 + 22 * sqrt(count / largest)
    assert list(model.customdata) == [1, 4]
    assert model.marker.color == palette.PRIMARY_COLOUR
    assert fig.layout.title.text == "Reliability diagram"


def test_threshold_sweep_chart_draws_four_figures_and_both_thresholds():
    sweep = {"threshold": [0, 0.5, 1], "sensitivity": [1, 0.8, 0], "specificity": [0, 0.7, 1],
             "ppv": [0.5, 0.8, 1], "npv": [1, 0.7, 0.5]}
    fig = charts.threshold_sweep_chart(sweep, threshold=0.3, operating=0.6)
    assert [t.name for t in fig.data] == ["sensitivity", "specificity", "PPV", "NPV"]
    for trace, key in zip(fig.data, ("sensitivity", "specificity", "ppv", "npv")):
        assert (list(trace.x), list(trace.y)) == (sweep["threshold"], sweep[key])
        assert trace.line.color == palette.METRIC_COLOURS[key]
    assert fig.data[2].hovertemplate == "threshold %{x:.3f}: PPV %{y:.3f}<extra></extra>"
    assert vertical_lines(fig) == [(0.3, palette.INK, "dash"), (0.6, palette.GUIDE_COLOUR, "dot")]
    assert annotations(fig) == {"chosen": 0.3, "model's threshold": 0.6}


def test_faithfulness_curves_chart_draws_each_map_with_curves():
    curves = {"fraction": [0, 0.5, 1], "gradcam": {"deletion": [0.9, 0.2, 0.1], "insertion": [0.1, 0.8, 0.9]},
              "random": {"deletion": [0.9, 0.6, 0.1], "insertion": [0.1, 0.3, 0.9]}}
    names = {"gradcam": "Grad-CAM", "scorecam": "Score-CAM", "random": "Random map"}
    fig = charts.faithfulness_curves_chart(curves, names, "deletion")
    assert [t.name for t in fig.data] == ["Grad-CAM", "Random map"]  # no curves, no trace
    assert list(fig.data[0].y) == [0.9, 0.2, 0.1]
    assert [list(t.x) for t in fig.data] == [[0, 0.5, 1], [0, 0.5, 1]]
    assert [t.line.color for t in fig.data] == [palette.MAP_COLOURS["gradcam"], palette.MAP_COLOURS["random"]]
    assert fig.data[1].line.dash == "dot"  # a baseline, not a method
    assert fig.data[0].hovertemplate == "Grad-CAM: %{x:.0%} changed, P %{y:.3f}<extra></extra>"
    assert fig.layout.title.text == "Deletion (lower is better)"
    assert fig.layout.xaxis.title.text == "share of pixels removed, most salient first"
    insertion = charts.faithfulness_curves_chart(curves, names, "insertion")
    assert list(insertion.data[1].y) == [0.1, 0.3, 0.9]
    assert insertion.layout.title.text == "Insertion (higher is better)"
    assert insertion.layout.xaxis.title.text == "share of pixels revealed, most salient first"
    with pytest.raises(ValueError, match="kind"):
        charts.faithfulness_curves_chart(curves, names, "both")


# -- a data profile -----------------------------------------------------------------------------

def test_films_per_split_chart_groups_classes_by_split():
    fig = charts.films_per_split_chart(PROFILE)
    assert [b.name for b in fig.data] == ["NORMAL", "PNEUMONIA"]
    assert [list(b.x) for b in fig.data] == [["train", "val"], ["train", "val"]]
    assert [list(b.y) for b in fig.data] == [[3, 1], [5, 2]]
    assert [b.marker.color for b in fig.data] == [NORMAL, PNEUMONIA]
    assert fig.layout.barmode == "group"
    assert fig.layout.title.text == "Films per class and split"


def test_subtypes_chart_sorts_subtypes_by_name():
    bars = charts.subtypes_chart(PROFILE).data[0]
    assert (list(bars.x), list(bars.y)) == (["bacteria", "virus"], [4, 3])
    assert bars.marker.color == PNEUMONIA


def test_patients_chart_counts_patients_per_class():
    bars = charts.patients_chart(PROFILE).data[0]
    assert (list(bars.x), list(bars.y)) == (["NORMAL", "PNEUMONIA"], [4, 6])
    assert list(bars.marker.color) == [NORMAL, PNEUMONIA]


def test_films_per_patient_chart_orders_film_counts_as_numbers():
    normal, pneumonia = charts.films_per_patient_chart(PROFILE).data
    assert (normal.name, list(normal.x), list(normal.y)) == ("NORMAL", [1], [4])
    assert (pneumonia.name, list(pneumonia.x), list(pneumonia.y)) == ("PNEUMONIA", [1, 2, 10], [5, 1, 1])
    assert [normal.marker.color, pneumonia.marker.color] == [NORMAL, PNEUMONIA]


def test_image_size_chart_plots_each_class_apart():
    normal, pneumonia = charts.image_size_chart(PROFILE).data
    assert (list(normal.x), list(normal.y)) == ([100, 90], [100, 80])
    assert (list(pneumonia.x), list(pneumonia.y)) == ([120], [100])
    assert [normal.marker.color, pneumonia.marker.color] == [NORMAL, PNEUMONIA]
    assert normal.hovertemplate == "%{x} x %{y} px<extra>NORMAL</extra>"


def test_aspect_ratio_chart_divides_width_by_height():
    normal, pneumonia = charts.aspect_ratio_chart(PROFILE).data
    assert list(normal.x) == pytest.approx([1.0, 90 / 80])
    assert list(pneumonia.x) == pytest.approx([1.2])
    assert [normal.marker.color, pneumonia.marker.color] == [NORMAL, PNEUMONIA]


def test_intensity_chart_draws_histograms_at_bin_centres():
    normal, pneumonia = charts.intensity_chart(PROFILE).data
    assert list(normal.x) == pytest.approx([0.25, 0.75]) and list(pneumonia.x) == pytest.approx([0.25, 0.75])
    assert (list(normal.y), list(pneumonia.y)) == ([0.4, 0.6], [0.5, 0.5])
    assert [normal.line.color, pneumonia.line.color] == [NORMAL, PNEUMONIA]
    assert normal.hovertemplate == "intensity %{x:.2f}: %{y:.3%} of pixels<extra>NORMAL</extra>"


def test_pattern_bars_show_viral_and_bacterial_with_the_subtype_threshold():
    from pneumo.render.palette import PATTERN_COLOURS

    fig = charts.pattern_bars(0.81, 0.63)
    bars = fig.data[0]
    assert list(bars.y) == ["viral", "bacterial"] and list(bars.x) == pytest.approx([0.19, 0.81])
    assert list(bars.marker.color) == [PATTERN_COLOURS["viral"], PATTERN_COLOURS["bacterial"]]
    assert annotations(fig) == {"threshold 63.0%": 0.63}
    assert "given pneumonia" in fig.layout.xaxis.title.text


def test_subtype_charts_name_the_outcome():
    reliability = charts.reliability_chart({"predicted": [0.2], "observed": [0.3], "count": [4]}, "bacterial")
    assert reliability.layout.xaxis.title.text == "mean predicted P(bacterial)"
    assert reliability.layout.yaxis.title.text == "observed bacterial rate"
    sweep = {"threshold": [0, 1], **{k: [1, 0] for k in ("sensitivity", "specificity", "ppv", "npv")}}
    assert charts.threshold_sweep_chart(sweep, 0.4, 0.5, "bacterial").layout.xaxis.title.text == \
        "threshold on P(bacterial)"
