"""Home (/): what Pneumo is and is not, the model in use with its validation figures, how uploads are handled."""

import streamlit as st

from app_pages import caches
from pneumo.render import model_card
from pneumo.render.wording import format_number, format_probability

WHAT_IT_IS = """
Pneumo reads a **frontal chest film of a child** and estimates **how likely pneumonia is**,
shows **where the model looked**, and says **how far to trust it**.

- **It assists a clinician; it does not diagnose.** A film it calls normal does not rule
  pneumonia out, and a film it flags still needs a clinician's reading.
- **It was trained on anterior-posterior films of children aged one to five.** It is not
  meant for adults, neonates, lateral views or CT, and it tells neither bacterial from viral
  pneumonia nor pneumonia from other findings. A DICOM file whose header says it is one of
  those is refused before the model runs, with the reason.
- The probability is **calibrated** on films the model never saw (temperature scaling), so that
  a film shown as 80% is meant to have pneumonia about 80 times in 100; the reliability diagram
  on the model card shows how closely that holds. The verdict uses the model's **operating
  threshold**, chosen to miss few pneumonias; between it and 50% a film reads **possible
  pneumonia: review**.
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


def headline_ui(top: dict) -> None:
    """The headline figures with their intervals as metrics."""
    columns = st.columns(len(model_card.FIGURE_WORDS))
    for column, (key, words) in zip(columns, model_card.FIGURE_WORDS):
        figure = top["figures"].get(key) or {}
        column.metric(words, format_number(figure.get("value")),
                      help=None if figure.get("low") is None else
                      f"95% interval {figure['low']:.3f} to {figure['high']:.3f}")


def main() -> None:
    """Draw the home page."""
    loaded = caches.require_model()
    card = loaded.card
    st.title("Pneumo")
    st.subheader("A chest-film assistant for pediatric pneumonia")
    st.markdown(WHAT_IT_IS)

    st.header("The model in use")
    top = model_card.headline(card)
    st.markdown(f"**{loaded.name}** (version `{loaded.version}`): {model_card.architecture_words(card)}, "
                f"{loaded.input_size} x {loaded.input_size} input, operating threshold "
                f"{format_probability(loaded.threshold)}. "
                + (f"Figures {top['kind']}, with 95% intervals:" if top else
                   "Figures on validation films of patients the model never saw in training:"))
    if top:
        headline_ui(top)
        st.caption(model_card.headline_sentence(card) + " " + model_card.SHIFT_NOTE)
    else:
        validation_ui(card)
    st.page_link("app_pages/model.py", label="The full model card", icon=":material/fact_check:")

    st.header("Your films")
    st.markdown(UPLOADS)
    st.page_link("app_pages/diagnose.py", label="Assess films", icon=":material/stethoscope:")
    st.page_link("app_pages/explorer.py", label="Explore the training data", icon=":material/dataset:")


main()
