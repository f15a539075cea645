"""Data explorer (/explorer): what a data set of chest films holds.

By default the profile of the data the model in use was trained on (stored with the
model); or any Kaggle-layout folder on the server, or a ZIP of one uploaded here.
"""

from __future__ import annotations

import os

import pandas as pd
import streamlit as st

from app_pages import caches
from pneumo.data import default_data_dir
from pneumo.evaluation.profile import folder_signature
from pneumo.render import charts
from pneumo.render.charts import CHART_CONFIG

SOURCES = {
    "stored": "Training data of the model in use",
    "folder": "A folder on this server",
    "zip": "A ZIP upload",
}


def source_ui() -> str:
    """Where the data comes from; returns a key of SOURCES."""
    return st.radio("Data", list(SOURCES), format_func=SOURCES.get, horizontal=True,
                    key="explorer_source") or "stored"


def folder_ui() -> str:
    """The data folder to profile (default ``$PNEUMO_DATA_DIR``); returns the path typed."""
    default = os.environ.get("PNEUMO_DATA_DIR") or str(default_data_dir())
    return st.text_input("Data folder on the server", value=default, key="data_dir",
                         help="A Kaggle-layout root (train/val/test with NORMAL and PNEUMONIA "
                              "inside) or one split folder.").strip()


def zip_ui():
    """The ZIP uploader; returns the uploaded file or None."""
    return st.file_uploader("ZIP of a Kaggle-layout data set (at most 50 MB)", type=["zip"],
                            key="zip_uploader")


def stored_profile_ui() -> dict | None:
    """The profile stored with the model in use, or None after saying why there is none."""
    if caches.optional_model() is None:
        st.info("No model is loaded, so there is no stored training profile: profile a folder "
                "or a ZIP instead.")
        return None
    ref = caches.current_ref()
    profile = caches.stored_profile(*ref)
    if profile is None:
        st.info(f"Model {ref.name} was saved without a profile of its training data.")
    else:
        st.caption(f"The films model **{ref.name}** was trained and validated on, as profiled "
                   "while it was trained. Sample films are shown only for a folder.")
    return profile


def folder_profile_ui(root: str) -> tuple[dict | None, str | None]:
    """Profile a folder (cached); returns (profile, signature) or (None, None) after a warning."""
    if not root:
        st.info("Type a data folder's path.")
        return None, None
    try:
        signature = folder_signature(root)
        return caches.profile_folder(root, signature), signature
    except (OSError, ValueError) as err:  # missing, unreadable or empty folder
        st.warning(str(err), icon=":material/warning:")
        return None, None


def zip_profile_ui(upload) -> dict | None:
    """Profile an uploaded ZIP (cached by content); returns the profile or None after a warning."""
    if upload is None:
        st.info("Upload a ZIP holding train/val/test folders with NORMAL and PNEUMONIA inside "
                "(or NORMAL and PNEUMONIA alone). It is read in memory and never stored.")
        return None
    try:
        return caches.profile_zip(upload.getvalue())
    except ValueError as err:
        st.warning(str(err), icon=":material/warning:")
        return None


def summary_ui(profile: dict) -> None:
    """Headline counts."""
    columns = st.columns(4)
    columns[0].metric("Films", f"{profile['n_films']:,}")
    for column, (name, count) in zip(columns[1:3], profile["patients"].items()):
        column.metric(f"Patients, {name.lower()}", f"{count:,}")
    columns[3].metric("Unreadable films", f"{len(profile.get('unreadable', [])):,}")


def charts_ui(profile: dict) -> None:
    """The distribution charts, two per row."""
    pairs = [
        (charts.films_per_split_chart(profile), charts.subtypes_chart(profile)),
        (charts.patients_chart(profile), charts.films_per_patient_chart(profile)),
        (charts.image_size_chart(profile), charts.aspect_ratio_chart(profile)),
    ]
    for index, (left_chart, right_chart) in enumerate(pairs):
        left, right = st.columns(2)
        left.plotly_chart(left_chart, config=CHART_CONFIG, key=f"explorer_chart_{index}_a")
        right.plotly_chart(right_chart, config=CHART_CONFIG, key=f"explorer_chart_{index}_b")
    st.plotly_chart(charts.intensity_chart(profile), config=CHART_CONFIG, key="explorer_intensity")
    means = profile["intensity"].get("mean", {})
    if means:
        table = pd.DataFrame(means).T
        st.caption("Mean intensity of a film, per class (n films, mean, spread and 5th-95th percentiles):")
        st.table(table.astype({"n": int}) if "n" in table else table)


def checks_ui(profile: dict) -> None:
    """Leakage between splits, near-duplicate films and unreadable films."""
    st.subheader("Checks")
    leakage, dupes = profile["leakage"], profile["near_duplicates"]
    columns = st.columns(4)
    columns[0].metric("Patients in several splits", leakage["patients_in_several_splits"],
                      help="The same child's films in two splits make validation look better than it is.")
    columns[1].metric("Near-duplicate groups", dupes["groups"],
                      help="Films whose 16 x 16 thumbnails threshold to the same pattern.")
    columns[2].metric("Films in those groups", dupes["films"])
    columns[3].metric("Groups across patients", dupes["cross_patient_groups"])
    if leakage["patients_in_several_splits"]:
        st.warning("Some patients have films in more than one split: " + ", ".join(leakage["examples"]),
                   icon=":material/warning:")
    else:
        st.success("No patient has films in more than one split.", icon=":material/check:")
    if dupes["examples"]:
        with st.expander(f"Near-duplicate groups ({dupes['groups']})"):
            st.dataframe(pd.DataFrame({"films": [", ".join(g) for g in dupes["examples"]]}),
                         hide_index=True, width="stretch")
    if profile.get("unreadable"):
        with st.expander(f"Unreadable films ({len(profile['unreadable'])})"):
            st.dataframe(pd.DataFrame(profile["unreadable"]), hide_index=True, width="stretch")


def gallery_ui(root: str, signature: str) -> None:
    """A few films per class, as the model would see them."""
    st.subheader("Sample films")
    for name, films in caches.gallery(root, signature).items():
        if films:
            st.markdown(f"**{name}**")
            st.image([f for _, f in films], caption=[n for n, _ in films], width=150)


def main() -> None:
    """Draw the data explorer."""
    st.title("Data explorer")
    source = source_ui()
    root, signature = None, None
    if source == "folder":
        root = folder_ui()
        profile, signature = folder_profile_ui(root)
    elif source == "zip":
        profile = zip_profile_ui(zip_ui())
    else:
        profile = stored_profile_ui()
    if not profile:
        return
    if profile["n_films"] == 0:
        st.warning("No film in this data set could be read.", icon=":material/warning:")
        return
    summary_ui(profile)
    charts_ui(profile)
    checks_ui(profile)
    if root and signature:
        gallery_ui(root, signature)


main()
