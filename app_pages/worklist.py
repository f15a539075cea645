"""Worklist (/worklist): the films the DICOM listener read, for triage, and each one's stored result.

The listener (``python -m pneumo dicom-listener --work-dir DIR``) keeps every result in its
queue; this page reads that folder (``PNEUMO_WORKLIST=DIR``, ``make run WORKLIST=DIR``),
refreshes itself, and shows a chosen row's result from what was stored: the model never
runs here. Opening a result and downloading its report are written to the audit log.
"""

from __future__ import annotations

from dataclasses import replace

import pandas as pd
import streamlit as st

from app_pages import signin, widgets
from app_pages.caches import audit_log, worklist_dir
from pneumo.pacs.audit import DOWNLOADED_PDF, OPENED
from pneumo.pacs.worklist import (ORDER_LIKELY, ORDER_NEWEST, StoredResult, WorklistError, load_result, read_row,
                                  read_worklist)
from pneumo.render import charts, diagnosis, pdf, wording
from pneumo.render.charts import CHART_CONFIG
from pneumo.inference.explain import ATTENTION_WARNING

REFRESH_S = 5
ORDER_LABELS = {ORDER_LIKELY: "Most likely pneumonia first", ORDER_NEWEST: "Newest first"}
OPEN_KEY, TABLE_KEY = "worklist_open", "worklist_table_round"

SETUP_STEPS = """
**To fill this page**

1. Start the listener on the hospital's network, pointed at the PACS:
   `python -m pneumo dicom-listener --port 11112 --forward PACS_HOST:4242:ORTHANC --work-dir /var/lib/pneumo`
   (add `--keep-overlays` to see films and overlays here, `--keep-accession` to see accession numbers).
2. Start the app with the same folder: `make run WORKLIST=/var/lib/pneumo`
   (or `PNEUMO_WORKLIST=/var/lib/pneumo streamlit run app.py`).
3. Have the PACS or the modality send chest films to the listener (AE title `PNEUMO`, port 11112).
"""


def table_frame(rows, accession: bool) -> pd.DataFrame:
    """The worklist rows as the table shows them (times as stored, UTC)."""
    records = []
    for row in rows:
        read = row.read and row.p_pneumonia is not None
        record = {"received": row.received.replace("T", " ")[:19], "status": row.status,
                  "p_pneumonia": row.p_pneumonia if read else None,
                  "verdict": row.verdict,
                  "pattern": row.pattern or "", "p_bacterial": row.p_bacterial if row.pattern else None,
                  "note": row.reason or "" if row.status == "failed" or read else ""}
        if accession:
            record["accession"] = row.accession or ""
        records.append(record)
    columns = ["received", "status", "p_pneumonia", "verdict", "pattern", "p_bacterial", "note"]
    return pd.DataFrame(records, columns=columns + (["accession"] if accession else []))


def open_row(ids: list[str], key: str) -> None:
    """The table's selection callback: open the chosen row (by id, not by position) and audit it."""
    chosen = st.session_state[key].selection.rows
    if not chosen or chosen[0] >= len(ids):
        return
    st.session_state[OPEN_KEY] = ids[chosen[0]]
    st.session_state[TABLE_KEY] = st.session_state.get(TABLE_KEY, 0) + 1  # a fresh table: no stale highlight
    st.session_state["worklist_audit_pending"] = True
    st.session_state["worklist_rerun"] = True  # the fragment asks for a whole-page run to show it


@st.fragment(run_every=REFRESH_S)
def worklist_ui(folder: str, order: str) -> None:
    """The counts, the table of films read or waiting, and the refused films apart; refreshes itself."""
    if st.session_state.pop("worklist_rerun", False):
        st.rerun()
    try:
        worklist = read_worklist(folder, order)
    except WorklistError as err:
        st.warning(str(err), icon=":material/warning:")
        return
    counts = ", ".join(f"{n} {status}" for status, n in sorted(worklist.counts.items())) or "no films yet"
    st.caption(f"{counts} · refreshes every {REFRESH_S} s · times in UTC")
    ids = [row.id for row in worklist.rows]
    key = f"worklist_table_{st.session_state.get(TABLE_KEY, 0)}"
    st.dataframe(
        table_frame(worklist.rows, worklist.accession_kept), key=key, on_select=lambda: open_row(ids, key),
        selection_mode="single-row", hide_index=True, width="stretch",
        column_config={
            "received": st.column_config.TextColumn("Received"),
            "status": st.column_config.TextColumn("Status", help="queued, done or failed"),
            "p_pneumonia": st.column_config.NumberColumn("P(pneumonia)", format="%.4f"),
            "verdict": st.column_config.TextColumn("Verdict"),
            "pattern": st.column_config.TextColumn("Pattern"),
            "p_bacterial": st.column_config.NumberColumn("P(bacterial)", format="%.4f"),
            "note": st.column_config.TextColumn("Note", help="warnings of a read film; why a film failed"),
            "accession": st.column_config.TextColumn("Accession"),
        })
    if worklist.refused:
        st.markdown(f"**Not assessed** ({len(worklist.refused)}): outside what the model was made for, "
                    "or unreadable; each has a structured report in its study saying why.")
        st.dataframe(pd.DataFrame([{"received": r.received.replace("T", " ")[:19],
                                    **({"accession": r.accession or ""} if worklist.accession_kept else {}),
                                    "result": r.result_status, "reason": r.reason or ""} for r in worklist.refused]),
                     key="worklist_refused", hide_index=True, width="stretch",
                     column_config={"received": "Received", "accession": "Accession", "result": "Result",
                                    "reason": "Reason"})


