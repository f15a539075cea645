"""Intended-use checks from the DICOM header: refused before the model runs, reasons in words,
never a tag's value; a header that says nothing leaves the image checks to decide."""

from __future__ import annotations

import collections
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset

from pneumo.dicom import header_facts
from pneumo.guard.header import REASONS, check_header, normalised_words
from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Classifier
from pneumo.io import HeaderFacts, read_film
from tests.support.data import real_films
from tests.support.dicom_films import encode_dicom

CARD = Path(__file__).resolve().parent.parent / "model_store" / "cnn160x5" / "card.json"


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    """A real pediatric film's grey levels (uint8)."""
    return np.asarray(Image.open(real_films("PNEUMONIA")[0]).convert("L"))


@pytest.fixture(scope="module")
def classifier(tiny_model):
    return Classifier(tiny_model)


def wrapped(grey: np.ndarray, **elements) -> bytes:
    """The real film as a DX file with the given header fields (Modality DX unless given)."""
    return encode_dicom(grey, **elements)


# ---------------------------------------------------------------- the rules


@pytest.mark.parametrize(("modality", "words"), [
    ("CT", "This is a CT image, not a radiograph"), ("MR", "This is an MRI image"),
    ("US", "This is an ultrasound image"), ("NM", "nuclear medicine"), ("PT", "a PET image"),
    ("XA", "X-ray angiography"), ("MG", "a mammogram"), ("RF", "fluoroscopy"),
])
def test_a_modality_other_than_radiography_is_refused_in_words(modality, words):
    verdict = check_header(HeaderFacts(modality=modality))
    assert verdict.refused and verdict.kind == "modality"
    assert words in verdict.reason


def test_an_unknown_modality_code_is_refused_without_quoting_it():
    verdict = check_header(HeaderFacts(modality="ZZTOP"))
    assert verdict.refused and "ZZTOP" not in verdict.reason


@pytest.mark.parametrize("modality", ["CR", "DX", "RG", "OT", ""])
def test_radiography_and_unspecified_modalities_go_on(modality):
    assert not check_header(HeaderFacts(modality=modality)).refused


@pytest.mark.parametrize("body_part", ["CHEST", "THORAX", "Tórax", "chest_pa", "BRUSTKORB", "LUNG",
                                       "CHESTABDOMEN", "PA CHEST", "", "  "])
def test_chest_body_parts_in_several_spellings_go_on(body_part):
    assert not check_header(HeaderFacts(modality="DX", body_part=normalised_words(body_part))).refused


@pytest.mark.parametrize(("body_part", "words"), [
    ("KNEE", "of the knee, not the chest"), ("HAND", "the hand"), ("TSPINE", "the thoracic spine"),
    ("THORACIC SPINE", "the spine"), ("ABDOMEN", "the abdomen"), ("SKULL", "the skull"),
    ("PELVIS", "the pelvis"), ("CHEST RIBS", "the ribs"),
])
def test_other_body_parts_are_refused_naming_them(body_part, words):
    verdict = check_header(HeaderFacts(modality="DX", body_part=body_part))
    assert verdict.refused and verdict.kind == "body_part" and words in verdict.reason


def test_an_unknown_body_part_is_refused_without_quoting_it():
    verdict = check_header(HeaderFacts(modality="DX", body_part="XYZZY"))
    assert verdict.refused and "XYZZY" not in verdict.reason.upper()


@pytest.mark.parametrize("facts", [
    HeaderFacts(view_position="LL"), HeaderFacts(view_position="RL"),
    HeaderFacts(view_codes=("399173006",)), HeaderFacts(view_meanings=("right lateral",)),
])
def test_lateral_views_are_refused(facts):
    verdict = check_header(facts)
    assert verdict.refused and verdict.kind == "lateral" and verdict.reason == REASONS["lateral"]


@pytest.mark.parametrize("position", ["AP", "PA", "", "LLD"])
def test_frontal_views_go_on(position):
    assert not check_header(HeaderFacts(view_position=position)).refused


def test_an_oblique_view_is_refused():
    assert check_header(HeaderFacts(view_position="RAO")).kind == "oblique"


