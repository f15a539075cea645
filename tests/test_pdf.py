"""pneumo.render.pdf: PNG and PDF bytes made in memory."""

import re
import zlib
from datetime import datetime, timezone

import numpy as np
import pytest
from PIL import Image

from pneumo.render import pdf


def _case(**changes) -> pdf.CaseReport:
    film = np.tile(np.linspace(0, 255, 64, dtype=np.uint8), (64, 1))
    overlay = np.stack([film, film[::-1], film], axis=-1)
    fields = dict(film=film, overlay=overlay, p_pneumonia=0.8123, threshold=0.6, model_name="m",
                  model_version="0123456789ab", method="Grad-CAM", interval=(0.7, 0.9),
                  metadata={"view": "AP", "study_date": "20240101"},
                  created=datetime(2026, 1, 2, 3, 4, tzinfo=timezone.utc))
    return pdf.CaseReport(**{**fields, **changes})


def test_png_round_trips():
    image = np.arange(48, dtype=np.uint8).reshape(4, 4, 3)
    import io

    assert np.array_equal(np.asarray(Image.open(io.BytesIO(pdf.png_bytes(image)))), image)


@pytest.mark.parametrize("bad", [np.zeros((4, 4), dtype=np.float32), np.zeros((4, 4, 4), dtype=np.uint8)])
def test_png_refuses_other_arrays(bad):
    with pytest.raises(ValueError, match="uint8"):
        pdf.png_bytes(bad)


def _page_text(document: bytes) -> str:
    """The text drawn by the PDF's content streams (fpdf2 deflates them)."""
    texts = []
    for stream in re.findall(rb"stream\r?\n(.*?)\r?\nendstream", document, re.S):
        try:
            texts.append(zlib.decompress(stream).decode("latin-1"))
        except zlib.error:
            continue
    return "".join(texts).replace("\\(", "(").replace("\\)", ")")


def test_pdf_is_one_page_with_the_facts():
    document = pdf.case_report_pdf(_case(attention_outside=True))
    assert document.startswith(b"%PDF")
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", document)) == 1
    text = _page_text(document)
    for fact in ("Pneumonia likely, 81%", "0.8123", "0.6000", "m, version 0123456789ab", "Grad-CAM",
                 "2026-01-02 03:04 UTC", "AP", "at the film's edge", "it does not diagnose"):
        assert fact in text, fact


def test_pdf_says_how_films_scored_alike_turned_out_and_stays_one_page():
    words = ("Measured out-of-fold (block folds): of the 32 training films the model scored between 20% and 30%, "
             "22 (69%) had pneumonia, in a set where 74% had it (where fewer of the children filmed have "
             "pneumonia, that share is lower).")
    document = pdf.case_report_pdf(_case(attention_outside=True, scored_alike=words))
    assert len(re.findall(rb"/Type\s*/Page\b(?!s)", document)) == 1
    text = " ".join(_page_text(document).split())
    assert "Films scored alike" in text and "22 (69%) had pneumonia" in text
    assert "Films scored alike" not in _page_text(pdf.case_report_pdf(_case()))


def test_pdf_names_the_film_it_is_about_and_only_when_named():
    assert "Film" in _page_text(pdf.case_report_pdf(_case(source="ward3-bed12.png")))
    assert "ward3-bed12.png" in _page_text(pdf.case_report_pdf(_case(source="ward3-bed12.png")))
    assert "Film " not in _page_text(pdf.case_report_pdf(_case()))


def test_pdf_of_a_film_read_as_normal_says_its_map_is_no_finding():
    normal = _page_text(pdf.case_report_pdf(_case(p_pneumonia=0.05)))
    assert "not a finding" in normal and "No pneumonia detected" in normal
    assert "not a finding" not in _page_text(pdf.case_report_pdf(_case()))


def test_pdf_survives_names_outside_latin1():
    assert pdf.case_report_pdf(_case(model_name="модель", interval=None)).startswith(b"%PDF")


