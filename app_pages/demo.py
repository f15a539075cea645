"""Demo (/demo): films with the model's verdict beside the label of their folder, and a presentation view.

The films are the examples shipped in docs/examples/ (training films, and the page says
so), a sample of a Kaggle-layout folder on the server, or of a ZIP uploaded here (read in
memory). Each is read by the same Classifier as /diagnose; "Open" shows its full result.
The presentation switch shows one film at a time in large type, with next and previous.
"""

from __future__ import annotations

import html
import os

import streamlit as st

from app_pages import caches, result, widgets
from pneumo.data import default_data_dir
from pneumo.evaluation import profile
from pneumo.inference.predict import Assessment, Classifier
from pneumo.preprocess import to_display
from pneumo.render import demo
from pneumo.render.wording import format_percent, site_text

SOURCES = {"examples": "Example films", "folder": "A folder on this server", "zip": "A ZIP upload"}
SORT_KEY, PRESENT_KEY, SLIDE_KEY, OPEN_KEY = "demo_sort", "presentation", "demo_slide", "demo_open"
COLUMNS = 4
THUMBNAIL = 224
MARK_WORDS = {True: ":green[:material/check_circle: correct]", False: ":red[:material/cancel: incorrect]",
              None: ":gray[:material/remove_circle: no verdict]"}
PRESENTATION_CSS = """<style>
[data-testid="stSidebar"], [data-testid="stSidebarCollapsedControl"] {display: none;}
[data-testid="stMainBlockContainer"] p, [data-testid="stMainBlockContainer"] li {font-size: 1.5rem;}
[data-testid="stMainBlockContainer"] button p {font-size: 1.4rem;}
.pneumo-slide-title {font-size: 2.6rem; font-weight: 700; margin: 0.2rem 0;}
.pneumo-slide-verdict {font-size: 3.2rem; font-weight: 750; margin: 0.4rem 0;}
.pneumo-slide-line {font-size: 1.8rem; margin: 0.2rem 0;}
</style>"""


def source_ui() -> str:
    """Where the films come from; returns a key of SOURCES."""
    return st.radio("Films", list(SOURCES), format_func=SOURCES.get, horizontal=True, key="demo_source") or "examples"


def films_ui(source: str) -> tuple[list[demo.GalleryFilm], list]:
    """The films of the chosen source as (gallery films, items to score); empty after saying why."""
    if source == "examples":
        examples = caches.example_films()
        if not examples:
            st.info("This installation has no example films (docs/examples/ is missing): pick a folder or a ZIP.")
            return [], []
        st.caption("Training films shipped with the app, not new patients: the model learned from each chest "
                   "film here, so the gallery flatters it. Each one's out-of-fold probability, from the "
                   "ensemble member that never saw the patient (random patient folds, in-distribution), is "
                   "shown beside the shipped model's.")
        return demo.example_films(examples), list(examples)
    per_class = st.slider("Films per class", 1, 24, 6, key="demo_per_class",
                          help="A fixed random sample of each of NORMAL and PNEUMONIA.")
    if source == "folder":
        return folder_films_ui(per_class)
    return zip_films_ui(per_class)


def folder_films_ui(per_class: int) -> tuple[list[demo.GalleryFilm], list]:
    """A sample of a Kaggle-layout folder on the server."""
    default = os.environ.get("PNEUMO_DATA_DIR") or str(default_data_dir())
    root = st.text_input("Data folder on the server", value=default, key="demo_dir",
                         help="A Kaggle-layout root (train/val/test with NORMAL and PNEUMONIA inside) or one "
                              "split folder.").strip()
    if not root:
        st.info("Type a data folder's path.")
        return [], []
    try:
        sample = profile.sample_folder_films(root, per_class)
    except (OSError, ValueError) as err:
        st.warning(str(err), icon=":material/warning:")
        return [], []
    films = demo.folder_films([name for name, _, _ in sample], [label for _, label, _ in sample])
    return films, [caches.ServerFilm.of_path(name, path) for name, _, path in sample]


def zip_films_ui(per_class: int) -> tuple[list[demo.GalleryFilm], list]:
    """A sample of an uploaded Kaggle-layout ZIP, read in memory."""
    upload = st.file_uploader("ZIP of a Kaggle-layout data set (at most 50 MB)", type=["zip"], key="demo_zip")
    if upload is None:
        st.info("Upload a ZIP holding train/val/test folders with NORMAL and PNEUMONIA inside (or NORMAL and "
                "PNEUMONIA alone). It is read in memory and never stored.")
        return [], []
    try:
        sample, problems = profile.sample_zip_films(upload.getvalue(), per_class)
    except ValueError as err:
        st.warning(str(err), icon=":material/warning:")
        return [], []
    for problem in problems:
        st.warning(problem, icon=":material/warning:")
    films = demo.folder_films([name for name, _, _ in sample], [label for _, label, _ in sample])
    return films, [caches.ServerFilm(name, f"zip:{upload.file_id}:{name}", data) for name, _, data in sample]


def sort_ui() -> str:
    """The gallery's order; returns a key of demo.SORTS."""
    return st.selectbox("Order", list(demo.SORTS), format_func=demo.SORTS.get, key=SORT_KEY) or "order"