def result_ui(folder: str, row_id: str, user: str) -> None:
    """One row's stored result: verdict, bars, pattern, checks, film and overlay if kept, PDF."""
    try:
        result, film, overlay = load_result(folder, row_id)
        # the table's selection is cleared once a row opens: the heading says which film this is
        row = read_row(folder, row_id)
        label = row.label_words if row is not None else ""
    except WorklistError as err:
        st.warning(str(err), icon=":material/warning:")
        return
    log = audit_log(folder)
    if st.session_state.pop("worklist_audit_pending", False):
        try:
            log.record(user, OPENED, row_id)
        except OSError as err:  # an audited result is not shown unaudited
            st.error(f"The audit log {log.path} cannot be written ({err.strerror or err}), so the result "
                     "is not shown; ask the operator to fix it.", icon=":material/block:")
            st.session_state.pop(OPEN_KEY, None)
            return
    st.subheader(f"Result: film {label}" if label else "Result")
    if result.p_pneumonia is None:
        st.warning(f"Not assessed: {result.message}", icon=":material/warning:")
        return
    widgets.verdict_ui(wording.verdict_for(result.p_pneumonia, result.threshold, result.classes))
    st.markdown(diagnosis.probability_text(result.p_pneumonia, result.threshold, result.interval, result.site))
    st.plotly_chart(charts.probability_bars(result.p_pneumonia, result.threshold, result.interval, result.classes),
                    config=CHART_CONFIG, key="worklist_probability_bars")
    if result.scored_alike:
        st.caption(result.scored_alike)
    if result.pattern and result.p_bacterial is not None:
        st.markdown(wording.pattern_text(result.pattern, result.p_bacterial))
        if result.subtype_threshold is not None:
            st.plotly_chart(charts.pattern_bars(result.p_bacterial, result.subtype_threshold),
                            config=CHART_CONFIG, key="worklist_pattern_bars")
        st.caption(wording.PATTERN_CAVEAT)
    for warning in result.warnings:
        st.warning(warning, icon=":material/warning:")
    if result.notes:
        st.info(" ".join(result.notes), icon=":material/info:")
    text = diagnosis.metadata_text(result.metadata)
    if text:
        st.markdown(text)
    images_ui(result, film, overlay)
    st.caption(f"Model {result.model_name}, version {result.model_version}; stored when the listener read "
               "the film (the model did not run again for this view).")
    st.download_button("Case report (PDF)", lambda: report_pdf(log, user, row_id, result, film, overlay, label),
                       file_name=f"pneumo-{row_id[:12]}-report.pdf", mime="application/pdf",
                       icon=":material/picture_as_pdf:", key="worklist_report", on_click="ignore")


def report_pdf(log, user: str, row_id: str, result: StoredResult, film, overlay, label: str = "") -> bytes:
    """The PDF of a stored result, made on request and written to the audit log."""
    log.record(user, DOWNLOADED_PDF, row_id)
    return pdf.case_report_pdf(replace(result.case_report(film, overlay), source=label))


def images_ui(result: StoredResult, film, overlay) -> None:
    """The kept film and overlay with the legend, or where to find the overlay when none was kept."""
    if film is None or overlay is None:
        st.info(pdf.NO_IMAGES_WORDS, icon=":material/image_not_supported:")
        return
    left, right = st.columns(2)
    left.image(film, caption="The film as the model saw it", width="stretch")
    with right:
        st.image(overlay, caption=f"{result.method}: where the model looked for pneumonia", width="stretch")
        if result.attention_outside:
            st.warning(ATTENTION_WARNING, icon=":material/warning:")
        note = wording.map_note(result.p_pneumonia, result.threshold)
        if note:
            st.info(note, icon=":material/info:")
        widgets.legend_ui()


def main() -> None:
    """Draw the worklist page."""
    st.title("Worklist")
    folder = worklist_dir()
    if not folder:
        st.info("No listener folder is set for this app, so there is no worklist to show.",
                icon=":material/inbox:")
        st.markdown(SETUP_STEPS)
        return
    order = st.radio("Order", tuple(ORDER_LABELS), format_func=ORDER_LABELS.get, horizontal=True,
                     key="worklist_order") or ORDER_LIKELY
    worklist_ui(folder, order)
    row_id = st.session_state.get(OPEN_KEY)
    if row_id:
        st.divider()
        result_ui(folder, row_id, signin.current_user())


main()
