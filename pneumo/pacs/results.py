"""A film's result as DICOM objects filed in the film's own study: a structured report and a picture.

:func:`structured_report` writes the assessment as a Comprehensive 3D SR holding a TID 1500
Measurement Report; :func:`secondary_capture` writes the overlay the diagnose page shows, with
the legend, the probability and "AI result, not for diagnosis" burned in, as a Secondary
Capture. Both go into a new series of the source's study and copy the source's patient and
study modules, as DICOM requires of an object filed in a study: that copy is the point, so
nothing here logs or prints any of it.

The SR's codes (:data:`CODES`): the finding is the qualitative evaluation
(233604007, SCT, "Pneumonia") with one of the private values of :data:`FINDING_VALUES`; the
numbers (P(pneumonia), the operating threshold, P(bacterial | pneumonia) and its threshold)
are private concepts in unit (1, UCUM, "no units"); the pattern is a private concept with
private values; why a film was not assessed is a (121106, DCM, "Comment") text. The private
scheme is :data:`PRIVATE_SCHEME` ("99" opens a private designator, PS3.16 section 8.2),
described in the SR's Coding Scheme Identification Sequence.
"""

from __future__ import annotations

import textwrap

import highdicom as hd
import numpy as np
from highdicom.coding_schemes import CodingSchemeIdentificationItem
from PIL import Image, ImageDraw, ImageFont
from pydicom import config
from pydicom.dataset import Dataset
from pydicom.sr.codedict import codes
from pydicom.sr.coding import Code
from pydicom.uid import UID, ExplicitVRLittleEndian, generate_uid
from pydicom.valuerep import DA, TM

from pneumo.inference import explain
from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, Assessment, Classifier, in_review_band
from pneumo.render.diagnosis import scored_alike_words
from pneumo.render.wording import REVIEW_WORDS, format_probability, verdict_for

MANUFACTURER = "Pneumo"
AI_WORDS = "AI result, not for diagnosis"
"""Burned into every secondary capture and named in both objects' series descriptions."""

SR_SERIES_NUMBER = 9901
SC_SERIES_NUMBER = 9902
SR_SERIES_DESCRIPTION = f"Pneumo structured report ({AI_WORDS})"
SC_SERIES_DESCRIPTION = f"Pneumo overlay ({AI_WORDS})"

PRIVATE_SCHEME = "99PNEUMO"


def _private(value: str, meaning: str) -> Code:
    return Code(value, PRIVATE_SCHEME, meaning)


CODES = {
    "title": codes.DCM.ImagingMeasurementReport,  # (126000, DCM): TID 1500's title
    "procedure": Code("399208008", "SCT", "Plain chest X-ray"),
    "finding": Code("233604007", "SCT", "Pneumonia"),
    "p_pneumonia": _private("P-PNEUMONIA", "Probability of pneumonia"),
    "threshold": _private("THRESHOLD", "Operating threshold for pneumonia"),
    "pattern": _private("PATTERN", "Pneumonia pattern"),
    "p_bacterial": _private("P-BACTERIAL", "Probability of a bacterial pattern given pneumonia"),
    "subtype_threshold": _private("THRESHOLD-BACT", "Threshold for a bacterial pattern"),
    "comment": codes.DCM.Comment,  # (121106, DCM)
    "unit": codes.UCUM.NoUnits,  # (1, UCUM, "no units")
}
"""Every concept the SR uses, by role."""

FINDING_VALUES = {
    "likely": _private("LIKELY", "Pneumonia likely"),
    "review": _private("REVIEW", REVIEW_WORDS),
    "unlikely": _private("UNLIKELY", "Pneumonia unlikely"),
    "not_assessed": _private("NOT-ASSESSED", "Not assessed"),
}
"""The finding's values: at or above the threshold and 50%; between them (the review band, see
:func:`pneumo.inference.predict.review_band`); below both; refused or unreadable."""

PATTERN_VALUES = {"bacterial": _private("BACTERIAL", "Bacterial pattern"),
                  "viral": _private("VIRAL", "Viral pattern")}

