"""pneumo.pacs.results: a real film's result as a structured report and a secondary capture.

Each object is written with pydicom to bytes and read back with pydicom and highdicom, so
what is checked is what a PACS would receive.
"""

from __future__ import annotations

import io
import logging
import shutil
import subprocess
from dataclasses import replace

import highdicom as hd
import numpy as np
import pytest
from PIL import Image
from pydicom import DataElement, Dataset, dcmread
from pydicom.uid import (
    ComprehensiveSRStorage,
    CTImageStorage,
    DigitalXRayImageStorageForPresentation,
    SecondaryCaptureImageStorage,
    generate_uid,
)

from pneumo.inference.explain import Explainer
from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, STATUS_REJECTED, Assessment, Classifier
from pneumo.inference.sites import Site
from pneumo.pacs import results
from pneumo.preprocess import to_model_input
from pneumo.render.diagnosis import film_view, scored_alike_words
from pneumo.render.wording import REVIEW_WORDS
from tests.support.data import skip_or_fail
from tests.support.dicom_films import IDENTIFIERS, SAFE_FIELDS, encode_dicom

STUDY_UID = "1.2.826.0.1.3680043.10.1.2"
SERIES_UID = "1.2.826.0.1.3680043.10.1.3"
Comprehensive3DSR = "1.2.840.10008.5.1.4.1.1.88.34"


def film_bytes(path, **changes) -> bytes:
    """A real film (JPEG) as an 8-bit DX file with patient identifiers and its study's UIDs."""
    grey = np.asarray(Image.open(path).convert("L"))
    fields = {**IDENTIFIERS, **SAFE_FIELDS, "PatientSex": "F", "StudyInstanceUID": STUDY_UID,
              "SeriesInstanceUID": SERIES_UID, **changes}
    return encode_dicom(grey, **fields)


