"""Intended-use checks from a DICOM header: what the header says decides before any model runs.

The model reads frontal chest radiographs of young children (trained on 1 to 5 years). A
header that says otherwise is believed: the film is refused, naming the reason in words,
and the image-only guard (:mod:`pneumo.guard.detector`) is not asked. Where a field is
missing or empty, the image checks decide alone. The reasons name a modality, a body part,
a view or an age band; never a tag's value as written, nor the exact age.

The checks, in the order they are applied (the first that refuses gives the reason):

- ``modality``: projection radiography (CR, DX, and RG, conventional film) is read; OT
  ("other", as scanned films are often labelled) and a missing modality leave it to the
  image checks; every other modality (CT, MR, US, NM, PT, XA, RF, MG, ...) is refused.
  Fluoroscopy (RF) is refused too: its spot films are low-dose frames taken during a
  moving examination, often with contrast, unlike the films the model learned from.
- ``presentation``: raw detector data ("For Processing") is refused: it needs the
  modality's own processing before anyone, model or reader, can look at it.
- ``body_part``: Body Part Examined, when present, must name the chest (CHEST, THORAX,
  LUNG and their common local spellings); another body part is refused.
- ``view``: a lateral (ViewPosition LL or RL, or a lateral view code) or oblique view is
  refused; the model was trained on frontal (AP) films.
- ``age``: 18 years and over is refused as an adult; under 1 year, and 6 to 17 years, are
  read with a warning on the result (:data:`AGE_BANDS`).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from pneumo.io import HeaderFacts

HEADER_CHECKS = ("modality", "presentation", "body_part", "view", "age")

RADIOGRAPHY = {"CR": "computed radiography", "DX": "digital radiography",
               "RG": "conventional film radiography"}
"""Modalities read: projection radiography."""
LEFT_TO_IMAGE_CHECKS = {"", "OT"}
"""Modalities that say nothing either way: the image checks decide."""

MODALITY_WORDS = {
    "CT": "a CT image", "MR": "an MRI image", "US": "an ultrasound image",
    "NM": "a nuclear medicine image", "PT": "a PET image", "XA": "an X-ray angiography image",
    "RF": "a fluoroscopy image", "DF": "a fluoroscopy image", "MG": "a mammogram",
    "IO": "an intra-oral dental radiograph", "PX": "a panoramic dental radiograph",
    "BMD": "a bone densitometry scan",
    "BI": "a biomagnetic image", "ES": "an endoscopy image", "XC": "a camera photograph",
    "OP": "an ophthalmic photograph", "OPT": "an ophthalmic tomography image",
    "OCT": "an optical coherence tomography image", "IVOCT": "an intravascular OCT image",
    "IVUS": "an intravascular ultrasound image", "GM": "a microscopy image", "SM": "a slide microscopy image",
    "TG": "a thermography image", "RTIMAGE": "a radiotherapy image", "RTDOSE": "a radiotherapy dose",
    "RTSTRUCT": "a radiotherapy structure set", "RTPLAN": "a radiotherapy plan",
    "SEG": "a segmentation", "SR": "a structured report", "PR": "a presentation state",
    "KO": "a key object selection", "DOC": "a document", "ECG": "an electrocardiogram",
    "EEG": "an electroencephalogram", "HD": "a waveform recording", "LS": "a laser surface scan",
    "OSS": "an optical surface scan", "PLAN": "a plan", "REG": "a registration",
    "AU": "an audio recording", "VA": "a visual acuity test", "XAPROTOCOL": "a protocol",
}
"""The non-radiograph modalities in words, for the refusal sentence."""

CHEST_WORDS = {
    "CHEST", "THORAX", "THORACIC CAVITY", "LUNG", "LUNGS", "TORAX", "TORACE", "TORAKS", "THORAKS",
    "BRUST", "BRUSTKORB", "POITRINE", "PECHO", "PETTO", "BORST", "BORSTKAS", "BRYST", "BROST",
    "BRYSTKASSE", "MELLKAS", "RINTAKEHA", "KLATKA", "TORACICA",
}
"""Words that name the chest in Body Part Examined (as written by vendors in several languages)."""
CHEST_CODES = {"CHEST", "THORAX", "LUNG", "CHESTABDOMEN", "CHEST ABDOMEN", "CHESTABDPELVIS"}
"""Defined terms (PS3.16 CID 4031) that include the chest."""

BODY_PART_WORDS = {
    "KNEE": "the knee", "HAND": "the hand", "FOOT": "the foot", "ANKLE": "the ankle",
    "WRIST": "the wrist", "ELBOW": "the elbow", "SHOULDER": "the shoulder", "HIP": "the hip",
    "PELVIS": "the pelvis", "ABDOMEN": "the abdomen", "SKULL": "the skull", "HEAD": "the head",
    "BRAIN": "the brain", "NECK": "the neck", "FACE": "the face", "SINUS": "the sinuses",
    "JAW": "the jaw", "TMJ": "the jaw joint", "CSPINE": "the cervical spine",
    "TSPINE": "the thoracic spine", "LSPINE": "the lumbar spine", "SSPINE": "the sacrum",
    "COCCYX": "the coccyx", "SPINE": "the spine", "WHOLESPINE": "the whole spine",
    "BREAST": "the breast", "ARM": "the arm", "UPPER EXTREMITY": "the arm", "UPPEREXTREMITY": "the arm",
    "FOREARM": "the forearm", "HUMERUS": "the upper arm", "LEG": "the leg", "LOWER EXTREMITY": "the leg",
    "LOWEREXTREMITY": "the leg", "FEMUR": "the thigh", "TIBIA": "the lower leg", "FIBULA": "the lower leg",
    "EXTREMITY": "a limb", "FINGER": "a finger", "TOE": "a toe", "HEEL": "the heel",
    "CLAVICLE": "the collarbone", "SCAPULA": "the shoulder blade", "RIB": "the ribs", "RIBS": "the ribs",
    "STERNUM": "the breastbone", "HEART": "the heart", "KIDNEY": "the kidney", "LIVER": "the liver",
    "BLADDER": "the bladder", "EYE": "the eye", "ORBIT": "the orbit", "EAR": "the ear",
}
"""Other body parts in words, for the refusal sentence."""

LATERAL_POSITIONS = {"LL", "RL", "LAT", "LATERAL", "LLAT", "RLAT", "LEFT LATERAL", "RIGHT LATERAL"}
OBLIQUE_POSITIONS = {"LLO", "RLO", "LAO", "RAO", "LPO", "RPO", "OBL", "OBLIQUE"}
LATERAL_CODES = {"399067008", "R-10230", "399173006", "R-10236", "399198007", "R-10232"}
"""SNOMED CT (and the older SNOMED RT) codes of the lateral views in PS3.16 CID 4010."""

TRAINED_AGES = (1.0, 6.0)
"""Ages the model was trained on, in years: [1, 6), children of one to five."""
ADULT_AGE = 18.0

AGE_BANDS = (
    (0.0, 1.0, "under 1 year"),
    (6.0, 12.0, "6 to 11 years"),
    (12.0, ADULT_AGE, "12 to 17 years"),
)
"""Ages read with a warning: (from, below, the band in words)."""

REASONS = {
    "presentation": "This is raw detector data (For Processing), not an image meant for viewing; "
                    "send the film's For Presentation image instead.",
    "lateral": "The header says this is a lateral view; the model reads only frontal chest films "
               "(AP or PA), so it gives no result.",
    "oblique": "The header says this is an oblique view; the model reads only frontal chest films "
               "(AP or PA), so it gives no result.",
    "adult": "The header says the patient is an adult (18 years or over); the model is made for "
             "young children (trained on ages 1 to 5) and gives no result.",
}
"""Fixed refusal sentences; modality and body part sentences name what the header says."""


@dataclass(frozen=True)
class HeaderVerdict:
    """What the header checks say about one film.

    Attributes:
        refused: True when the header puts the film outside the intended use.
        kind: the check that refused ("modality", "body_part", "lateral", ...; "" when not).
        reason: the sentence for the clinician ("" when not refused).
        warnings: sentences to show beside a result (an age just outside the trained range).
    """

    refused: bool = False
    kind: str = ""
    reason: str = ""
    warnings: tuple[str, ...] = ()


NOTHING_TO_SAY = HeaderVerdict()


def check_header(header: HeaderFacts | None) -> HeaderVerdict:
    """The intended-use verdict of a film's header; no header (a JPEG or PNG) says nothing."""
    if header is None:
        return NOTHING_TO_SAY
    for refusal in (_modality(header.modality), _presentation(header), _body_part(header.body_part),
                    _view(header), _adult(header.age_years)):
        if refusal is not None:
            return refusal
    warning = age_warning(header.age_years)
    return HeaderVerdict(warnings=(warning,) if warning else ())


