"""Pneumo's web app: the frame around every page.

It sets the page up, says on every page what the tool is not, names the model in
use (or says what to do when there is none) and the site calibration in effect
(picked in the sidebar), and hands over to the page. Start it with
``streamlit run app.py`` (``make run``).
"""

from pneumo.environment import quiet_tensorflow

quiet_tensorflow()  # before TensorFlow is first imported

import streamlit as st  # noqa: E402

from app_pages import caches, signin, widgets  # noqa: E402
from pneumo.store import ModelStoreError  # noqa: E402

PAGES = [
    st.Page("app_pages/home.py", title="Home", icon=":material/home:", default=True),
    st.Page("app_pages/diagnose.py", title="Diagnose", icon=":material/stethoscope:", url_path="diagnose"),
    st.Page("app_pages/worklist.py", title="Worklist", icon=":material/list_alt:", url_path="worklist"),
    st.Page("app_pages/explorer.py", title="Data explorer", icon=":material/dataset:", url_path="explorer"),
    st.Page("app_pages/model.py", title="Model card", icon=":material/fact_check:", url_path="model"),
    st.Page("app_pages/demo.py", title="Demo", icon=":material/slideshow:", url_path="demo"),
]


def load_model_ui():
    """The session's model, or None after saying what is wrong and what to do."""
    try:
        return caches.load_model(*caches.current_ref())
    except ModelStoreError as err:
        widgets.model_error_ui(err)
        return None


st.set_page_config(page_title="Pneumo", page_icon=":material/pulmonology:", layout="wide")
signin.require_sign_in(PAGES)  # with sign-in configured, nothing below runs until it is done
navigation = st.navigation(PAGES)
loaded = load_model_ui()
widgets.header_ui(loaded)
widgets.sidebar_model_ui(loaded)
if loaded is not None:
    caches.choose_site(widgets.sidebar_site_ui(caches.site_names(loaded), caches.chosen_site_name()))
    widgets.sidebar_active_site_ui(caches.active_site(loaded))
navigation.run()
