"""Plotly charts built from plain data: a prediction, a model card's validation, a data profile.

Every builder (``*_chart``, plus :func:`probability_bars` and :func:`verdict_scale`) takes
numbers, lists or the dicts that :mod:`pneumo.stats.metrics` and :mod:`pneumo.evaluation.profile`
produce, and returns a ``plotly.graph_objects.Figure``; nothing here reads files or knows
about Streamlit. Colours come from :mod:`pneumo.render.palette`, so a class looks the same
in every chart.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import plotly.graph_objects as go

from pneumo.inference.explain import colorize
from pneumo.render.palette import (
    ACCENT_COLOUR,
    CLASS_COLOURS,
    GUIDE_COLOUR,
    INK,
    MAP_COLOURS,
    METRIC_COLOURS,
    NEUTRAL_COLOUR,
    PATTERN_COLOURS,
    PRIMARY_COLOUR,
)
from pneumo.render.wording import format_percent, format_threshold, verdict_bands

CHART_CONFIG = {"displayModeBar": False}
"""Plotly's config for every chart the app draws: no mode bar over the chart."""

FONT = dict(family="Source Sans Pro, Helvetica, Arial, sans-serif", size=13, color=INK)
INTERVAL_COLOUR = INK
THRESHOLD_COLOUR = INK


def _style(fig: go.Figure, title: str | None = None, height: int = 320, **layout) -> go.Figure:
    layout.setdefault("legend", dict(orientation="h", yanchor="bottom", y=1.0, xanchor="right", x=1))
    fig.update_layout(template="plotly_white", font=FONT, height=height,
                      margin=dict(l=10, r=10, t=60 if title else 30, b=10),
                      title=dict(text=title, x=0, xanchor="left") if title else None, **layout)
    return fig


def _class_colour(name: str) -> str:
    return CLASS_COLOURS.get(name, PATTERN_COLOURS.get(name, NEUTRAL_COLOUR))


# -- one film -----------------------------------------------------------------------------------