def written(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def read_sr(data: bytes) -> tuple[Dataset, hd.sr.MeasurementsAndQualitativeEvaluations]:
    """The SR read back by pydicom, and its one measurement group as highdicom reads it."""
    dataset = dcmread(io.BytesIO(data))
    report = hd.sr.Comprehensive3DSR.from_dataset(dataset)
    groups = report.content.get_image_measurement_groups()
    assert len(groups) == 1
    return dataset, groups[0]


def measured(group, role: str) -> float | None:
    found = group.get_measurements(name=results.CODES[role])
    assert len(found) <= 1
    return float(found[0].value) if found else None


def evaluated(group, role: str):
    found = group.get_qualitative_evaluations(name=results.CODES[role])
    assert len(found) <= 1
    return found[0].value if found else None


def comment(group) -> str:
    texts = [item.TextValue for item in group[0].ContentSequence
             if item.ValueType == "TEXT" and item.ConceptNameCodeSequence[0].CodeValue == "121106"]
    assert len(texts) == 1
    return texts[0]


def algorithm_texts(group) -> dict[str, list[str]]:
    """Algorithm Name, Version and Parameters (TID 4019) of the group, by code meaning."""
    found: dict[str, list[str]] = {}
    for item in group[0].ContentSequence:
        if item.ValueType == "TEXT" and item.RelationshipType == "HAS CONCEPT MOD":
            found.setdefault(item.ConceptNameCodeSequence[0].CodeMeaning, []).append(item.TextValue)
    return found


@pytest.fixture(scope="module")
def shipped(shipped_classifier) -> Classifier:
    return shipped_classifier


@pytest.fixture(scope="module")
def pneumonia_dx(pneumonia_film) -> bytes:
    return film_bytes(pneumonia_film)


@pytest.fixture(scope="module")
def normal_dx(normal_film) -> bytes:
    return film_bytes(normal_film)


@pytest.mark.parametrize("which", ["pneumonia_dx", "normal_dx"])
def test_the_report_of_a_real_film_carries_the_classifiers_result(which, shipped, request):
    data = request.getfixturevalue(which)
    source = dcmread(io.BytesIO(data))
    assessment = shipped.assess(data, name="film.dcm")
    assert assessment.status == STATUS_OK

    dataset, group = read_sr(written(results.structured_report(source, assessment, shipped)))

    expected = shipped.assess(data, name="again.dcm").p_pneumonia  # the Classifier's, for the same file
    assert measured(group, "p_pneumonia") == pytest.approx(expected, abs=1e-6)
    assert measured(group, "threshold") == pytest.approx(shipped.threshold, abs=1e-9)
    finding = evaluated(group, "finding")
    assert finding == results.finding_for(assessment, shipped)
    assert finding.value in {"LIKELY", "UNLIKELY", "REVIEW"}
    assert (finding.value == "UNLIKELY") == (assessment.label == "NORMAL")
    assert comment(group).startswith(("Pneumonia likely", "No pneumonia detected", "Possible pneumonia"))
    alike = scored_alike_words(shipped, assessment.p_pneumonia)
    assert alike and f" {alike} " in comment(group)  # how films scored alike turned out, for the PACS reader
    assert evaluated(group, "pattern") is None  # the shipped model has no subtype model
    texts = algorithm_texts(group)
    sha = shipped.loaded.card["sha256"]
    assert texts["Algorithm Name"] == [shipped.loaded.name]
    assert texts["Algorithm Version"] == [sha[:12]]
    assert texts["Algorithm Parameters"] == [f"model sha256 {sha}"]  # no site: no site parameter

    # the source image, in the group and in the evidence
    (image,) = group.source_images
    assert image.referenced_sop_class_uid == DigitalXRayImageStorageForPresentation
    assert image.referenced_sop_instance_uid == source.SOPInstanceUID
    evidence = dataset.CurrentRequestedProcedureEvidenceSequence[0]
    assert evidence.StudyInstanceUID == STUDY_UID
    referenced = evidence.ReferencedSeriesSequence[0].ReferencedSOPSequence[0]
    assert referenced.ReferencedSOPInstanceUID == source.SOPInstanceUID

    # filed in the source's study, in a new series; unverified; the patient module copied
    assert dataset.SOPClassUID == Comprehensive3DSR and dataset.Modality == "SR"
    assert dataset.StudyInstanceUID == STUDY_UID
    assert dataset.SeriesInstanceUID not in (SERIES_UID, "") and dataset.SOPInstanceUID != source.SOPInstanceUID
    assert dataset.VerificationFlag == "UNVERIFIED" and dataset.CompletionFlag == "COMPLETE"
    for keyword, value in IDENTIFIERS.items():
        assert str(dataset.get(keyword)) == value
    assert dataset.ConceptNameCodeSequence[0].CodeValue == "126000"  # Imaging Measurement Report
    assert dataset.CodingSchemeIdentificationSequence[0].CodingSchemeDesignator == results.PRIVATE_SCHEME


def test_two_reports_of_one_film_are_two_new_instances(shipped, pneumonia_dx):
    source = dcmread(io.BytesIO(pneumonia_dx))
    assessment = shipped.assess(pneumonia_dx)
    first, second = (results.structured_report(source, assessment, shipped) for _ in range(2))
    assert first.SOPInstanceUID != second.SOPInstanceUID
    assert first.SeriesInstanceUID != second.SeriesInstanceUID
    uid = generate_uid()
    assert results.structured_report(source, assessment, shipped, series_instance_uid=uid).SeriesInstanceUID == uid


def test_a_film_refused_by_its_header_gets_a_report_saying_why(shipped, pneumonia_film):
    data = film_bytes(pneumonia_film, Modality="CT", SOPClassUID=CTImageStorage)
    assessment = shipped.assess(data)
    assert assessment.status == STATUS_REJECTED and assessment.message

    dataset, group = read_sr(written(results.structured_report(dcmread(io.BytesIO(data)), assessment, shipped)))

    assert evaluated(group, "finding") == results.FINDING_VALUES["not_assessed"]
    assert comment(group) == f"not assessed: {assessment.message}"
    assert measured(group, "p_pneumonia") is None
    assert measured(group, "threshold") == pytest.approx(shipped.threshold)
    assert group.source_images[0].referenced_sop_class_uid == CTImageStorage
    assert dataset.VerificationFlag == "UNVERIFIED" and dataset.StudyInstanceUID == STUDY_UID


def test_a_film_the_guard_refuses_keeps_its_probability_out_of_the_report(shipped, pneumonia_dx):
    source = dcmread(io.BytesIO(pneumonia_dx))
    ok = shipped.assess(pneumonia_dx)
    refused = replace(ok, status=STATUS_REJECTED, label=None, message="The image does not look like a chest film.",
                      out_of_scope_reason="The image does not look like a chest film.")
    _, group = read_sr(written(results.structured_report(source, refused, shipped)))
    assert measured(group, "p_pneumonia") is None  # computed for "show anyway", never sent
    assert comment(group) == "not assessed: The image does not look like a chest film."


def test_an_unreadable_film_gets_a_report_saying_why(shipped, pneumonia_film):
    grey = np.asarray(Image.open(pneumonia_film).convert("L"))
    data = encode_dicom(grey, pixel_data=b"\x00" * 100, **IDENTIFIERS, **SAFE_FIELDS,
                        StudyInstanceUID=STUDY_UID, SeriesInstanceUID=SERIES_UID)
    assessment = shipped.assess(data)
    assert assessment.status == STATUS_ERROR and assessment.message

    dataset, group = read_sr(written(results.structured_report(dcmread(io.BytesIO(data)), assessment, shipped)))

    assert evaluated(group, "finding").value == "NOT-ASSESSED"
    assert comment(group) == f"not assessed: {assessment.message}"
    assert measured(group, "p_pneumonia") is None
    assert dataset.StudyInstanceUID == STUDY_UID and dataset.PatientID == IDENTIFIERS["PatientID"]


def test_the_pattern_p_bacterial_and_the_site_are_reported(tiny_subtype_model, pneumonia_film):
    site = Site(name="north-wing", model_sha256=tiny_subtype_model.card["sha256"], temperature=1.0,
                threshold=0.01, min_sensitivity=0.9, digest="ab" * 32, record={})
    classifier = Classifier(tiny_subtype_model, guard=None, site=site)
    data = film_bytes(pneumonia_film)
    assessment = classifier.assess(data)
    assert assessment.status == STATUS_OK and assessment.pattern and assessment.site == "north-wing"

    _, group = read_sr(written(results.structured_report(dcmread(io.BytesIO(data)), assessment, classifier)))

    assert measured(group, "p_pneumonia") == pytest.approx(assessment.p_pneumonia, abs=1e-6)
    assert measured(group, "threshold") == pytest.approx(0.01)  # the site's, not the model's
    assert measured(group, "p_bacterial") == pytest.approx(assessment.p_bacterial, abs=1e-6)
    assert measured(group, "subtype_threshold") == pytest.approx(classifier.subtype.threshold)
    assert evaluated(group, "pattern") == results.PATTERN_VALUES[assessment.pattern]
    # at or above the site's threshold: pneumonia, to review below 50%
    assert evaluated(group, "finding").value == ("REVIEW" if assessment.p_pneumonia < 0.5 else "LIKELY")
    parameters = algorithm_texts(group)["Algorithm Parameters"]
    assert parameters == [f"model sha256 {tiny_subtype_model.card['sha256']}",
                          f"site calibration north-wing (site file sha256 {'ab' * 32})"]


@pytest.mark.parametrize(("p", "expected"), [(0.2, "UNLIKELY"), (0.4, "REVIEW"), (0.5, "LIKELY"), (0.9, "LIKELY")])
def test_the_finding_follows_the_verdict_bands(p, expected, shipped):
    assert shipped.threshold < 0.4  # the shipped operating point sits below the review band's top
    assessment = Assessment(source="f", status=STATUS_OK, p_pneumonia=p, label=shipped.label_for(p))
    assert results.finding_for(assessment, shipped).value == expected
    assert results.FINDING_VALUES["review"].meaning == REVIEW_WORDS


def test_an_assessment_from_another_site_is_refused(tiny_model, pneumonia_film):
    classifier = Classifier(tiny_model, guard=None, subtype=None)
    data = film_bytes(pneumonia_film)
    elsewhere = replace(classifier.assess(data), site="north-wing")
    with pytest.raises(ValueError, match="site calibration 'north-wing'"):
        results.structured_report(dcmread(io.BytesIO(data)), elsewhere, classifier)


def test_a_film_without_its_study_uid_cannot_be_filed(tiny_model, pneumonia_film):
    classifier = Classifier(tiny_model, guard=None, subtype=None)
    data = film_bytes(pneumonia_film)
    source = dcmread(io.BytesIO(data))
    del source.StudyInstanceUID
    with pytest.raises(ValueError, match="^the film lacks StudyInstanceUID, so its results cannot be filed"):
        results.structured_report(source, classifier.assess(data), classifier)


def test_missing_type2_patient_fields_are_written_empty(tiny_model, pneumonia_film):
    classifier = Classifier(tiny_model, guard=None, subtype=None)
    grey = np.asarray(Image.open(pneumonia_film).convert("L"))
    data = encode_dicom(grey, StudyInstanceUID=STUDY_UID, SeriesInstanceUID=SERIES_UID)  # no patient at all
    dataset = dcmread(io.BytesIO(written(results.structured_report(
        dcmread(io.BytesIO(data)), classifier.assess(data), classifier))))
    assert dataset.PatientName == "" and dataset.PatientID == "" and dataset.StudyInstanceUID == STUDY_UID


@pytest.mark.filterwarnings("ignore:Invalid value for VR")  # the very values pydicom warns about
@pytest.mark.parametrize("keyword, vr, value, expected", [
    ("PatientSex", "CS", "U", ""), ("PatientSex", "CS", "f", "F"),
    ("StudyDate", "DA", "2023/03/01", ""), ("StudyTime", "TM", "10:10:10", ""),
    ("PatientBirthDate", "DA", "15.01.2020", ""), ("StudyDate", "DA", "20230301", "20230301"),
])
def test_a_nonconforming_patient_or_study_value_is_left_empty_and_the_results_still_file(
        tiny_model, pneumonia_film, keyword, vr, value, expected):
    classifier = Classifier(tiny_model, guard=None, subtype=None)
    data = film_bytes(pneumonia_film)
    source = dcmread(io.BytesIO(data))
    source.add(DataElement(keyword, vr, value))
    assessment = classifier.assess(data)
    report = dcmread(io.BytesIO(written(results.structured_report(source, assessment, classifier))))
    overlay = np.full((64, 64, 3), 128, dtype=np.uint8)
    capture = dcmread(io.BytesIO(written(results.secondary_capture(source, assessment, overlay, classifier))))
    for dataset in (report, capture):
        assert str(dataset.get(keyword) or "") == expected
        assert dataset.StudyInstanceUID == STUDY_UID and dataset.PatientID == IDENTIFIERS["PatientID"]


# ---------------------------------------------------------------------------------------
# The secondary capture
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def overlay_case(shipped, pneumonia_dx):
    """(source, assessment, Grad-CAM overlay) of the real pneumonia film, as the diagnose page makes it."""
    source = dcmread(io.BytesIO(pneumonia_dx))
    assessment = shipped.assess(pneumonia_dx)
    heatmap = Explainer(shipped.loaded).heatmap(to_model_input(assessment.film, shipped.size))
    view = film_view(assessment.film, heatmap, shipped.size, "gradcam", 0.5, assessment.p_pneumonia,
                     shipped.threshold, pattern=assessment.pattern)
    return source, assessment, view.overlay


def enlarged(overlay: np.ndarray, width: int) -> np.ndarray:
    scale = width // overlay.shape[1]
    return np.asarray(Image.fromarray(overlay).resize((overlay.shape[1] * scale, overlay.shape[0] * scale),
                                                      Image.Resampling.BICUBIC))


def test_the_secondary_capture_has_the_overlay_and_its_words_burned_in(shipped, overlay_case):
    source, assessment, overlay = overlay_case
    data = written(results.secondary_capture(source, assessment, overlay, shipped))
    dataset = dcmread(io.BytesIO(data))

    assert dataset.SOPClassUID == SecondaryCaptureImageStorage
    assert dataset.BurnedInAnnotation == "YES"
    assert dataset.PhotometricInterpretation == "RGB" and dataset.SamplesPerPixel == 3
    assert dataset.BitsAllocated == 8
    assert dataset.StudyInstanceUID == STUDY_UID and dataset.SeriesInstanceUID != SERIES_UID
    assert dataset.SourceImageSequence[0].ReferencedSOPInstanceUID == source.SOPInstanceUID
    assert dataset.PatientID == IDENTIFIERS["PatientID"]
    assert results.AI_WORDS in dataset.SeriesDescription
    assert not dataset.PatientOrientation  # the source states none: left empty (Type 2), not guessed
    pixels = dataset.pixel_array
    assert hd.imread(io.BytesIO(data)).get_frame(1).shape == pixels.shape

    # the film's region is the overlay enlarged; the banner and the panel are words
    plain = enlarged(overlay, pixels.shape[1])
    top = next(row for row in range(pixels.shape[0]) if np.array_equal(pixels[row], plain[0]))
    film_rows = slice(top, top + plain.shape[0])
    assert top > 0 and np.array_equal(pixels[film_rows], plain)
    banner, panel = pixels[:top], pixels[top + plain.shape[0]:]
    warning = np.all(np.abs(panel.astype(int) - results.WARNING_COLOUR) < 40, axis=-1)
    assert warning.sum() > 100 and np.all(np.abs(banner.astype(int) - results.WARNING_COLOUR) < 40, axis=-1).sum() > 100
    assert (panel.max(axis=-1) > 200).sum() > 1000  # white text

    # the probability is burned in: another probability changes the words only
    other = dcmread(io.BytesIO(written(results.secondary_capture(
        source, replace(assessment, p_pneumonia=0.1234, label="NORMAL"), overlay, shipped)))).pixel_array
    assert np.array_equal(other[film_rows], pixels[film_rows])
    assert not np.array_equal(other[top + plain.shape[0]:], panel)


def test_the_burned_in_lines_name_the_result(shipped, overlay_case):
    _, assessment, _ = overlay_case
    lines = results.result_lines(assessment, shipped)
    assert lines[0] == "AI result, not for diagnosis"
    assert f"P(pneumonia) = {assessment.p_pneumonia:.4f}" in lines[2]
    assert f"operating threshold {shipped.threshold:.4f}" in lines[2]
    assert "Grad-CAM" in lines[-1] and shipped.loaded.version in lines[-2]
    assert all(line.isascii() for line in lines)


@pytest.mark.parametrize("body_part", [None, "CHEST"])
def test_both_result_objects_pass_dicom3tools_iod_check(shipped, overlay_case, pneumonia_dx, body_part, tmp_path):
    """dciodvfy checks each object against its IOD; only warnings (the private coding scheme) are allowed."""
    if shutil.which("dciodvfy") is None:
        skip_or_fail("dicom3tools' dciodvfy is not installed: run 'make test', which installs it")
    source, assessment, overlay = overlay_case
    if body_part:
        source = dcmread(io.BytesIO(film_bytes_with(pneumonia_dx, BodyPartExamined=body_part)))
    for name, made in (("sc", results.secondary_capture(source, assessment, overlay, shipped)),
                       ("sr", results.structured_report(source, assessment, shipped))):
        path = tmp_path / f"{name}.dcm"
        path.write_bytes(written(made))
        checked = subprocess.run(["dciodvfy", str(path)], capture_output=True, text=True, timeout=60)
        errors = [line for line in checked.stderr.splitlines() if line.startswith("Error")]
        assert checked.returncode == 0 and errors == [], (name, errors)
    assert dcmread(tmp_path / "sc.dcm").BodyPartExamined == "CHEST"


def film_bytes_with(data: bytes, **changes) -> bytes:
    dataset = dcmread(io.BytesIO(data))
    for keyword, value in changes.items():
        setattr(dataset, keyword, value)
    return written(dataset)


def test_no_secondary_capture_for_a_film_that_was_not_assessed(shipped, overlay_case):
    source, assessment, overlay = overlay_case
    refused = replace(assessment, status=STATUS_REJECTED, label=None, message="Not a chest film.")
    with pytest.raises(ValueError, match="not assessed"):
        results.secondary_capture(source, refused, overlay, shipped)
    with pytest.raises(ValueError, match="RGB uint8"):
        results.secondary_capture(source, assessment, overlay[..., 0], shipped)


def test_neither_object_logs_or_prints_a_patient_identifier(shipped, overlay_case, caplog, capsys):
    source, assessment, overlay = overlay_case
    with caplog.at_level(logging.DEBUG):
        results.structured_report(source, assessment, shipped)
        results.secondary_capture(source, assessment, overlay, shipped)
    captured = capsys.readouterr()
    said = caplog.text + captured.out + captured.err
    assert said is not None
    for value in IDENTIFIERS.values():
        assert value not in said
