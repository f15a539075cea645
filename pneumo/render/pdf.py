"""Downloads made in memory: an overlay as PNG and a one-page PDF case report.

Nothing here touches the disk: every function takes arrays and numbers and
returns bytes, so an uploaded film never leaves memory on its way to a download.
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

import numpy as np
from fpdf import FPDF
from PIL import Image

from pneumo.inference.explain import ATTENTION_WARNING
from pneumo.render.charts import colour_scale_strip
from pneumo.render.palette import (
    PDF_MUTED_COLOUR,
    PDF_PANEL_COLOUR,
    PDF_TEXT_COLOUR,
    PDF_WARNING_COLOUR,
    rgb,
)
from pneumo.render.wording import (
    CAM_WORDS,
    DISCLAIMER,
    NO_SITE_WORDS,
    PATTERN_CAVEAT,
    SUBTYPE_CAM_WORDS,
    bands_text,
    format_probability,
    map_note,
    subtype_map_note,
    verdict_for,
)

PAGE_MARGIN_MM = 15
IMAGE_WIDTH_MM = 85
MIN_IMAGE_WIDTH_MM = 60
FOOTER_MM = 22
NO_IMAGES_WORDS = ("No image is printed: the listener that read this film keeps no images. The film's "
                   "overlay is in its study in the PACS, as the secondary capture in the series "
                   "'Pneumo overlay'.")
BELOW_IMAGES_MM = 55
"""What is printed under the images at most (captions, scale, map words, note, attention warning)."""


@dataclass(frozen=True)
class CaseReport:
    """What a case report shows about one film.

    Attributes:
        film: the film as the model saw it, uint8 (h, w); None when no image was kept (a
            worklist result from a listener that keeps no images): the page then says where
            the overlay is instead.
        overlay: the explanation over the film, RGB uint8 (h, w, 3); None with ``film``.
        p_pneumonia: the calibrated probability Classifier returned.
        threshold: the operating threshold in effect (the site's when a site is active).
        model_name: the model's name in the store.
        model_version: the model's version (first 12 hex digits of its sha256).
        method: the explanation method's name, e.g. "Grad-CAM".
        interval: the 10-90% interval of P(pneumonia) under test-time changes, or None.
        classes: class names in label order.
        metadata: header fields safe to show (DICOM view, modality, study date).
        attention_outside: whether the map's weight lies mostly at the film's border.
        created: when the report was made (UTC); now when not given.
        site: the site calibration in effect, "" for the model's own operating point.
        warnings: sentences printed beside the result (an age outside the trained range).
        out_of_scope: the refusal reason of a film shown anyway by an expert ("" otherwise).
        pattern: ``"bacterial"`` or ``"viral"`` for a film read as pneumonia with a subtype model, else "".
        p_bacterial: the subtype model's calibrated P(bacterial | pneumonia), with a pattern only.
        subtype_threshold: the subtype model's threshold (bacterial at or above), with a pattern only.
        map_target: what the overlay explains: ``"pneumonia"`` or ``"subtype"`` (the bacterial pattern).
        source: which film this is, as the user named it (the uploaded file's name), printed first;
            "" for none.
    """

    film: np.ndarray | None
    overlay: np.ndarray | None
    p_pneumonia: float
    threshold: float
    model_name: str
    model_version: str
    method: str
    interval: tuple[float, float] | None = None
    classes: tuple[str, ...] = ("NORMAL", "PNEUMONIA")
    metadata: Mapping[str, str] = field(default_factory=dict)
    attention_outside: bool = False
    created: datetime | None = None
    site: str = ""
    warnings: tuple[str, ...] = ()
    out_of_scope: str = ""
    pattern: str = ""
    p_bacterial: float | None = None
    subtype_threshold: float | None = None
    map_target: str = "pneumonia"
    source: str = ""
    scored_alike: str = ""  # how the training films scored in this film's tenth of the scale turned out


def png_bytes(image: np.ndarray) -> bytes:
    """Encode a uint8 image, (h, w) grey or (h, w, 3) RGB, as PNG bytes.

    Raises:
        ValueError: the array is not uint8 of one of those shapes.
    """
    array = np.asarray(image)
    if array.dtype != np.uint8 or not (array.ndim == 2 or (array.ndim == 3 and array.shape[2] == 3)):
        raise ValueError(f"expected uint8 (h, w) or (h, w, 3), got {array.dtype} {array.shape}")
    buffer = io.BytesIO()
    Image.fromarray(array).save(buffer, format="PNG")
    return buffer.getvalue()


def case_report_pdf(report: CaseReport) -> bytes:
    """Lay out one A4 page: verdict, figures, film and overlay side by side, disclaimer.

    Args:
        report: what to print.

    Returns:
        The PDF file's bytes.
    """
    created = report.created or datetime.now(timezone.utc)
    verdict = verdict_for(report.p_pneumonia, report.threshold, report.classes)
    pdf = FPDF(format="A4", unit="mm")
    pdf.set_margins(PAGE_MARGIN_MM, PAGE_MARGIN_MM)
    pdf.set_auto_page_break(False)
    pdf.set_title("Pneumo case report")
    pdf.set_creator("Pneumo")
    pdf.add_page()
    _write_heading(pdf, created)
    _write_verdict(pdf, verdict.text, verdict.colour)
    _write_cautions(pdf, report)
    _write_facts(pdf, _facts(report))
    _write_pattern_caveat(pdf, report)
    _write_images(pdf, report)
    _write_footer(pdf, report.attention_outside)
    return bytes(pdf.output())


def _facts(report: CaseReport) -> list[tuple[str, str]]:
    facts = [("Film", report.source)] if report.source else []
    facts.append(("P(pneumonia)", format_probability(report.p_pneumonia)))
    if report.interval is not None:
        low, high = report.interval
        facts.append(("10-90% interval", f"{format_probability(low)} to {format_probability(high)} "
                                         "(under mild test-time changes of the film)"))
    if report.scored_alike:
        facts.append(("Films scored alike", report.scored_alike))
    facts += [
        ("Operating threshold", f"{format_probability(report.threshold)} (pneumonia at or above)"),
        ("Verdict bands", bands_text(report.threshold)),
        ("Model", f"{report.model_name}, version {report.model_version}"),
        ("Site calibration", report.site or NO_SITE_WORDS),
    ]
    if report.pattern and report.p_bacterial is not None:
        rule = (f" (threshold {format_probability(report.subtype_threshold)}: bacterial at or above)"
                if report.subtype_threshold is not None else "")
        facts.append(("Pattern", f"{report.pattern}, P(bacterial) = {format_probability(report.p_bacterial)}{rule}"))
    towards = "a bacterial pattern" if report.map_target == "subtype" else "pneumonia"
    facts.append(("Explanation", f"{report.method}, towards {towards}"))
    facts += [(key.replace("_", " ").capitalize(), value) for key, value in report.metadata.items()]
    return facts


def _write_pattern_caveat(pdf: FPDF, report: CaseReport) -> None:
    """Under the facts of a film with a pattern: what the pattern is and is not."""
    if not report.pattern:
        return
    pdf.set_y(pdf.get_y() - 3)
    pdf.set_font("Helvetica", "I", 9)
    pdf.multi_cell(0, 4.5, _latin1(PATTERN_CAVEAT), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(3)


def _latin1(text: str) -> str:
    """The PDF's core font prints Latin-1 only; anything else becomes '?'."""
    return text.encode("latin-1", "replace").decode("latin-1")


def _write_heading(pdf: FPDF, created: datetime) -> None:
    pdf.set_font("Helvetica", "B", 18)
    pdf.cell(0, 10, "Pneumo case report", new_x="LMARGIN", new_y="NEXT")
    pdf.set_font("Helvetica", "", 10)
    pdf.set_text_color(*rgb(PDF_MUTED_COLOUR))
    stamp = created.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    pdf.cell(0, 6, f"Date: {stamp}", new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*rgb(PDF_TEXT_COLOUR))
    pdf.ln(3)


def _write_verdict(pdf: FPDF, text: str, colour: str) -> None:
    pdf.set_font("Helvetica", "B", 16)
    pdf.set_text_color(*rgb(colour))
    pdf.cell(0, 10, _latin1(text), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*rgb(PDF_TEXT_COLOUR))
    pdf.ln(1)


def _write_cautions(pdf: FPDF, report: CaseReport) -> None:
    """The refusal of a film shown anyway, and the warnings, in the warning colour under the verdict."""
    lines = [f"OUT OF SCOPE: {report.out_of_scope} The result below is not a valid assessment."
             ] if report.out_of_scope else []
    lines += list(report.warnings)
    if not lines:
        return
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_text_color(*rgb(PDF_WARNING_COLOUR))
    for line in lines:
        pdf.multi_cell(0, 5, _latin1(line), new_x="LMARGIN", new_y="NEXT")
    pdf.set_text_color(*rgb(PDF_TEXT_COLOUR))
    pdf.ln(2)


def _write_facts(pdf: FPDF, facts: list[tuple[str, str]]) -> None:
    for key, value in facts:
        pdf.set_font("Helvetica", "B", 10)
        pdf.cell(45, 6, _latin1(key))
        pdf.set_font("Helvetica", "", 10)
        pdf.multi_cell(0, 6, _latin1(value), new_x="LMARGIN", new_y="NEXT")
    pdf.ln(4)


def _write_images(pdf: FPDF, report: CaseReport) -> None:
    if report.film is None or report.overlay is None:
        pdf.set_font("Helvetica", "I", 10)
        pdf.multi_cell(0, 5, _latin1(NO_IMAGES_WORDS), new_x="LMARGIN", new_y="NEXT")
        return
    top = pdf.get_y()
    # Smaller images when the facts above run long (a pattern, header fields, warnings): one page always.
    side = max(MIN_IMAGE_WIDTH_MM, min(IMAGE_WIDTH_MM, pdf.h - PAGE_MARGIN_MM - FOOTER_MM - BELOW_IMAGES_MM - top))
    left = PAGE_MARGIN_MM
    right = pdf.w - PAGE_MARGIN_MM - side
    pdf.image(Image.fromarray(report.film), x=left, y=top, w=side, h=side)
    pdf.image(Image.fromarray(report.overlay), x=right, y=top, w=side, h=side)
    pdf.set_y(top + side + 1)
    pdf.set_font("Helvetica", "", 9)
    pdf.set_x(left)
    pdf.cell(side, 5, "The film as the model saw it", align="C")
    pdf.set_x(right)
    pdf.cell(side, 5, _latin1(f"{report.method} overlay"), align="C",
             new_x="LMARGIN", new_y="NEXT")
    strip_top = pdf.get_y() + 1
    pdf.image(Image.fromarray(colour_scale_strip(256, 8)), x=right, y=strip_top, w=side, h=3)
    pdf.set_y(strip_top + 3.5)
    pdf.set_x(right)
    pdf.cell(side / 2, 4, "least weight", align="L")
    pdf.cell(side / 2, 4, "most weight", align="R", new_x="LMARGIN", new_y="NEXT")
    pdf.ln(2)
    subtype_map = report.map_target == "subtype"
    pdf.multi_cell(0, 4.5, _latin1(SUBTYPE_CAM_WORDS if subtype_map else CAM_WORDS), new_x="LMARGIN", new_y="NEXT")
    note = subtype_map_note(report.pattern) if subtype_map else map_note(report.p_pneumonia, report.threshold)
    if note:
        pdf.multi_cell(0, 4.5, _latin1(note), new_x="LMARGIN", new_y="NEXT")


def _write_footer(pdf: FPDF, attention_outside: bool) -> None:
    if attention_outside:
        pdf.ln(2)
        pdf.set_font("Helvetica", "B", 10)
        pdf.set_text_color(*rgb(PDF_WARNING_COLOUR))
        pdf.multi_cell(0, 5, _latin1(ATTENTION_WARNING), new_x="LMARGIN", new_y="NEXT")
        pdf.set_text_color(*rgb(PDF_TEXT_COLOUR))
    pdf.set_y(pdf.h - PAGE_MARGIN_MM - FOOTER_MM)
    pdf.set_font("Helvetica", "B", 10)
    pdf.set_fill_color(*rgb(PDF_PANEL_COLOUR))
    pdf.multi_cell(0, 5.5, _latin1(DISCLAIMER), border=1, fill=True, padding=2, align="L",
                   new_x="LMARGIN", new_y="NEXT")