def probability_bars(p_pneumonia: float, threshold: float,
                     interval: tuple[float, float] | None = None,
                     classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> go.Figure:
    """Two horizontal bars, P(normal) and P(pneumonia), with the threshold and an interval.

    Args:
        p_pneumonia: the calibrated probability of pneumonia.
        threshold: the operating threshold; pneumonia when ``p_pneumonia >= threshold``. It is
            drawn on the pneumonia bar at ``threshold`` and on the normal bar at ``1 - threshold``.
        interval: (low, high) of P(pneumonia) under test-time changes, or None.
        classes: class names in label order.

    Returns:
        The figure.
    """
    normal, pneumonia = classes[0], classes[1]
    names = [normal, pneumonia]
    values = [1.0 - p_pneumonia, p_pneumonia]
    fig = go.Figure(go.Bar(
        x=values, y=names, orientation="h", marker_color=[_class_colour(n) for n in names],
        text=[format_percent(v) for v in values], textposition="outside", cliponaxis=False,
        hovertemplate="%{y}: %{x:.4f}<extra></extra>", name="probability", showlegend=False,
    ))
    if interval is not None:
        low, high = interval
        for name, (a, b) in ((pneumonia, (low, high)), (normal, (1.0 - high, 1.0 - low))):
            fig.add_trace(go.Scatter(
                x=[a, b], y=[name, name], mode="lines+markers", showlegend=name == pneumonia,
                line=dict(color=INTERVAL_COLOUR, width=3), marker=dict(symbol="line-ns-open", size=14),
                name="10-90% interval (test-time changes)",
                hovertemplate=f"{name}: {a:.4f} to {b:.4f}<extra>10-90% interval</extra>",
            ))
    for row, x in ((1, threshold), (0, 1.0 - threshold)):
        fig.add_shape(type="line", x0=x, x1=x, y0=row - 0.45, y1=row + 0.45,
                      line=dict(color=THRESHOLD_COLOUR, width=2, dash="dash"))
    fig.add_annotation(x=threshold, y=1.45, text=f"threshold {format_threshold(threshold)}", showarrow=False,
                       yanchor="bottom", font=dict(size=12))
    fig.update_xaxes(range=[0, 1.08], tickformat=".0%", title="probability (temperature-scaled)")
    fig.update_yaxes(categoryorder="array", categoryarray=names)
    return _style(fig, height=210, legend=dict(orientation="h", y=-0.45, x=0))


def pattern_bars(p_bacterial: float, threshold: float,
                 classes: Sequence[str] = ("viral", "bacterial")) -> go.Figure:
    """Two bars, P(viral) and P(bacterial) of a film read as pneumonia, with the subtype threshold.

    Args:
        p_bacterial: the subtype model's calibrated P(bacterial | pneumonia).
        threshold: bacterial when ``p_bacterial >= threshold`` (drawn at ``1 - threshold`` on the viral bar).
        classes: the subtype model's classes in label order.
    """
    fig = probability_bars(p_bacterial, threshold, None, classes)
    fig.update_xaxes(title="probability given pneumonia (temperature-scaled)")
    return fig


def verdict_scale(threshold: float, classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> go.Figure:
    """How a probability becomes a verdict: the 0-1 scale cut at the operating threshold and at 50%.

    Shown before any film is uploaded, as the key to the probability bars; the
    review band between the threshold and 50% has its own colour
    (see :func:`pneumo.render.wording.verdict_bands`).
    """
    fig = go.Figure()
    for band in verdict_bands(threshold, classes):
        words, start, end = band.words, band.start, band.end
        fig.add_trace(go.Bar(x=[end - start], base=[start], y=["P(pneumonia)"], orientation="h",
                             marker_color=band.colour, opacity=0.85, name=words,
                             text=[words], textposition="inside", insidetextanchor="middle",
                             hovertemplate=f"{words}: P(pneumonia) {format_threshold(start)} to "
                                           f"{format_threshold(end)}<extra></extra>"))
    fig.add_vline(x=threshold, line=dict(color=THRESHOLD_COLOUR, width=2, dash="dash"),
                  annotation_text=f"operating threshold {format_threshold(threshold)}", annotation_position="top")
    fig.update_layout(barmode="stack", showlegend=False)
    fig.update_xaxes(range=[0, 1.001], tickformat=".0%", dtick=0.2,
                     title="probability of pneumonia (temperature-scaled)")
    fig.update_yaxes(showticklabels=False)
    return _style(fig, height=170)


def colour_scale_strip(width: int = 256, height: int = 14) -> np.ndarray:
    """The overlay's colour scale from no weight (left) to most weight (right): RGB uint8 (h, w, 3)."""
    ramp = np.tile(np.linspace(0.0, 1.0, width, dtype=np.float32), (height, 1))
    return colorize(ramp)


# -- a model card's validation ------------------------------------------------------------------

def confusion_matrix_chart(matrix: Sequence[Sequence[int]],
                           classes: Sequence[str] = ("NORMAL", "PNEUMONIA")) -> go.Figure:
    """Heatmap of [[tn, fp], [fn, tp]]: rows are the true class, columns the predicted one."""
    z = np.asarray(matrix, dtype=float)
    total = z.sum(axis=1, keepdims=True)
    share = np.divide(z, total, out=np.zeros_like(z), where=total > 0)
    text = [[f"{int(z[i, j])}<br>{share[i, j]:.0%} of {classes[i].lower()}" for j in range(2)]
            for i in range(2)]
    fig = go.Figure(go.Heatmap(
        z=share, x=[f"predicted {c.lower()}" for c in classes], y=[f"true {c.lower()}" for c in classes],
        text=text, texttemplate="%{text}", colorscale="Blues", zmin=0, zmax=1, showscale=False,
        hovertemplate="%{y}, %{x}: %{text}<extra></extra>",
    ))
    fig.update_yaxes(autorange="reversed")
    return _style(fig, "Confusion matrix at the operating threshold", height=300)


def roc_chart(roc: dict, auc: float | None = None,
              points: dict[str, tuple[float, float]] | None = None) -> go.Figure:
    """ROC curve from ``{"fpr": [...], "tpr": [...]}``; ``points`` maps a label to (fpr, tpr)."""
    title = "ROC curve" + (f" (AUC {auc:.3f})" if auc is not None else "")
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color=GUIDE_COLOUR, dash="dot"),
                   name="chance", hoverinfo="skip"),
        go.Scatter(x=roc["fpr"], y=roc["tpr"], mode="lines", line=dict(color=PRIMARY_COLOUR, width=3),
                   name="model", hovertemplate="1 - specificity %{x:.3f}, sensitivity %{y:.3f}"
                                               "<extra></extra>"),
    ])
    _add_points(fig, points)
    fig.update_xaxes(range=[0, 1], title="1 - specificity (false-positive rate)")
    fig.update_yaxes(range=[0, 1.02], title="sensitivity")
    return _style(fig, title, legend=dict(x=0.55, y=0.05))


