"""Drawing helpers more than one page uses. Each ``*_ui`` function draws and returns plain values."""

from __future__ import annotations

import html
from collections.abc import Callable

import streamlit as st

from pneumo.inference.sites import Site
from pneumo.render import model_card
from pneumo.render.palette import NEUTRAL_COLOUR
from pneumo.render.charts import colour_scale_strip
from pneumo.render.wording import CAM_WORDS, DISCLAIMER, NO_SITE_WORDS, Verdict, format_threshold, site_text
from pneumo.store import LoadedModel, ModelStoreError, store_dir

SITE_PICKER_KEY = "site_picker"

NO_MODEL_STEPS = """
**What to do**

1. Train a model: `python -m pneumo train --data ../shared/data/chest_xray --out model_store/NAME`,
   or restore the shipped one: `git checkout model_store`.
2. If the models live elsewhere, start the app with `PNEUMO_MODEL_STORE=/path/to/store`.
3. With several models in the store, write the one to use into `model_store/DEFAULT`.

Then reload this page. The data explorer works without a model.
"""


def header_ui(loaded: LoadedModel | None) -> None:
    """The line every page starts with: the disclaimer and the model in use."""
    model = (f"Model **{loaded.name}**, version `{loaded.version}`." if loaded is not None
             else "No model loaded.")
    st.caption(f":material/info: {DISCLAIMER} {model}")


def sidebar_model_ui(loaded: LoadedModel | None) -> None:
    """The model in use, in the sidebar under the navigation."""
    with st.sidebar:
        if loaded is None:
            st.caption("No model loaded")
            return
        st.caption(f"Model **{loaded.name}**  \nversion `{loaded.version}`  \ninput {loaded.input_size} x "
                   f"{loaded.input_size}, own threshold {format_threshold(loaded.threshold)}")


def sidebar_site_ui(names: list[str], active: str) -> str:
    """The site picker in the sidebar (when the model has sites); returns the name chosen, "" for none.

    Args:
        names: the sites calibrated for the model in use.
        active: the session's site ("" for none).
    """
    if not names:
        return ""
    options = ["", *names]
    with st.sidebar:
        chosen = st.selectbox(
            "Site calibration", options, index=options.index(active) if active in options else 0,
            format_func=lambda name: name or NO_SITE_WORDS, key=SITE_PICKER_KEY,
            help="A site's own temperature and threshold, fitted on its labelled films with "
                 "'python -m pneumo calibrate-site'; the model file is the same.")
    return chosen or ""


def sidebar_active_site_ui(site: Site | None) -> None:
    """Name the site calibration in effect (or its absence) in the sidebar, on every page."""
    with st.sidebar:
        st.caption(site_text(site))


def model_error_ui(error: ModelStoreError) -> None:
    """Say that the model store cannot be used, why, and what to do about it."""
    st.error(f"**The model cannot be used.** {error}", icon=":material/error:")
    st.markdown(NO_MODEL_STEPS)
    st.caption(f"Model store in effect: `{store_dir()}`")


def verdict_ui(verdict: Verdict, title: str | None = None) -> None:
    """The verdict in words, in its class colour (the same colour as its bar and table cell)."""
    prefix = (f"<span style='color:{NEUTRAL_COLOUR};font-weight:400'>{html.escape(title)}: </span>"
              if title else "")
    st.markdown(
        f"<div style='font-size:1.5rem;font-weight:650;color:{verdict.colour};"
        f"border-left:6px solid {verdict.colour};padding:0.2rem 0 0.2rem 0.75rem;margin:0.25rem 0'>"
        f"{prefix}{html.escape(verdict.text)}</div>",
        unsafe_allow_html=True,
    )


def legend_ui(words: str = CAM_WORDS) -> None:
    """The overlay's colour scale, drawn from the same stops as the overlay itself."""
    st.image(colour_scale_strip(), width="stretch")
    left, right = st.columns(2)
    left.caption("least weight")
    right.markdown(f"<div style='text-align:right;font-size:0.875rem;color:{NEUTRAL_COLOUR}'>most weight</div>",
                   unsafe_allow_html=True)
    st.caption(words)


def progress_ui(start_text: str, step_text: str,
                steps: int | None = None) -> tuple[Callable[[int, int], None], Callable[[], None]]:
    """A progress bar; returns (report(done, total), remove()).

    Args:
        start_text: shown before the first report.
        step_text: shown at each report, formatted with ``done`` and ``total``,
            e.g. ``"Read {done:,} of {total:,} films"``.
        steps: redraw the bar at most this many times over the whole run (None: at every report),
            so a run over thousands of films does not send thousands of updates to the browser.
    """
    bar = st.progress(0.0, text=start_text)
    last = {"step": -1}

    def report(done: int, total: int) -> None:
        if steps is not None:
            step = done * steps // max(total, 1)
            if step == last["step"]:
                return
            last["step"] = step
        bar.progress(done / max(total, 1), text=step_text.format(done=done, total=total))

    return report, bar.empty


def headline_ui(card: dict) -> bool:
    """The figures a stakeholder asks for first, in plain words and as tiles with their intervals.

    Returns whether the card had them (a card without cross-validation has none).
    """
    tiles = model_card.headline_tiles(card)
    if not tiles:
        return False
    st.markdown(model_card.plain_headline(card))
    for column, tile in zip(st.columns(len(tiles)), tiles):
        column.metric(tile["label"], tile["value"], help=tile["help"])
        column.caption(f"{tile['interval']} · {tile['study']}")
    st.caption(model_card.study_comparison_note(card) + " " + model_card.SHIFT_NOTE)
    return True
