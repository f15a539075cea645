"""Pneumo's web app: the frame around every page.

It sets the page up, says on every page what the tool is not, names the model in
use (or says what to do when there is none) and the site calibration in effect
(picked in the sidebar), and hands over to the page. Start it with
``streamlit run app.py`` (``make run``).
"""

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")  # before TensorFlow is first imported

import streamlit as st  # noqa: E402

from pneumo.store import ModelStoreError  # noqa: E402
from ui import common, state  # noqa: E402

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/diagnose.py", title="Diagnose", icon=":material/stethoscope:", url_path="diagnose"),
    st.Page("app_pages/explorer.py", title="Data explorer", icon=":material/dataset:", url_path="explorer"),
    st.Page("app_pages/model.py", title="Model card", icon=":material/fact_check:", url_path="model"),
]


def load_model_ui():
    """The session's model, or None after saying what is wrong and what to do."""
    try:
        return state.load_model(*state.current_ref())
    except ModelStoreError as err:
        common.model_error_ui(err)
        return None


st.set_page_config(page_title="Pneumo", page_icon=":material/pulmonology:", layout="wide")
navigation = st.navigation(PAGES)
loaded = load_model_ui()
common.header_ui(loaded)
common.sidebar_model_ui(loaded)
if loaded is not None:
    state.choose_site(common.sidebar_site_ui(state.site_names(loaded), state.chosen_site_name()))
    common.sidebar_active_site_ui(state.active_site(loaded))
navigation.run()