NEEDED_UIDS = ("StudyInstanceUID", "SeriesInstanceUID", "SOPClassUID", "SOPInstanceUID")
"""What a source must carry for its results to be filed in its study and to point at it."""
TYPE2_COPIED = ("PatientID", "PatientName", "PatientBirthDate", "PatientSex", "AccessionNumber",
                "StudyID", "StudyDate", "StudyTime", "ReferringPhysicianName")
"""Type 2 patient and study attributes: copied when present, written empty when not."""


def is_our_result(source: Dataset) -> bool:
    """Whether a received object is one of our own results (sent back by the PACS)."""
    return (str(source.get("Manufacturer", "")) == MANUFACTURER
            and str(source.get("SeriesDescription", "")) in (SR_SERIES_DESCRIPTION, SC_SERIES_DESCRIPTION))


def structured_report(source: Dataset, assessment: Assessment, classifier: Classifier, *,
                      series_instance_uid: str | None = None, series_number: int = SR_SERIES_NUMBER,
                      instance_number: int = 1) -> hd.sr.Comprehensive3DSR:
    """The assessment of ``source`` as a Comprehensive 3D SR (TID 1500) in a new series of its study.

    The report holds one measurement group: the finding (:data:`FINDING_VALUES`), for an ``ok``
    film P(pneumonia) and, when it has one, its pattern and P(bacterial); the operating
    threshold in effect; a comment saying why a refused (``rejected``) or unreadable
    (``error``) film was not assessed ("not assessed: <message>"); the algorithm (model name,
    version = the first 12 hex of the model's sha256, the sha256 and the site calibration, if
    any, as parameters); the source image. VerificationFlag is UNVERIFIED.

    Args:
        source: the film's DICOM data set, as received (pixel data may be present).
        assessment: what :meth:`Classifier.assess` said about it.
        classifier: the classifier that said it (model, threshold, site).
        series_instance_uid: the new series' UID (generated when None).
        series_number: the new series' number.
        instance_number: the report's instance number.

    Returns:
        The SR (a :class:`pydicom.Dataset`), ready for ``dcmwrite`` or a C-STORE.

    Raises:
        ValueError: the source lacks a UID needed to file the report in its study, or the
            assessment was made at another site calibration than the classifier's.
    """
    header = _filing_header(source)
    _check_site(assessment, classifier)
    algorithm = _algorithm(classifier)
    group = hd.sr.MeasurementsAndQualitativeEvaluations(
        tracking_identifier=hd.sr.TrackingIdentifier(uid=generate_uid(), identifier="Pneumo assessment"),
        finding_type=CODES["finding"],
        algorithm_id=algorithm,
        measurements=_measurements(assessment, classifier),
        qualitative_evaluations=_evaluations(assessment, classifier),
        source_images=[hd.sr.SourceImageForMeasurementGroup.from_source_image(header)],
    )
    # The comment belongs to the group (its container's children), not beside it.
    group[0].ContentSequence.append(hd.sr.TextContentItem(
        name=CODES["comment"], value=_comment(assessment, classifier),
        relationship_type=hd.sr.RelationshipTypeValues.CONTAINS))
    observer = hd.sr.ObserverContext(
        observer_type=codes.DCM.Device,
        observer_identifying_attributes=hd.sr.DeviceObserverIdentifyingAttributes(
            uid=_device_uid(classifier), name=MANUFACTURER, manufacturer_name=MANUFACTURER,
            model_name=classifier.loaded.name))
    report = hd.sr.MeasurementReport(
        observation_context=hd.sr.ObservationContext(observer_device_context=observer),
        procedure_reported=CODES["procedure"], imaging_measurements=[group], title=CODES["title"])
    return hd.sr.Comprehensive3DSR(
        evidence=[header], content=report[0],
        series_instance_uid=series_instance_uid or generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer=MANUFACTURER,
        is_complete=True, is_final=True, is_verified=False, series_description=SR_SERIES_DESCRIPTION,
        manufacturer_model_name=classifier.loaded.name, software_versions=classifier.loaded.version,
        coding_schemes=[CodingSchemeIdentificationItem(
            designator=PRIVATE_SCHEME, name="Pneumo result concepts",
            responsible_organization="the Pneumo project")],
    )


