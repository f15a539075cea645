"""Diagnose (/diagnose): films in; probability, verdict and where the model looked out.

Every number comes from pneumo's Classifier (the same one ``python -m pneumo predict``
uses, at the site calibration picked in the sidebar) and every map from its Explainer;
uploads stay in this session's memory. "Try an example" shows one of the example films
shipped in docs/examples/ (training films, and the page says so) with one click.
"""

from __future__ import annotations

import pandas as pd
import streamlit as st

from app_pages import caches, result, widgets
from pneumo.examples import Example, ExamplesError
from pneumo.inference.predict import STATUS_OK, Assessment, Classifier
from pneumo.io import FILM_TYPES
from pneumo.render import charts, demo, model_card, wording
from pneumo.render.charts import CHART_CONFIG

EXAMPLE_KEY = "example"  # session state: the example chosen with "try an example" (its file name), or None


def _clear_example() -> None:
    st.session_state[EXAMPLE_KEY] = None  # a new upload replaces the example on screen

def uploader_ui() -> list:
    """The film uploader; returns the uploaded files (in memory)."""
    files = st.file_uploader(
        "Chest films: JPEG, PNG, TIFF, BMP or DICOM, one or many",
        type=FILM_TYPES, accept_multiple_files=True, key="uploader", on_change=_clear_example,
        help="Frontal (AP) chest films of children aged one to five.",
    ) or []
    st.caption("Films are held in this session's memory only, never written to disk or logs; "
               "leaving this page or closing the tab clears them.")
    return files




















def examples_ui(examples: list[Example]) -> Example | None:
    """One click on an example film shows its result; returns the example chosen, if any."""
    if not examples:
        return None
    titles = {e.name: e.title for e in examples}
    choice = st.pills("Or try an example (training films, not new patients)", list(titles),
                      format_func=titles.get, key=EXAMPLE_KEY,
                      help="Films shipped with the app: normal, bacterial and viral films the model learned "
                           "from, a soft call, a rotated film and a picture that is not a film, to show the "
                           "guard. Click again to clear.")
    return next((e for e in examples if e.name == choice), None)


def example_ui(example: Example, classifier: Classifier, ref: caches.ModelRef) -> None:
    """An example film's result, introduced as the training film (or made file) it is."""
    try:
        item = caches.assess_uploads(classifier, ref, [example])[0]
    except ExamplesError as err:
        st.warning(str(err), icon=":material/warning:")
        return
    film = demo.example_films([example])[0]
    row = demo.gallery_rows([film], [item], classifier.threshold, classifier.classes,
                            caches.out_of_fold(*ref))[0]
    st.info(demo.example_caption(row), icon=":material/school:")
    result.item_ui(item, example.file_id, classifier, ref)


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
    observed = model_card.review_band_outcomes(classifier.loaded.card, classifier.threshold, classifier.site)
    st.markdown("**How a result is read.** The model gives a temperature-scaled probability of pneumonia, "
                "put into words by band:\n" + "\n".join(
                    f"- {line}" for line in wording.band_explanation(classifier.threshold, observed)))
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
    result.item_ui(assessments[chosen], files[chosen].file_id, classifier, ref)


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
    example = examples_ui(caches.example_films())
    caches.forget_other_films(ref, [f.file_id for f in files] + ([example.file_id] if example else []))
    if example is not None:
        if files:
            st.caption("Showing the example: click it again to clear it and see your uploads.")
        example_ui(example, classifier, ref)
        return
    if not files:
        empty_ui(classifier)
        return
    report_progress, remove_progress = progress_ui(len(files))
    assessments = caches.assess_uploads(classifier, ref, files, report_progress)
    remove_progress()
    if len(files) == 1:
        result.item_ui(assessments[0], files[0].file_id, classifier, ref)
    else:
        batch_ui(files, assessments, classifier, ref)


main()