@pytest.mark.parametrize(("age", "refused", "warned"), [
    (0.3, False, "under 1 year"), (1.0, False, ""), (5.9, False, ""), (6.0, False, "6 to 11 years"),
    (13.0, False, "12 to 17 years"), (17.99, False, "12 to 17 years"), (18.0, True, ""), (81.0, True, ""),
    (None, False, ""),
])
def test_age_bands(age, refused, warned):
    verdict = check_header(HeaderFacts(modality="DX", age_years=age))
    assert verdict.refused is refused
    if refused:
        assert verdict.kind == "adult" and "adult (18 years or over)" in verdict.reason
        assert verdict.reason == REASONS["adult"]  # one sentence for every adult: the band, never the age
    assert (warned in verdict.warnings[0]) if warned else verdict.warnings == ()


def test_raw_detector_data_is_refused():
    assert check_header(HeaderFacts(modality="DX", for_processing=True)).kind == "presentation"


def test_the_first_refusal_in_order_gives_the_reason():
    facts = HeaderFacts(modality="CT", body_part="KNEE", view_position="LL", age_years=45)
    assert check_header(facts).kind == "modality"
    assert check_header(HeaderFacts(body_part="KNEE", view_position="LL")).kind == "body_part"


def test_no_header_says_nothing():
    assert check_header(None) == check_header(HeaderFacts())
    assert not check_header(None).refused and check_header(None).warnings == ()


# ---------------------------------------------------------------- reading the header


@pytest.mark.parametrize(("elements", "years"), [
    ({"PatientAge": "004Y"}, 4.0), ({"PatientAge": "018M"}, 1.5), ({"PatientAge": "026W"}, 26 * 7 / 365.25),
    ({"PatientAge": "045Y"}, 45.0),
    ({"PatientBirthDate": "20200301", "StudyDate": "20230301"}, 3.0),
    ({"PatientBirthDate": "19500101", "AcquisitionDate": "20240101"}, 74.0),
    ({"PatientAge": "", "PatientBirthDate": "20200101"}, None),  # no date to count to
    ({"PatientAge": "4 years"}, None), ({"PatientBirthDate": "2020XX01", "StudyDate": "20240101"}, None),
    ({"PatientBirthDate": "20250101", "StudyDate": "20240101"}, None),  # born after the study
])
def test_age_from_the_header(elements, years):
    dataset = Dataset()
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    age = header_facts(dataset).age_years
    assert age == pytest.approx(years, abs=0.01) if years is not None else age is None


def test_header_facts_from_a_real_file(grey):
    data = wrapped(grey, Modality="CR", BodyPartExamined="chest", ViewPosition="pa", PatientAge="003Y",
                   PresentationIntentType="FOR PRESENTATION")
    facts = read_film(data).header
    assert facts == HeaderFacts(modality="CR", body_part="CHEST", view_position="PA", age_years=3.0)


def test_a_for_processing_storage_class_is_raw_data(grey):
    dataset = Dataset()
    dataset.SOPClassUID = "1.2.840.10008.5.1.4.1.1.1.1.1"  # Digital X-Ray Image Storage - For Processing
    assert header_facts(dataset).for_processing
    assert read_film(wrapped(grey, PresentationIntentType="FOR PROCESSING")).header.for_processing


def test_raster_films_carry_no_header():
    assert read_film(real_films("NORMAL")[0]).header is None


# ---------------------------------------------------------------- in the classifier


@pytest.mark.parametrize(("elements", "kind"), [
    ({"Modality": "CT", "PatientAge": "051Y"}, "modality"),
    ({"BodyPartExamined": "KNEE"}, "body_part"),
    ({"ViewPosition": "LL"}, "lateral"),
    ({"PatientAge": "081Y", "BodyPartExamined": "CHEST"}, "adult"),
    ({"PatientBirthDate": "19790101", "StudyDate": "20240315"}, "adult"),
])
def test_a_refusing_header_stops_the_film_before_the_model(classifier, grey, elements, kind, monkeypatch):
    calls = []
    monkeypatch.setattr(classifier, "_judge", lambda *a: calls.append(a) or (_ for _ in ()).throw(AssertionError))
    result = classifier.assess(wrapped(grey, **elements), name="film.dcm")
    assert result.status == STATUS_REJECTED and calls == []
    assert result.p_pneumonia is None and result.label is None
    assert result.message == result.out_of_scope_reason == check_header(read_film(wrapped(grey, **elements)).header).reason
    row = result.row()
    assert row["status"] == "rejected" and row["p_pneumonia"] == "" and row["message"] == result.message
    for keyword in ("PatientAge", "PatientBirthDate", "StudyDate"):  # no age or date reaches the message
        if keyword in elements:
            value = elements[keyword]
            assert value not in row["message"] and value.lstrip("0").rstrip("Y") not in row["message"]