def _refused(kind: str, reason: str) -> HeaderVerdict:
    return HeaderVerdict(refused=True, kind=kind, reason=reason)


def _modality(modality: str) -> HeaderVerdict | None:
    if modality in RADIOGRAPHY or modality in LEFT_TO_IMAGE_CHECKS:
        return None
    words = MODALITY_WORDS.get(modality)
    if words is None:
        return _refused("modality", "The header names a modality that is not projection radiography "
                                    "(CR or DX); the model reads only chest radiographs.")
    return _refused("modality", f"This is {words}, not a radiograph; the model reads only chest "
                                "radiographs (CR or DX).")


def _presentation(header: HeaderFacts) -> HeaderVerdict | None:
    return _refused("presentation", REASONS["presentation"]) if header.for_processing else None


def normalised_words(text: str) -> str:
    """Upper case, accents dropped, separators as single spaces ("Tórax_PA" -> "TORAX PA")."""
    plain = unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode("ascii").upper()
    for separator in "_-/,.;:()":
        plain = plain.replace(separator, " ")
    return " ".join(plain.split())


def _body_part(body_part: str) -> HeaderVerdict | None:
    text = normalised_words(body_part)
    if not text or text in CHEST_CODES:
        return None
    words = set(text.split())
    other = [BODY_PART_WORDS[w] for w in text.split() if w in BODY_PART_WORDS]
    other += [BODY_PART_WORDS[text]] if text in BODY_PART_WORDS and not other else []
    chest = bool(words & CHEST_WORDS) or any(w in text for w in CHEST_WORDS if " " in w)
    # "THORACIC SPINE" and "CHEST RIBS" name the chest's bones, not the lungs: another examination.
    if chest and not other:
        return None
    if other:
        return _refused("body_part", f"The header says this is an examination of {other[0]}, not the "
                                     "chest; the model reads only chest films.")
    return _refused("body_part", "The header names a body part other than the chest; the model reads "
                                 "only chest films.")


def _view(header: HeaderFacts) -> HeaderVerdict | None:
    position = normalised_words(header.view_position)
    meanings = header.view_meanings
    lateral = (position in LATERAL_POSITIONS or any(code in LATERAL_CODES for code in header.view_codes)
               or any("lateral" in m and "oblique" not in m and "medial" not in m for m in meanings))
    if lateral:
        return _refused("lateral", REASONS["lateral"])
    if position in OBLIQUE_POSITIONS or any("oblique" in m for m in meanings):
        return _refused("oblique", REASONS["oblique"])
    return None


def _adult(age_years: float | None) -> HeaderVerdict | None:
    return _refused("adult", REASONS["adult"]) if age_years is not None and age_years >= ADULT_AGE else None


def age_warning(age_years: float | None) -> str:
    """The warning for an age outside the trained 1 to 5 years and below adulthood ("" if none)."""
    if age_years is None:
        return ""
    for low, high, band in AGE_BANDS:
        if low <= age_years < high:
            return (f"The header gives the patient's age as {band}; the model was trained on children "
                    "aged 1 to 5, so read this result with extra care.")
    return ""