def pr_chart(pr: dict, average_precision: float | None = None, prevalence: float | None = None,
             points: dict[str, tuple[float, float]] | None = None) -> go.Figure:
    """Precision-recall curve from ``{"precision": [...], "recall": [...]}``; points are (recall, PPV).

    The title gives the average precision (AP, the card's ``average_precision``), the area the curve's
    steps enclose.
    """
    title = "Precision-recall curve" + (f" (AP {average_precision:.3f})" if average_precision is not None else "")
    fig = go.Figure(go.Scatter(x=pr["recall"], y=pr["precision"], mode="lines",
                               line=dict(color=PRIMARY_COLOUR, width=3), name="model",
                               hovertemplate="recall %{x:.3f}, precision %{y:.3f}<extra></extra>"))
    if prevalence is not None:
        fig.add_trace(go.Scatter(x=[0, 1], y=[prevalence, prevalence], mode="lines",
                                 line=dict(color=GUIDE_COLOUR, dash="dot"),
                                 name=f"chance ({prevalence:.0%} pneumonia)", hoverinfo="skip"))
    _add_points(fig, points)
    fig.update_xaxes(range=[0, 1], title="recall (sensitivity)")
    fig.update_yaxes(range=[0, 1.02], title="precision (PPV)")
    return _style(fig, title, legend=dict(x=0.02, y=0.05))


def reliability_chart(reliability: dict, outcome: str = "pneumonia") -> go.Figure:
    """Reliability diagram: observed rate of ``outcome`` against its mean predicted probability per bin."""
    counts = np.asarray(reliability.get("count") or [], dtype=float)
    sizes = 8 + 22 * np.sqrt(counts / counts.max()) if counts.size else []
    fig = go.Figure([
        go.Scatter(x=[0, 1], y=[0, 1], mode="lines", line=dict(color=GUIDE_COLOUR, dash="dot"),
                   name="perfect calibration", hoverinfo="skip"),
        go.Scatter(x=reliability.get("predicted", []), y=reliability.get("observed", []),
                   mode="lines+markers", marker=dict(size=sizes, color=PRIMARY_COLOUR),
                   line=dict(color=PRIMARY_COLOUR), name="model", customdata=counts,
                   hovertemplate="predicted %{x:.3f}, observed %{y:.3f} (%{customdata:.0f} films)"
                                 "<extra></extra>"),
    ])
    fig.update_xaxes(range=[0, 1], title=f"mean predicted P({outcome})")
    fig.update_yaxes(range=[0, 1.02], title=f"observed {outcome} rate")
    return _style(fig, "Reliability diagram", legend=dict(x=0.02, y=0.98))


