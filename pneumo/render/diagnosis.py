"""What the diagnose page shows about one film, as plain values: the page draws, this computes.

:func:`film_view` paints the overlay and decides what to say beside it (the border
warning, the note on what a map of a film read as normal means); :func:`case_report`
gathers what the PDF prints. Both take the film, its map and the classifier's values,
so they can be tested without Streamlit.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import PurePath

import numpy as np

from pneumo.inference import explain
from pneumo.inference.predict import STATUS_REJECTED, Assessment, Classifier
from pneumo.io import Film
from pneumo.preprocess import to_display
from pneumo.render.model_card import nearby_words
from pneumo.render.pdf import CaseReport
from pneumo.render.wording import (
    CAM_WORDS,
    SUBTYPE_CAM_WORDS,
    format_probability,
    map_note,
    pattern_text,
    subtype_map_note,
)

METADATA_LABELS = {"view": "View", "modality": "Modality", "study_date": "Study date",
                   "body_part": "Body part", "photometric": "Photometric interpretation"}
"""DICOM header key (as :mod:`pneumo.io` reads it) -> name shown."""


@dataclass(frozen=True)
class FilmView:
    """One film beside its overlay, and what to say about the overlay.

    Attributes:
        film: the film as the model saw it, uint8 (size, size).
        overlay: the map painted over the film, RGB uint8 (size, size, 3).
        method: the explanation method's key, e.g. "gradcam".
        method_name: its name shown, e.g. "Grad-CAM".
        film_caption: the caption under the film.
        overlay_caption: the caption under the overlay.
        warning: :data:`pneumo.inference.explain.ATTENTION_WARNING` when the map's weight lies at
            the film's border, else None.
        note: what the map of a film read as normal or in the review band means
            (:func:`pneumo.render.wording.map_note`), or the bacterial-pattern map of a film whose
            pattern reads viral (:func:`pneumo.render.wording.subtype_map_note`), else None.
        target: what the map explains, a key of :data:`pneumo.inference.explain.TARGETS`.
        legend: what the overlay's colour scale means for that target.
    """

    film: np.ndarray
    overlay: np.ndarray
    method: str
    method_name: str
    film_caption: str
    overlay_caption: str
    warning: str | None
    note: str | None
    target: str = "pneumonia"
    legend: str = CAM_WORDS


def film_view(film: Film, heatmap: np.ndarray, size: int, method: str, opacity: float,
              p_pneumonia: float, threshold: float, target: str = "pneumonia", pattern: str = "") -> FilmView:
    """The film as the model saw it, its overlay, and the warning and note that go beside it.

    Args:
        film: the decoded film.
        heatmap: its map towards pneumonia (or, for ``target="subtype"``, towards a bacterial
            pattern), float (size, size) in [0, 1].
        size: the model's input size.
        method: the explanation method's key (a key of :data:`pneumo.inference.explain.METHODS`).
        opacity: the overlay's opacity, 0 to 1.
        p_pneumonia: the film's calibrated probability.
        threshold: the operating threshold in effect.
        target: what the map explains, a key of :data:`pneumo.inference.explain.TARGETS`.
        pattern: the film's pattern (``"bacterial"``, ``"viral"``; "" for none).

    Returns:
        The :class:`FilmView`.

    Raises:
        ValueError: a bacterial-pattern map of a film that has no pattern.
    """
    if target not in explain.TARGETS:
        raise ValueError(f"unknown map target {target!r}; choose from {list(explain.TARGETS)}")
    if target == "subtype" and not pattern:
        raise ValueError("a bacterial-pattern map is shown only for a film read as pneumonia with a pattern")
    shown = to_display(film, size)
    name = explain.METHODS[method]
    subtype = target == "subtype"
    looked = ("where the subtype model looked for a bacterial pattern" if subtype
              else "where the model looked for pneumonia")
    return FilmView(film=shown, overlay=explain.overlay(shown, heatmap, opacity), method=method,
                    method_name=name, film_caption=f"The film as the model saw it ({size} x {size})",
                    overlay_caption=f"{name}: {looked}", warning=explain.attention_warning(heatmap),
                    note=subtype_map_note(pattern) if subtype else map_note(p_pneumonia, threshold),
                    target=target, legend=SUBTYPE_CAM_WORDS if subtype else CAM_WORDS)


def probability_text(p_pneumonia: float, threshold: float, interval: tuple[float, float] | None,
                     site_name: str = "") -> str:
    """The line under the verdict (markdown): the exact probability, the threshold and the interval
    (left out when none was measured, as for a worklist film whose result was not forwarded)."""
    site = f" (site {site_name})" if site_name else ""
    text = (f"P(pneumonia) = **{format_probability(p_pneumonia)}** · operating threshold "
            f"{format_probability(threshold)}{site}")
    if interval is None:
        return text
    low, high = interval
    return (f"{text} · 10-90% interval under mild test-time changes {format_probability(low)} to "
            f"{format_probability(high)}")


def pattern_line(item: Assessment) -> str | None:
    """``Pattern: bacterial, P(bacterial) = 81%`` for a film read as pneumonia with a pattern, else None."""
    if not item.pattern or item.p_bacterial is None:
        return None
    return pattern_text(item.pattern, item.p_bacterial)


def metadata_text(metadata: Mapping[str, str]) -> str | None:
    """The safe DICOM header fields on one line (markdown), or None for a film without them."""
    if not metadata:
        return None
    return "DICOM header: " + " · ".join(f"{METADATA_LABELS.get(k, k)}: **{v}**" for k, v in metadata.items())


def case_report(view: FilmView, item: Assessment, classifier: Classifier,
                interval: tuple[float, float]) -> CaseReport:
    """What the PDF case report of this film prints: the film and overlay shown, the classifier's figures."""
    return CaseReport(
        film=view.film, overlay=view.overlay, p_pneumonia=item.p_pneumonia, threshold=classifier.threshold,
        model_name=classifier.loaded.name, model_version=classifier.loaded.version, method=view.method_name,
        interval=interval, classes=tuple(classifier.classes), metadata=dict(item.film.metadata),
        attention_outside=view.warning is not None, site=classifier.site_name, warnings=item.warnings,
        out_of_scope=item.out_of_scope_reason if item.status == STATUS_REJECTED else "",
        pattern=item.pattern if item.p_bacterial is not None else "",
        p_bacterial=item.p_bacterial if item.pattern else None,
        subtype_threshold=classifier.subtype.threshold if item.pattern and classifier.subtype is not None else None,
        map_target=view.target, source=PurePath(item.source).name,
        scored_alike=scored_alike_words(classifier, item.p_pneumonia) or "",
    )


def scored_alike_words(classifier: Classifier, p_pneumonia: float | None) -> str | None:
    """How the model's out-of-fold training films scored alike turned out (:func:`nearby_words`), or None:
    under a site calibration, whose probabilities are not those the card stores, and for no probability."""
    if classifier.site is not None or p_pneumonia is None:
        return None
    return nearby_words(classifier.loaded.card, p_pneumonia, classifier.threshold)