def test_reading_damaged_ages_and_dates_logs_nothing(grey, caplog, recwarn):
    data = wrapped(grey, PatientAge="4 years", PatientBirthDate="2020XX01", StudyDate="2024-13-45")
    recwarn.clear()
    caplog.clear()
    with caplog.at_level("DEBUG"):
        assert read_film(data).header.age_years is None
    said = " ".join([r.getMessage() for r in caplog.records] + [str(w.message) for w in recwarn])
    for value in ("4 years", "2020XX01", "2024-13-45"):
        assert value not in said


def test_a_child_outside_the_trained_ages_is_read_with_a_warning(classifier, grey):
    plain = classifier.assess(wrapped(grey), name="plain.dcm")
    older = classifier.assess(wrapped(grey, PatientAge="009Y", BodyPartExamined="CHEST"), name="older.dcm")
    assert plain.status == older.status == STATUS_OK
    assert older.p_pneumonia == pytest.approx(plain.p_pneumonia, abs=1e-6)
    assert older.warnings and "6 to 11 years" in older.warnings[0]
    assert older.message.startswith(older.warnings[0]) and "009" not in older.message
    assert plain.warnings == () and "age" not in plain.message


def test_a_header_refusal_in_a_batch_keeps_the_order(classifier, grey):
    items = [("a.dcm", wrapped(grey)), ("b.dcm", wrapped(grey, Modality="MR")), ("c.dcm", wrapped(grey))]
    results = list(classifier.assess_many(items))
    assert [r.source for r in results] == ["a.dcm", "b.dcm", "c.dcm"]
    assert [r.status for r in results] == [STATUS_OK, STATUS_REJECTED, STATUS_OK]


def test_public_files_of_other_modalities_are_refused_naming_them(classifier):
    """pydicom's public test collection: every file whose header names a modality other than
    projection radiography is refused in words, whether or not its pixels can be read."""
    import warnings

    import pydicom
    from pydicom.data import get_testdata_files

    from pneumo.guard.header import MODALITY_WORDS

    named = {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        for path in get_testdata_files("*.dcm"):
            try:
                modality = str(pydicom.dcmread(path, stop_before_pixels=True, force=True).get("Modality", ""))
            except Exception:
                continue
            if modality in MODALITY_WORDS:
                named[path] = modality
    assert len(named) >= 60 and {"CT", "MR", "US", "NM"} <= set(named.values())
    results = list(classifier.assess_many([(path, path) for path in named]))
    for result in results:
        words = MODALITY_WORDS[named[result.source]]
        assert result.status == STATUS_REJECTED, (result.source, result.message)
        assert result.message.startswith(f"This is {words}, not a radiograph"), result.message
    # The model card states these figures: they must be what this measures.
    stated = json.loads(CARD.read_text())["header_checks"]["public_files"]
    assert stated["n"] == stated["refused_naming_modality"] == len(results)
    assert stated["modalities"] == dict(collections.Counter(named.values()))


def test_a_bare_big_endian_data_set_without_pixels_is_refused_by_its_header(classifier):
    from pydicom.data import get_testdata_file

    from pneumo.io import FilmReadError, looks_like_bare_dicom

    path = get_testdata_file("ExplVR_BigEndNoMeta.dcm")  # an RT plan: no preamble, big endian
    data = open(path, "rb").read()
    assert data[128:132] != b"DICM" and looks_like_bare_dicom(data)
    with pytest.raises(FilmReadError, match="no pixel data") as raised:
        read_film(data)
    assert raised.value.header.modality == "RTPLAN"
    result = classifier.assess(data, name="plan")
    assert result.status == STATUS_REJECTED and result.message.startswith("This is a radiotherapy plan")