def threshold_sweep_chart(sweep: dict, threshold: float, operating: float,
                          outcome: str = "pneumonia") -> go.Figure:
    """Sensitivity, specificity, PPV and NPV against the threshold, with two thresholds marked."""
    fig = go.Figure()
    for key, label in (("sensitivity", "sensitivity"), ("specificity", "specificity"),
                       ("ppv", "PPV"), ("npv", "NPV")):
        fig.add_trace(go.Scatter(x=sweep["threshold"], y=sweep[key], mode="lines", name=label,
                                 line=dict(color=METRIC_COLOURS[key], width=2),
                                 hovertemplate=f"threshold %{{x:.3f}}: {label} %{{y:.3f}}<extra></extra>"))
    fig.add_vline(x=operating, line=dict(color=GUIDE_COLOUR, dash="dot"),
                  annotation_text="model's threshold", annotation_position="bottom right")
    fig.add_vline(x=threshold, line=dict(color=THRESHOLD_COLOUR, dash="dash"),
                  annotation_text="chosen", annotation_position="top left")
    fig.update_xaxes(range=[0, 1], title=f"threshold on P({outcome})")
    fig.update_yaxes(range=[0, 1.02])
    return _style(fig, "Validation figures at every threshold", legend=dict(orientation="h", y=-0.25))


CURVE_STYLES = {"gradcam": dict(color=MAP_COLOURS["gradcam"], width=3),
                "gradcam_pp": dict(color=MAP_COLOURS["gradcam_pp"], width=2),
                "scorecam": dict(color=MAP_COLOURS["scorecam"], width=2),
                "saliency": dict(color=MAP_COLOURS["saliency"], width=2),
                "random": dict(color=MAP_COLOURS["random"], width=2, dash="dot"),
                "gaussian": dict(color=MAP_COLOURS["gaussian"], width=2, dash="dash")}
"""Each map's faithfulness curve: its colour (:data:`~pneumo.render.palette.MAP_COLOURS`), width and dash."""


def faithfulness_curves_chart(curves: dict, names: dict[str, str], kind: str = "deletion") -> go.Figure:
    """Mean deletion or insertion curves: P(pneumonia) against the share of pixels changed.

    Args:
        curves: ``{"fraction": [...], name: {"deletion": [...], "insertion": [...]}}``, as
            :func:`pneumo.evaluation.faithfulness_results.summarize` stores them.
        names: map key -> name shown (methods, then baselines); keys without curves are skipped.
        kind: ``"deletion"`` or ``"insertion"``.
    """
    if kind not in ("deletion", "insertion"):
        raise ValueError(f"kind must be 'deletion' or 'insertion', got {kind!r}")
    fig = go.Figure()
    for key, name in names.items():
        values = (curves.get(key) or {}).get(kind)
        if not values:
            continue
        fig.add_trace(go.Scatter(x=curves["fraction"], y=values, mode="lines", name=name,
                                 line=CURVE_STYLES.get(key, dict(width=2)),
                                 hovertemplate=f"{name}: %{{x:.0%}} changed, P %{{y:.3f}}<extra></extra>"))
    verb = "removed" if kind == "deletion" else "revealed"
    fig.update_xaxes(range=[0, 1], tickformat=".0%", title=f"share of pixels {verb}, most salient first")
    fig.update_yaxes(range=[0, 1.02], title="mean P(pneumonia)")
    better = "lower" if kind == "deletion" else "higher"
    return _style(fig, f"{kind.capitalize()} ({better} is better)", height=340,
                  legend=dict(orientation="h", y=-0.3))


def _add_points(fig: go.Figure, points: dict[str, tuple[float, float]] | None) -> None:
    symbols = ("circle", "diamond", "square")
    for index, (label, (x, y)) in enumerate((points or {}).items()):
        fig.add_trace(go.Scatter(x=[x], y=[y], mode="markers", name=label,
                                 marker=dict(size=12, symbol=symbols[index % len(symbols)],
                                             color=THRESHOLD_COLOUR if index == 0 else ACCENT_COLOUR),
                                 hovertemplate=f"{label}: (%{{x:.3f}}, %{{y:.3f}})<extra></extra>"))


# -- a data profile -----------------------------------------------------------------------------

def films_per_split_chart(profile: dict) -> go.Figure:
    """Grouped bars: films per class in each split."""
    splits = list(profile["films"])
    classes = sorted({c for counts in profile["films"].values() for c in counts})
    fig = go.Figure([go.Bar(x=splits, y=[profile["films"][s].get(c, 0) for s in splits], name=c,
                            marker_color=_class_colour(c), texttemplate="%{y}", textposition="outside",
                            cliponaxis=False)
                     for c in classes])
    fig.update_layout(barmode="group")
    fig.update_yaxes(title="films")
    return _style(fig, "Films per class and split")


