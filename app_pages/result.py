"""One film's full result, drawn the same on every page that shows one (/diagnose, /demo).

Verdict and bars, pattern, film beside its overlay with the explanation controls, warnings
and downloads. Every number comes from pneumo's Classifier and every map from its Explainer
(through :mod:`app_pages.caches`); nothing here computes.
"""

from __future__ import annotations

from pathlib import PurePath

import streamlit as st

from app_pages import caches, widgets
from pneumo.inference.explain import METHODS, TARGETS
from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Assessment, Classifier
from pneumo.preprocess import to_display
from pneumo.render import charts, diagnosis, faithfulness_words, pdf, wording
from pneumo.render.charts import CHART_CONFIG

CAM_CHOICES = ("gradcam", "gradcam_pp", "scorecam")
TARGET_LABELS = {"pneumonia": "Pneumonia", "subtype": "Bacterial pattern"}  # explain.TARGETS as the picker names them


def explanation_controls_ui() -> tuple[str, float]:
    """Explanation method and overlay opacity; returns (method key, opacity)."""
    left, right = st.columns([3, 2])
    with left:
        method = st.radio("Explanation", CAM_CHOICES, format_func=METHODS.get, horizontal=True,
                          key="cam_method",
                          help="Grad-CAM is fastest; Score-CAM does not use gradients and takes "
                               "a few seconds.")
    with right:
        opacity = st.slider("Overlay opacity", 0.0, 1.0, 0.5, 0.05, key="opacity")
    return method or CAM_CHOICES[0], opacity


def map_target_ui(item: Assessment) -> str:
    """What the map explains: pneumonia, or (for a film read as pneumonia with a pattern) the bacterial pattern."""
    if not item.pattern:
        return "pneumonia"
    target = st.radio("Map of", tuple(TARGETS), format_func=TARGET_LABELS.get, horizontal=True, key="map_target",
                      help="Pneumonia: what made the film look like pneumonia. Bacterial pattern: what made "
                           "the subtype model read it as bacterial rather than viral.")
    return target or "pneumonia"


def metadata_ui(metadata: dict) -> None:
    """The safe DICOM header fields (never the patient's identity: pneumo.io does not read it)."""
    text = diagnosis.metadata_text(metadata)
    if text:
        st.markdown(text)


def probability_ui(item: Assessment, classifier: Classifier, interval: tuple[float, float]) -> None:
    """Verdict in words, the exact probability and the probability bars."""
    p = item.p_pneumonia
    widgets.verdict_ui(wording.verdict_for(p, classifier.threshold, classifier.classes), item.source)
    st.markdown(diagnosis.probability_text(p, classifier.threshold, interval, classifier.site_name))
    chart = charts.probability_bars(p, classifier.threshold, interval, classifier.classes)
    st.plotly_chart(chart, config=CHART_CONFIG, key="probability_bars")
    nearby = diagnosis.scored_alike_words(classifier, p)
    if nearby:
        st.caption(nearby)
    pattern_ui(item, classifier)


def pattern_ui(item: Assessment, classifier: Classifier) -> None:
    """For a film read as pneumonia: its pattern, P(bacterial) as bars, and what the pattern is not."""
    line = diagnosis.pattern_line(item)
    if line is None or classifier.subtype is None:
        return
    st.markdown(line)
    chart = charts.pattern_bars(item.p_bacterial, classifier.subtype.threshold, classifier.subtype.classes)
    st.plotly_chart(chart, config=CHART_CONFIG, key="pattern_bars")
    st.caption(wording.PATTERN_CAVEAT)