def secondary_capture(source: Dataset, assessment: Assessment, overlay_rgb: np.ndarray,
                      classifier: Classifier, *, method_name: str = explain.METHODS["gradcam"],
                      target: str = "pneumonia", series_instance_uid: str | None = None,
                      series_number: int = SC_SERIES_NUMBER, instance_number: int = 1) -> hd.sc.SCImage:
    """The overlay with its legend, the probability and :data:`AI_WORDS` burned in, as an RGB SC image.

    The overlay (``film_view(...).overlay``) is enlarged to at least 512 pixels a side and a
    panel below it carries the words and the colour scale (:data:`pneumo.inference.explain.COLOR_STOPS`);
    BurnedInAnnotation is YES. The image is filed in a new series of the source's study and
    references the source.

    Args:
        source: the film's DICOM data set.
        assessment: its ``ok`` assessment.
        overlay_rgb: the overlay, RGB uint8 (h, w, 3).
        classifier: the classifier that assessed it.
        method_name: the explanation method's name shown (a value of ``explain.METHODS``).
        target: what the map explains, a key of ``explain.TARGETS``.
        series_instance_uid: the new series' UID (generated when None).
        series_number: the new series' number.
        instance_number: the image's instance number.

    Returns:
        The SC image (a :class:`pydicom.Dataset`).

    Raises:
        ValueError: the film was not assessed (no probability to show), the overlay is not
            RGB uint8, the source lacks a UID needed to file the image, or the site differs.
    """
    if assessment.status != STATUS_OK or assessment.p_pneumonia is None:
        raise ValueError(f"a film that was not assessed (status {assessment.status}) has no overlay "
                         "to send; send its structured report instead")
    overlay_rgb = np.asarray(overlay_rgb)
    if overlay_rgb.dtype != np.uint8 or overlay_rgb.ndim != 3 or overlay_rgb.shape[2] != 3:
        raise ValueError(f"the overlay must be RGB uint8 (h, w, 3), got {overlay_rgb.dtype} {overlay_rgb.shape}")
    if target not in explain.TARGETS:
        raise ValueError(f"unknown map target {target!r}; choose from {list(explain.TARGETS)}")
    header = _filing_header(source)
    _check_site(assessment, classifier)
    pixels = annotated_overlay(overlay_rgb, result_lines(assessment, classifier, method_name, target))
    orientation = [str(v) for v in header.get("PatientOrientation") or []]
    known = len(orientation) == 2 and all(orientation)
    image = hd.sc.SCImage.from_ref_dataset(
        ref_dataset=header, pixel_array=pixels, photometric_interpretation="RGB", bits_allocated=8,
        coordinate_system="PATIENT", patient_orientation=tuple(orientation) if known else ("L", "F"),
        series_instance_uid=series_instance_uid or generate_uid(), series_number=series_number,
        sop_instance_uid=generate_uid(), instance_number=instance_number, manufacturer=MANUFACTURER,
        transfer_syntax_uid=ExplicitVRLittleEndian, series_description=SC_SERIES_DESCRIPTION,
        manufacturer_model_name=classifier.loaded.name, software_versions=classifier.loaded.version)
    if not known:
        image.PatientOrientation = None  # Type 2: unknown, rather than guessed
    # The film's body part (a chest film, or it would have been refused) lets a validator see
    # that Laterality (Type 2C, for paired structures) is not needed.
    image.BodyPartExamined = str(header.get("BodyPartExamined") or "") or "CHEST"
    image.BurnedInAnnotation = "YES"
    image.RecognizableVisualFeatures = "NO"
    image.ImageComments = AI_WORDS
    image.DerivationDescription = f"{method_name} overlay of the film as the model saw it, with its result"
    reference = Dataset()
    reference.ReferencedSOPClassUID = header.SOPClassUID
    reference.ReferencedSOPInstanceUID = header.SOPInstanceUID
    image.SourceImageSequence = [reference]
    return image


def result_lines(assessment: Assessment, classifier: Classifier, method_name: str = explain.METHODS["gradcam"],
                 target: str = "pneumonia") -> list[str]:
    """The lines burned under the overlay (plain ASCII): the warning words first, the legend last."""
    p, threshold = float(assessment.p_pneumonia), classifier.threshold
    site = f" (site {assessment.site})" if assessment.site else ""
    lines = [AI_WORDS,
             f"{verdict_for(p, threshold, classifier.classes).text}",
             f"P(pneumonia) = {format_probability(p)}, operating threshold {format_probability(threshold)}{site}"]
    if assessment.pattern and assessment.p_bacterial is not None:
        lines.append(f"Pattern: {assessment.pattern}, P(bacterial) = {format_probability(assessment.p_bacterial)}")
    lines.append(f"Model {classifier.loaded.name} {classifier.loaded.version}")
    lines.append(f"{method_name}: blue = little weight, red = most weight towards {explain.TARGETS[target]}; "
                 "where the model looked, not where disease is")
    return lines


