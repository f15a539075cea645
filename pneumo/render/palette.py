"""Pneumo's colours, in one place: the app's theme, the charts, the verdicts and the PDF report.

Every colour is a hex string; the PDF takes its RGB from the same string (:func:`rgb`).
``.streamlit/config.toml`` cannot import Python, so its ``[theme]`` repeats :data:`THEME`
and a test holds the two equal.
"""

from __future__ import annotations

CLASS_COLOURS = {"NORMAL": "#2e7d5b", "PNEUMONIA": "#b3261e"}
"""Class name -> colour, used for verdicts, probability bars and dataset charts alike."""

PATTERN_COLOURS = {"viral": "#4a5fa8", "bacterial": "#8e2c5f"}
"""Pneumonia pattern -> colour of its bar (distinct from the verdicts': a pattern is not a verdict)."""

REVIEW_COLOUR = "#a15c00"
"""For verdicts in the review band (amber; 5.2:1 against white, like the class colours)."""

NEUTRAL_COLOUR = "#5f6b73"
"""For rows without a verdict (files that could not be read) and for secondary text."""

INK = "#1b2a35"
"""Text, and the marks drawn over a chart's data (threshold lines, intervals)."""

PRIMARY_COLOUR = "#1f5f8b"
"""The theme's primary colour; the model's own curves."""

ACCENT_COLOUR = "#c77c02"
"""A second series or point beside the primary one (PPV, Grad-CAM++, a chosen threshold)."""

GUIDE_COLOUR = "#9aa5ad"
"""Reference lines: chance, perfect calibration, baselines."""

BACKGROUND_COLOUR = "#ffffff"
SECONDARY_BACKGROUND_COLOUR = "#eef3f6"

METRIC_COLOURS = {"sensitivity": CLASS_COLOURS["PNEUMONIA"], "specificity": CLASS_COLOURS["NORMAL"],
                  "ppv": ACCENT_COLOUR, "npv": PRIMARY_COLOUR}
"""Figure key -> colour of its line in the threshold sweep."""

MAP_COLOURS = {"gradcam": CLASS_COLOURS["PNEUMONIA"], "gradcam_pp": ACCENT_COLOUR, "scorecam": "#6a3d9a",
               "saliency": PRIMARY_COLOUR, "random": GUIDE_COLOUR, "gaussian": GUIDE_COLOUR}
"""Explanation method or baseline key -> colour of its faithfulness curve."""

# The PDF report's own shades (printed, not on screen).
PDF_TEXT_COLOUR = "#000000"
PDF_MUTED_COLOUR = "#5a646e"
"""The report's date line."""
PDF_WARNING_COLOUR = "#a05a00"
"""The report's attention warning."""
PDF_PANEL_COLOUR = "#f0f4f7"
"""The fill behind the report's disclaimer."""

THEME = {"primaryColor": PRIMARY_COLOUR, "backgroundColor": BACKGROUND_COLOUR,
         "secondaryBackgroundColor": SECONDARY_BACKGROUND_COLOUR, "textColor": INK}
"""The colours of the ``[theme]`` table in ``.streamlit/config.toml``, by its key names."""


def rgb(colour: str) -> tuple[int, int, int]:
    """``"#a15c00"`` -> ``(161, 92, 0)``.

    Raises:
        ValueError: not a ``#rrggbb`` string.
    """
    value = colour.removeprefix("#")
    if len(value) != 6:
        raise ValueError(f"expected a colour as '#rrggbb', got {colour!r}")
    return int(value[0:2], 16), int(value[2:4], 16), int(value[4:6], 16)