def thumbnail(item: Assessment):
    """The film as the model saw it, small; None when it could not be read."""
    return None if item.film is None else to_display(item.film, THUMBNAIL)


def card_ui(row: dict, item: Assessment) -> None:
    """One film of the gallery: thumbnail, label, verdict, correct or not, and its Open button."""
    picture = thumbnail(item)
    if picture is None:
        st.markdown(":gray[(no picture: the file could not be read)]")
    else:
        st.image(picture, width="stretch")
    st.markdown(f"**{row['title']}**  \n{MARK_WORDS[row['correct']]}  \nLabel: {row['label']}  \n"
                f"Verdict: {row['verdict']}")
    if row["p_out_of_fold"] is not None:
        st.caption(f"Out of fold (random folds): {format_percent(row['p_out_of_fold'])}")
    st.button("Open", key=f"open_{row['index']}", on_click=open_film, args=(row["index"],),
              icon=":material/open_in_full:")


def open_film(index: int) -> None:
    st.session_state[OPEN_KEY] = index  # the next run opens it in a dialog, once


def gallery_ui(rows: list[dict], assessments: list[Assessment]) -> None:
    """The films in a grid, in the rows' order."""
    st.caption(f"{demo.tally(rows)}. Label: the film's folder; verdict: the model's reading at the "
               "operating threshold in effect.")
    share = demo.training_share(rows)
    if share and st.session_state.get("demo_source", "examples") != "examples":  # the examples say so above
        st.warning(share, icon=":material/school:")
    for start in range(0, len(rows), COLUMNS):
        for column, row in zip(st.columns(COLUMNS), rows[start:start + COLUMNS]):
            with column, st.container(border=True):
                card_ui(row, assessments[row["index"]])


@st.dialog("Film", width="large")
def opened_ui(row: dict, item: Assessment, file_id: str, classifier: Classifier, ref: caches.ModelRef) -> None:
    """A film's full result (bars, pattern, overlay) in a dialog."""
    st.markdown(demo.example_caption(row))
    result.item_ui(item, file_id, classifier, ref)


def move(step: int, count: int) -> None:
    st.session_state[SLIDE_KEY] = min(max(st.session_state.get(SLIDE_KEY, 0) + step, 0), count - 1)


def presentation_ui(rows: list[dict], assessments: list[Assessment], items: list, classifier: Classifier,
                    ref: caches.ModelRef) -> None:
    """One film at a time in large type, with previous and next, for a projector.

    The sidebar is hidden here, so a site calibration in effect is named on the slide.
    """
    st.html(PRESENTATION_CSS)
    slide = min(max(st.session_state.get(SLIDE_KEY, 0), 0), len(rows) - 1)
    row = rows[slide]
    item = assessments[row["index"]]
    back, where, forward = st.columns([1, 3, 1])
    back.button("Previous", key="previous", disabled=slide == 0, on_click=move, args=(-1, len(rows)),
                icon=":material/arrow_back:", width="stretch")
    where.markdown(f"<div class='pneumo-slide-line' style='text-align:center'>Film {slide + 1} of {len(rows)}</div>",
                   unsafe_allow_html=True)
    forward.button("Next", key="next", disabled=slide == len(rows) - 1, on_click=move, args=(1, len(rows)),
                   icon=":material/arrow_forward:", width="stretch")
    st.markdown(f"<div class='pneumo-slide-title'>{html.escape(row['title'])}</div>"
                f"<div class='pneumo-slide-verdict' style='color:{row['colour']}'>{html.escape(row['verdict'])}</div>"
                f"<div class='pneumo-slide-line'>Label: {html.escape(row['label'])}</div>",
                unsafe_allow_html=True)
    st.markdown(f"### {MARK_WORDS[row['correct']]}")
    result.slide_images_ui(item, items[row["index"]].file_id, classifier, ref)
    note = demo.training_film_note(row)
    if note:
        st.markdown(note)
    if classifier.site is not None:
        st.caption(site_text(classifier.site))


def main() -> None:
    """Draw the demo page: films in, gallery or presentation out."""
    loaded = caches.require_model()
    ref = caches.current_ref()
    classifier = caches.load_classifier(*ref, *caches.site_ref(caches.active_site(loaded)))
    presenting = st.toggle("Presentation", key=PRESENT_KEY, help="Large type and one film at a time, for a projector.")
    if not presenting:
        st.title("Demo")
    # In presentation the choices fold away but stay drawn, so they keep their values.
    with st.expander("Films and order") if presenting else st.container():
        films, items = films_ui(source_ui())
        order = sort_ui() if films else "order"
    if not films:
        return
    report, remove = widgets.progress_ui(f"Reading {len(items)} films...", "Read {done} of {total} films")
    assessments = caches.assess_uploads(classifier, ref, items, report)
    remove()
    rows = demo.sort_rows(demo.gallery_rows(films, assessments, classifier.threshold, classifier.classes,
                                            caches.out_of_fold(*ref)), order)
    if presenting:
        presentation_ui(rows, assessments, items, classifier, ref)
        return
    opened = st.session_state.pop(OPEN_KEY, None)
    if opened is not None and opened < len(rows):
        row = next(r for r in rows if r["index"] == opened)
        opened_ui(row, assessments[opened], items[opened].file_id, classifier, ref)
    gallery_ui(rows, assessments)


main()