MIN_SIDE = 512
MARGIN = 12
FONT_SIZE = 18
BAR_HEIGHT = 16
PANEL_COLOUR, TEXT_COLOUR, WARNING_COLOUR = (0, 0, 0), (255, 255, 255), (255, 200, 0)


def annotated_overlay(overlay_rgb: np.ndarray, lines: list[str]) -> np.ndarray:
    """The overlay enlarged to at least :data:`MIN_SIDE` a side, with ``lines`` and the colour bar below.

    The first line is drawn in the warning colour, and again above the film; the colour bar (little weight at the left,
    most at the right) comes before the last line, the legend.

    Returns:
        RGB uint8 (rows, columns, 3).
    """
    h, w = overlay_rgb.shape[:2]
    scale = max(1, -(-MIN_SIDE // min(h, w)))  # ceil
    picture = Image.fromarray(overlay_rgb, "RGB").resize((w * scale, h * scale), Image.Resampling.BICUBIC)
    width = picture.width
    font = ImageFont.load_default(size=FONT_SIZE)
    wrapped = [_wrap(line, font, width - 2 * MARGIN) for line in lines]
    line_height = FONT_SIZE + 6
    banner = line_height + MARGIN  # the first line again, above the film
    panel = MARGIN * 3 + BAR_HEIGHT + line_height * sum(len(parts) for parts in wrapped)
    canvas = Image.new("RGB", (width, banner + picture.height + panel), PANEL_COLOUR)
    canvas.paste(picture, (0, banner))
    draw = ImageDraw.Draw(canvas)
    draw.text((MARGIN, MARGIN // 2), wrapped[0][0], font=font, fill=WARNING_COLOUR)
    y = banner + picture.height + MARGIN
    for index, parts in enumerate(wrapped):
        if index == len(wrapped) - 1:  # the legend: its colour bar first
            bar = explain.colorize(np.tile(np.linspace(0.0, 1.0, width - 2 * MARGIN), (BAR_HEIGHT, 1)))
            canvas.paste(Image.fromarray(bar, "RGB"), (MARGIN, y))
            y += BAR_HEIGHT + MARGIN
        for part in parts:
            draw.text((MARGIN, y), part, font=font, fill=WARNING_COLOUR if index == 0 else TEXT_COLOUR)
            y += line_height
    return np.asarray(canvas, dtype=np.uint8)


def _wrap(line: str, font, width: int) -> list[str]:
    """``line`` broken at spaces so each piece fits ``width`` pixels in ``font``."""
    for chars in range(len(line), 10, -1):
        parts = textwrap.wrap(line, chars)
        if all(font.getlength(part) <= width for part in parts):
            return parts
    return textwrap.wrap(line, 10)


def _filing_header(source: Dataset) -> Dataset:
    """The source's top-level elements without pixel data, Type 2 patient/study attributes filled in.

    Raises:
        ValueError: a UID in :data:`NEEDED_UIDS` is missing or empty.
    """
    missing = [keyword for keyword in NEEDED_UIDS if not source.get(keyword)]
    if missing:
        raise ValueError(f"the film lacks {', '.join(missing)}, so its results cannot be filed in its study")
    header = Dataset()
    for element in source:
        if element.keyword not in ("PixelData", "FloatPixelData", "DoubleFloatPixelData"):
            header.add(element)
    for keyword in TYPE2_COPIED:
        if keyword not in header:
            setattr(header, keyword, None)
    _blank_nonconforming(header)
    header.SOPClassUID = UID(str(source.SOPClassUID))
    return header


PATIENT_SEX_VALUES = ("M", "F", "O")


def _blank_nonconforming(header: Dataset) -> None:
    """Empty a copied Type 2 value the standard does not allow (sex ``U``, date ``2023/03/01``,
    time ``10:10:10``): the results still file in the study, with that field unknown."""
    sex = str(header.get("PatientSex") or "").strip().upper()
    header.PatientSex = sex if sex in PATIENT_SEX_VALUES else None
    for keyword, kind in (("PatientBirthDate", DA), ("StudyDate", DA), ("StudyTime", TM)):
        value = header.get(keyword)
        if value in (None, ""):
            continue
        try:
            kind(str(value), validation_mode=config.RAISE)
        except (ValueError, TypeError):
            setattr(header, keyword, None)


def _check_site(assessment: Assessment, classifier: Classifier) -> None:
    if assessment.site != classifier.site_name:
        raise ValueError(f"the assessment was made at site calibration {assessment.site or 'none'!r}, "
                         f"the classifier is at {classifier.site_name or 'none'!r}")


def _algorithm(classifier: Classifier) -> hd.sr.AlgorithmIdentification:
    """Model name, version (first 12 hex of its sha256), and the sha256 and site as parameters."""
    loaded = classifier.loaded
    parameters = [f"model sha256 {loaded.card['sha256']}"]
    if classifier.site is not None:
        parameters.append(f"site calibration {classifier.site.name} (site file sha256 {classifier.site.digest})")
    return hd.sr.AlgorithmIdentification(name=loaded.name, version=loaded.version, parameters=parameters,
                                         manufacturer=MANUFACTURER)


def _device_uid(classifier: Classifier) -> str:
    """A UID for the model file as an observer device: the same file always gives the same UID."""
    return generate_uid(entropy_srcs=["pneumo model", classifier.loaded.card["sha256"]])


def finding_for(assessment: Assessment, classifier: Classifier) -> Code:
    """The finding's value (:data:`FINDING_VALUES`) for an assessment."""
    if assessment.status != STATUS_OK or assessment.p_pneumonia is None:
        return FINDING_VALUES["not_assessed"]
    if in_review_band(assessment.p_pneumonia, classifier.threshold):
        return FINDING_VALUES["review"]
    positive = assessment.label == classifier.classes[1]
    return FINDING_VALUES["likely" if positive else "unlikely"]


def _evaluations(assessment: Assessment, classifier: Classifier) -> list[hd.sr.QualitativeEvaluation]:
    found = [hd.sr.QualitativeEvaluation(name=CODES["finding"], value=finding_for(assessment, classifier))]
    if assessment.status == STATUS_OK and assessment.pattern in PATTERN_VALUES:
        found.append(hd.sr.QualitativeEvaluation(name=CODES["pattern"], value=PATTERN_VALUES[assessment.pattern]))
    return found


def _measurements(assessment: Assessment, classifier: Classifier) -> list[hd.sr.Measurement]:
    """P(pneumonia) for an ``ok`` film only (as in the CSV), the threshold always, P(bacterial) with a pattern.

    The algorithm is named once, on the group, for all of them.
    """
    def measurement(role: str, value: float) -> hd.sr.Measurement:
        return hd.sr.Measurement(name=CODES[role], value=float(value), unit=CODES["unit"])

    found = []
    if assessment.status == STATUS_OK and assessment.p_pneumonia is not None:
        found.append(measurement("p_pneumonia", assessment.p_pneumonia))
    found.append(measurement("threshold", classifier.threshold))
    if assessment.status == STATUS_OK and assessment.pattern and assessment.p_bacterial is not None:
        found.append(measurement("p_bacterial", assessment.p_bacterial))
        if classifier.subtype is not None:
            found.append(measurement("subtype_threshold", classifier.subtype.threshold))
    return found


def _comment(assessment: Assessment, classifier: Classifier) -> str:
    """The report's comment: why a film was not assessed, else the verdict in words and any notes."""
    if assessment.status != STATUS_OK or assessment.p_pneumonia is None:
        kind = "unreadable" if assessment.status == STATUS_ERROR else "refused"
        return f"not assessed: {assessment.message or kind}"
    words = verdict_for(assessment.p_pneumonia, classifier.threshold, classifier.classes).text
    alike = scored_alike_words(classifier, assessment.p_pneumonia) or ""
    return " ".join(part for part in (f"{words}.", assessment.message, alike, f"{AI_WORDS}.") if part)
