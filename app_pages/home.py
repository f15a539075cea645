"""Home (/): what Pneumo is and is not, the model in use with its validation figures, how uploads are handled."""

import streamlit as st

from app_pages import caches, widgets
from pneumo.render import model_card
from pneumo.render.wording import format_number, format_probability, site_text

WHAT_IT_IS = """
Pneumo reads a **frontal chest film of a child** and estimates **how likely pneumonia is**,
shows **where the model looked**, and says **how far to trust it**.

- **It assists a clinician; it does not diagnose.** A film it calls normal does not rule
  pneumonia out, and a film it flags still needs a clinician's reading.
- **It was trained on anterior-posterior films of children aged one to five.** It is not
  meant for adults, neonates, lateral views or CT, and it tells neither bacterial from viral
  pneumonia nor pneumonia from other findings. A DICOM file whose header names an adult, a
  lateral view or another modality is refused before the model runs, with the reason; one
  whose header gives an age under one year is read with a warning.
- The probability is **temperature-scaled** on out-of-fold films (each scored by a model that
  never saw that child), but it is **not an exact chance**: on the training hospital's own films it
  runs low in the middle of the scale, and on new patients the model flags more healthy children
  than there. Each result on the diagnose and worklist pages and in their PDFs therefore says how the training
  films scored alike turned out (where the model's card holds them), and the reliability diagram
  on the model card shows the whole scale. The verdict uses the model's **operating
  threshold**, chosen to miss few pneumonias; between it and 50% a film reads **possible
  pneumonia: review**, and the model card says how many of its films in that band had pneumonia.
"""

UPLOADS = """
Films you upload are **held in memory only** for your session: they are never written to
disk, never logged and never sent anywhere, and they are gone when you close the tab or
remove them. Reports and overlays you download are made in memory too. DICOM files are read
for their pixels and a few safe header fields (view, modality, study date); patient name,
ID and birth date are never read.
"""


def validation_ui(card: dict) -> None:
    """The card's headline validation figures as metrics."""
    validation = card.get("validation", {})
    columns = st.columns(5)
    columns[0].metric("Sensitivity", format_number(validation.get("sensitivity")),
                      help="Share of pneumonia films called pneumonia.")
    columns[1].metric("Specificity", format_number(validation.get("specificity")),
                      help="Share of normal films called normal.")
    columns[2].metric("ROC AUC", format_number(validation.get("roc_auc")))
    columns[3].metric("Calibration error (ECE)", format_number(validation.get("ece")))
    columns[4].metric("Validation films", f"{validation.get('n', 0):,}")


def main() -> None:
    """Draw the home page."""
    loaded = caches.require_model()
    card = loaded.card
    st.title("Pneumo")
    st.subheader("A chest-film assistant for pediatric pneumonia")
    if not widgets.headline_ui(card):
        validation_ui(card)
    st.markdown(WHAT_IT_IS)

    st.header("The model in use")
    top = model_card.headline(card)
    st.markdown(f"**{loaded.name}** (version `{loaded.version}`): {model_card.architecture_words(card)}, "
                f"{loaded.input_size} x {loaded.input_size} input, operating threshold "
                f"{format_probability(loaded.threshold)}."
                + ("" if top else " Figures above: validation films of patients the model never saw in training."))
    site = caches.active_site(loaded)
    if site is not None:
        st.markdown(f"**In effect now:** {site_text(site)}")
    if top:
        st.caption(model_card.headline_sentence(card))
    st.page_link("app_pages/model.py", label="The full model card", icon=":material/fact_check:")
    st.page_link("app_pages/demo.py", label="Example films and the demo gallery", icon=":material/slideshow:")

    st.header("Your films")
    st.markdown(UPLOADS)
    st.page_link("app_pages/diagnose.py", label="Assess films", icon=":material/stethoscope:")
    st.page_link("app_pages/explorer.py", label="Explore the training data", icon=":material/dataset:")


main()