def test_pdf_names_the_review_band_and_the_site():
    text = _page_text(pdf.case_report_pdf(_case(p_pneumonia=0.48, threshold=0.2112)))
    assert "Possible pneumonia: review, 48%" in text and "Pneumonia likely, 48%" not in text
    assert "0.6314 0.3608 0 rg (Possible pneumonia" in text  # in the review colour, #a15c00
    assert "0.5000 and above: Pneumonia likely" in text and "review band" in text
    assert "Site calibration" in text and "none (model's own operating point)" in text
    assert "north_ward" in _page_text(pdf.case_report_pdf(_case(site="north_ward")))


def test_pdf_colours_are_the_palettes():
    from pneumo.render import palette

    def fill(colour: str) -> str:  # how fpdf2 writes an RGB colour: 0-1 to four decimals, zeros bare
        return " ".join(f"{c / 255:.4f}".rstrip("0").rstrip(".") or "0" for c in palette.rgb(colour))

    text = _page_text(pdf.case_report_pdf(_case(attention_outside=True)))
    assert "0.702 0.149 0.1176 rg (Pneumonia likely" in text  # the pneumonia colour, #b3261e
    assert fill(palette.CLASS_COLOURS["PNEUMONIA"]) == "0.702 0.149 0.1176"
    assert "0.3529 0.3922 0.4314 rg" in text and fill(palette.PDF_MUTED_COLOUR) == "0.3529 0.3922 0.4314"
    assert "0.6275 0.3529 0 rg" in text and fill(palette.PDF_WARNING_COLOUR) == "0.6275 0.3529 0"
    assert "0.9412 0.9569 0.9686 rg" in text and fill(palette.PDF_PANEL_COLOUR) == "0.9412 0.9569 0.9686"


def test_pdf_prints_the_warnings_and_an_out_of_scope_reason():
    plain = _page_text(pdf.case_report_pdf(_case()))
    assert "OUT OF SCOPE" not in plain and "read this result with extra care" not in plain
    warned = _page_text(pdf.case_report_pdf(_case(
        warnings=("The header gives the patient's age as 6 to 11 years; read this result with extra care.",),
        out_of_scope="The image does not look like the frontal chest films.")))
    assert "6 to 11 years" in warned and "read this result with extra care" in warned
    assert "OUT OF SCOPE: The image does not look like the frontal chest films." in warned


def test_pdf_of_a_film_with_a_pattern_prints_it_and_the_caveat():
    text = _page_text(pdf.case_report_pdf(_case(pattern="bacterial", p_bacterial=0.8061, subtype_threshold=0.6312)))
    assert "Pattern" in text and "bacterial, P(bacterial) = 0.8061 (threshold 0.6312: bacterial at or above)" in text
    assert all(part in text for part in ("not a culture", "antibiotics"))  # PATTERN_CAVEAT, wrapped
    assert "Grad-CAM, towards pneumonia" in text and "towards a bacterial" not in text
    subtype_map = _page_text(pdf.case_report_pdf(_case(pattern="viral", p_bacterial=0.2, map_target="subtype")))
    assert "towards a bacterial pattern" in subtype_map and "weighed most towards a bacterial" in subtype_map
    assert "pattern reads viral" in subtype_map  # its map is no finding


def test_pdf_without_a_pattern_says_nothing_of_one():
    text = _page_text(pdf.case_report_pdf(_case(p_pneumonia=0.05)))
    assert "Pattern" not in text and "bacterial" not in text and "culture" not in text


def test_pdf_without_images_says_where_the_overlay_is():
    document = pdf.case_report_pdf(_case(film=None, overlay=None))
    text = _page_text(document)
    assert "secondary capture in the series 'Pneumo overlay'" in text and "0.8123" in text
    assert b"/Subtype /Image" not in document and b"/Subtype/Image" not in document
    with_images = pdf.case_report_pdf(_case())
    assert b"/Subtype /Image" in with_images  # the check above would see images if there were any