def subtypes_chart(profile: dict) -> go.Figure:
    """Bars: pneumonia films per subtype (bacterial, viral, unknown)."""
    subtypes = dict(sorted(profile.get("subtypes", {}).items()))
    fig = go.Figure(go.Bar(x=list(subtypes), y=list(subtypes.values()), texttemplate="%{y}",
                           textposition="outside", cliponaxis=False,
                           marker_color=_class_colour("PNEUMONIA")))
    fig.update_yaxes(title="pneumonia films")
    return _style(fig, "Pneumonia subtypes (from file names)")


def patients_chart(profile: dict) -> go.Figure:
    """Bars: distinct patients per class."""
    patients = profile["patients"]
    fig = go.Figure(go.Bar(x=list(patients), y=list(patients.values()), texttemplate="%{y}",
                           textposition="outside", cliponaxis=False,
                           marker_color=[_class_colour(c) for c in patients]))
    fig.update_yaxes(title="patients")
    return _style(fig, "Patients per class")


def films_per_patient_chart(profile: dict) -> go.Figure:
    """Grouped bars: how many patients have 1, 2, 3... films, per class."""
    fig = go.Figure()
    for name, counts in profile["films_per_patient"].items():
        keys = sorted(counts, key=int)
        fig.add_trace(go.Bar(x=[int(k) for k in keys], y=[counts[k] for k in keys], name=name,
                             marker_color=_class_colour(name)))
    fig.update_layout(barmode="group")
    fig.update_xaxes(title="films per patient")
    fig.update_yaxes(title="patients")
    return _style(fig, "Films per patient")


def image_size_chart(profile: dict) -> go.Figure:
    """Scatter of width against height, one point per film, coloured by class."""
    sizes = profile["image_sizes"]
    width, height = np.asarray(sizes["width"]), np.asarray(sizes["height"])
    classes = np.asarray(sizes["class"])
    fig = go.Figure()
    for name in sorted(set(classes.tolist())):
        mask = classes == name
        fig.add_trace(go.Scattergl(x=width[mask], y=height[mask], mode="markers", name=name,
                                   marker=dict(color=_class_colour(name), size=5, opacity=0.5),
                                   hovertemplate="%{x} x %{y} px<extra>" + name + "</extra>"))
    fig.update_xaxes(title="width (px)")
    fig.update_yaxes(title="height (px)")
    return _style(fig, "Image sizes")


def aspect_ratio_chart(profile: dict) -> go.Figure:
    """Overlaid histograms of width / height per class."""
    sizes = profile["image_sizes"]
    ratio = np.asarray(sizes["width"], dtype=float) / np.maximum(np.asarray(sizes["height"], dtype=float), 1)
    classes = np.asarray(sizes["class"])
    fig = go.Figure([go.Histogram(x=ratio[classes == name], name=name, opacity=0.6, nbinsx=40,
                                  marker_color=_class_colour(name))
                     for name in sorted(set(classes.tolist()))])
    fig.update_layout(barmode="overlay")
    fig.update_xaxes(title="aspect ratio (width / height)")
    fig.update_yaxes(title="films")
    return _style(fig, "Aspect ratios")


def intensity_chart(profile: dict) -> go.Figure:
    """Mean pixel-intensity histogram per class (share of a film's pixels in each bin)."""
    bins = np.asarray(profile["intensity"]["bins"], dtype=float)
    centres = (bins[:-1] + bins[1:]) / 2
    fig = go.Figure([go.Scatter(x=centres, y=hist, mode="lines", name=name,
                                line=dict(color=_class_colour(name), width=2, shape="hvh"),
                                hovertemplate="intensity %{x:.2f}: %{y:.3%} of pixels<extra>" + name
                                              + "</extra>")
                     for name, hist in profile["intensity"]["histogram"].items()])
    fig.update_xaxes(title="pixel intensity (0 black, 1 white)", range=[0, 1])
    fig.update_yaxes(title="share of pixels", tickformat=".0%")
    return _style(fig, "Pixel intensities per class")