def overlay_ui(item: Assessment, file_id: str, classifier: Classifier,
               ref: caches.ModelRef) -> diagnosis.FilmView:
    """The film beside its overlay, with the method and opacity controls and the legend; returns what was shown."""
    target = map_target_ui(item)
    method, opacity = explanation_controls_ui()
    explainer = caches.explainer_for(classifier, ref, target)
    heatmap = caches.heatmap_for(explainer, ref, file_id, item.film, method)
    view = diagnosis.film_view(item.film, heatmap, classifier.size, method, opacity, item.p_pneumonia,
                               classifier.threshold, target, item.pattern)
    left, right = st.columns(2)
    with left:
        st.image(view.film, caption=view.film_caption, width="stretch")
    with right:
        st.image(view.overlay, caption=view.overlay_caption, width="stretch")
        if view.warning:
            st.warning(view.warning, icon=":material/warning:")
        if view.note:
            st.info(view.note, icon=":material/info:")
        caveat = faithfulness_words.method_caveat(caches.explanations(*ref), method, target)
        if caveat:
            st.caption(caveat)
        widgets.legend_ui(view.legend)
    return view


def film_ui(item: Assessment, file_id: str, classifier: Classifier, ref: caches.ModelRef) -> None:
    """Everything about one readable film: verdict, bars, film and overlay, downloads."""
    interval = caches.interval_for(classifier, ref, file_id, item.film)
    probability_ui(item, classifier, interval)
    for warning in item.warnings:
        st.warning(warning, icon=":material/warning:")
    if item.film.notes:
        st.info(" ".join(item.film.notes), icon=":material/info:")
    metadata_ui(item.film.metadata)
    view = overlay_ui(item, file_id, classifier, ref)
    downloads_ui(diagnosis.case_report(view, item, classifier, interval), PurePath(item.source).stem or "film")


def downloads_ui(case: pdf.CaseReport, stem: str) -> None:
    """Overlay PNG and one-page PDF report, both made in memory (the PDF only when asked for)."""
    left, right = st.columns(2)
    left.download_button("Overlay (PNG)", pdf.png_bytes(case.overlay), file_name=f"{stem}-overlay.png",
                         mime="image/png", icon=":material/image:", key="download_overlay",
                         on_click="ignore", width="stretch")
    right.download_button("Case report (PDF)", lambda: pdf.case_report_pdf(case),
                          file_name=f"{stem}-report.pdf", mime="application/pdf",
                          icon=":material/picture_as_pdf:", key="download_report",
                          on_click="ignore", width="stretch")


def item_ui(item: Assessment, file_id: str, classifier: Classifier, ref: caches.ModelRef) -> None:
    """One file: its result, or a warning in its place when it could not be read."""
    if item.status != STATUS_OK:
        st.warning(wording.problem_text(item), icon=":material/warning:")
        if item.status != STATUS_REJECTED or item.p_pneumonia is None or not st.toggle(
                "Show the result anyway (for an expert: outside what the model was made for)",
                key=f"show_anyway_{file_id}"):
            return
        st.error(f"OUT OF SCOPE: {item.out_of_scope_reason or item.message} The result below is not "
                 "a valid assessment.", icon=":material/block:")
    film_ui(item, file_id, classifier, ref)


def slide_images_ui(item: Assessment, file_id: str, classifier: Classifier, ref: caches.ModelRef) -> None:
    """The film beside its Grad-CAM overlay, large and without controls (the demo's presentation view)."""
    if item.film is None:
        st.warning(wording.problem_text(item), icon=":material/warning:")
        return
    if item.status != STATUS_OK or item.p_pneumonia is None:  # refused: the film, and why
        left, right = st.columns(2)
        left.image(to_display(item.film, classifier.size), caption="The film as the model saw it", width="stretch")
        right.warning(wording.problem_text(item), icon=":material/warning:")
        return
    heatmap = caches.heatmap_for(caches.explainer_for(classifier, ref), ref, file_id, item.film, CAM_CHOICES[0])
    view = diagnosis.film_view(item.film, heatmap, classifier.size, CAM_CHOICES[0], 0.5, item.p_pneumonia,
                               classifier.threshold)
    left, right = st.columns(2)
    left.image(view.film, caption=view.film_caption, width="stretch")
    right.image(view.overlay, caption=view.overlay_caption, width="stretch")
    if view.note:
        right.caption(view.note)
