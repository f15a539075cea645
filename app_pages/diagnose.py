"""Diagnose (/diagnose): films in; probability, verdict and where the model looked out.

Every number comes from pneumo's Classifier (the same one ``python -m pneumo predict``
uses, at the site calibration picked in the sidebar) and every map from its Explainer;
uploads stay in this session's memory.
"""

from __future__ import annotations

from pathlib import PurePath

import pandas as pd
import streamlit as st

from app_pages import caches, widgets
from pneumo.inference.explain import METHODS, TARGETS
from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Assessment, Classifier
from pneumo.io import FILM_TYPES
from pneumo.render import charts, diagnosis, pdf, wording
from pneumo.render.charts import CHART_CONFIG

CAM_CHOICES = ("gradcam", "gradcam_pp", "scorecam")
TARGET_LABELS = {"pneumonia": "Pneumonia", "subtype": "Bacterial pattern"}  # explain.TARGETS as the picker names them


def uploader_ui() -> list:
    """The film uploader; returns the uploaded files (in memory)."""
    files = st.file_uploader(
        "Chest films: JPEG, PNG, TIFF, BMP or DICOM, one or many",
        type=FILM_TYPES, accept_multiple_files=True, key="uploader",
        help="Frontal (AP) chest films of children aged one to five.",
    ) or []
    st.caption("Films are held in this session's memory only, never written to disk or logs; "
               "leaving this page or closing the tab clears them.")
    return files


def explanation_controls_ui() -> tuple[str, float]:
    """Explanation method and overlay opacity; returns (method key, opacity)."""
    left, right = st.columns([3, 2])
    with left:
        method = st.radio("Explanation", CAM_CHOICES, format_func=METHODS.get, horizontal=True,
                          key="cam_method",
                          help="Grad-CAM is fastest; Score-CAM does not use gradients and takes "
                               "about a second.")
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


def results_table_ui(assessments: list[Assessment], classifier: Classifier) -> int | None:
    """The batch as a sortable table with a CSV download; returns the chosen row, if any."""
    rows = wording.results_rows(assessments, classifier.threshold, classifier.classes)
    table = pd.DataFrame(rows).style.map(wording.verdict_colour_css, subset=["verdict"])
    event = st.dataframe(
        table, key="results", on_select="rerun", selection_mode="single-row", hide_index=True,
        width="stretch",
        column_config={
            "file": st.column_config.TextColumn("File"),
            "p_pneumonia": st.column_config.NumberColumn("P(pneumonia)", format="%.4f"),
            "verdict": st.column_config.TextColumn("Verdict"),
            "pattern": st.column_config.TextColumn("Pattern", help="Bacterial or viral, for films read as "
                                                                    "pneumonia only"),
            "p_bacterial": st.column_config.NumberColumn("P(bacterial)", format="%.4f"),
            "status": st.column_config.TextColumn("Status"),
            "message": st.column_config.TextColumn("Message"),
        },
    )
    st.download_button("Results (CSV)", wording.results_csv(assessments), file_name="pneumo-results.csv",
                       mime="text/csv", icon=":material/download:", key="download_csv", on_click="ignore")
    chosen = event.selection.rows if event is not None else []
    return chosen[0] if chosen else None


def empty_ui(classifier: Classifier) -> None:
    """Before any upload: what to do, and how a probability will be read."""
    st.info("Upload one or more films to see how likely pneumonia is and where the model looked.",
            icon=":material/upload:")
    st.markdown("**How a result is read.** The model gives a calibrated probability of pneumonia, "
                "put into words by band:\n" + "\n".join(
                    f"- {line}" for line in wording.band_explanation(classifier.threshold)))
    st.plotly_chart(charts.verdict_scale(classifier.threshold, classifier.classes), config=CHART_CONFIG,
                    key="verdict_scale")


def progress_ui(total: int):
    """A progress bar for a batch; returns (report(done, total), remove())."""
    if total < 2:
        return None, lambda: None
    return widgets.progress_ui(f"Assessing {total} films...", "Assessed {done} of {total} films")


def batch_ui(files: list, assessments: list[Assessment], classifier: Classifier, ref: caches.ModelRef) -> None:
    """Several files: warnings for unreadable ones, the table, and the chosen film in full."""
    for item in assessments:
        if item.status != STATUS_OK:
            st.warning(wording.problem_text(item), icon=":material/warning:")
    chosen = results_table_ui(assessments, classifier)
    readable = [i for i, a in enumerate(assessments) if a.status == STATUS_OK]
    if chosen is None and not readable:
        return
    st.divider()
    if chosen is None:
        st.caption("Showing the first readable film; choose a row in the table to see another.")
        chosen = readable[0]
    item_ui(assessments[chosen], files[chosen].file_id, classifier, ref)


def main() -> None:
    """Draw the diagnose page: uploads in, results out."""
    loaded = caches.require_model()
    ref = caches.current_ref()
    classifier = caches.load_classifier(*ref, *caches.site_ref(caches.active_site(loaded)))
    caches.load_explainer(*ref)  # built and warmed up before the first upload, not after it
    st.title("Assess chest films")
    if classifier.subtype_error:
        st.warning(f"{classifier.subtype_error} Films are read without a bacterial-or-viral pattern.",
                   icon=":material/warning:")
    files = uploader_ui()
    caches.forget_other_films(ref, [f.file_id for f in files])
    if not files:
        empty_ui(classifier)
        return
    report_progress, remove_progress = progress_ui(len(files))
    assessments = caches.assess_uploads(classifier, ref, files, report_progress)
    remove_progress()
    if len(files) == 1:
        item_ui(assessments[0], files[0].file_id, classifier, ref)
    else:
        batch_ui(files, assessments, classifier, ref)


main()
