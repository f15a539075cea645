"""Reading DICOM films: header, first frame, and the display transforms, with pydicom.

:func:`pneumo.io.read_film` hands a file here when it carries the DICOM preamble, or starts
as a bare data set does; this module turns it into the same :class:`~pneumo.io.Film` a raster
file gives. Compressed pixel data is decoded by the pydicom plugins pinned in requirements.txt
(pylibjpeg with libjpeg and openjpeg: every JPEG, JPEG-LS and JPEG 2000 syntax; RLE is
pydicom's own). Only the header
fields in :data:`SAFE_FIELDS` are copied: patient identifiers never reach a ``Film``, nor
an error message (pydicom's messages can quote header values, so none is shown).

Grey films are displayed as the standard orders it (PS3.3 C.11): the modality LUT
(rescale slope and intercept), then the first VOI window, else the first VOI LUT, else the
full range the stored bits can hold; MONOCHROME1 is then inverted. Colour films become
their luma. Sizes are checked from the header before any pixel is decoded.
"""

from __future__ import annotations

import copy
import datetime
import io
import zlib

import numpy as np
import pydicom
import pydicom.pixels
from pydicom.dataset import Dataset
from pydicom.filereader import read_dataset
from pydicom.multival import MultiValue
from pydicom.uid import (DeflatedExplicitVRLittleEndian, ExplicitVRBigEndian,
                         ExplicitVRLittleEndian, ImplicitVRLittleEndian)

from pneumo.io import MAX_PIXELS, Film, FilmReadError, HeaderFacts, check_pixel_count

# DICOM header fields that may be shown to a user. Everything else, and above all
# PatientName, PatientID, PatientBirthDate and AccessionNumber, is never copied.
SAFE_FIELDS = {
    "Modality": "modality",
    "ViewPosition": "view",
    "BodyPartExamined": "body_part",
    "StudyDate": "study_date",
    "PhotometricInterpretation": "photometric",
}

# A deflated DICOM data set is inflated whole by pydicom before anything is checked; one
# that would inflate past this many bytes (a 50-megapixel film of four 8-bit samples, or
# of two 16-bit ones) is refused while inflating, a piece at a time.
MAX_INFLATED_BYTES = 4 * MAX_PIXELS


def read_dicom(data: bytes) -> Film:
    """Decode a DICOM file's first frame as a film.

    Args:
        data: the file's bytes: with the 128-byte preamble and ``DICM``, or a bare data set
            (read with pydicom's ``force``; without a file meta group its transfer syntax is
            implicit or explicit VR little endian, as its first element shows).

    Returns:
        The :class:`~pneumo.io.Film`, with the safe header fields as its metadata.

    Raises:
        FilmReadError: a damaged header, no or undecodable pixel data, too many pixels,
            a deflated data set that inflates past :data:`MAX_INFLATED_BYTES`, or damaged
            display settings.
    """
    bare = data[128:132] != b"DICM"
    _check_deflated_size(data, start=0 if bare else 132)
    try:
        # pydicom is called through its modules so that the tests can stand in for it.
        dataset = pydicom.dcmread(io.BytesIO(data), force=bare)
        if "TransferSyntaxUID" not in dataset.file_meta:  # bare, or a meta group without it
            _infer_transfer_syntax(dataset)
        if "PixelData" not in dataset and "FloatPixelData" not in dataset:
            raise FilmReadError("The DICOM file holds no image (no pixel data).")
        rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        photometric = str(dataset.get("PhotometricInterpretation") or "").strip()
        if not photometric and int(dataset.get("SamplesPerPixel", 1) or 1) == 1:
            # Type 1, yet some old files leave it out; a single-sample film is taken as MONOCHROME2,
            # and the decoder is told so (it refuses a data set without it).
            photometric = dataset.PhotometricInterpretation = "MONOCHROME2"
        syntax = dataset.file_meta.get("TransferSyntaxUID")
        metadata = {
            label: str(dataset.get(keyword))
            for keyword, label in SAFE_FIELDS.items()
            if dataset.get(keyword) not in (None, "")
        }
    except FilmReadError:
        raise
    except Exception as err:
        # pydicom raises whatever its parsers meet (InvalidDicomError, EOFError, struct.error,
        # BytesLengthException, ...).
        raise FilmReadError("The DICOM header is damaged and cannot be read.") from err
    check_pixel_count(columns, rows)
    try:
        pixels = pydicom.pixels.pixel_array(dataset, index=0)  # decodes only the first frame
    except Exception as err:
        raise _pixel_data_error(syntax) from err
    except BaseException as err:
        # A Rust decoder's panic (pyo3's PanicException, e.g. pylibjpeg-rle on damaged RLE,
        # should pydicom find it installed) is no Exception; anything else goes on up.
        if type(err).__name__ != "PanicException":
            raise
        raise _pixel_data_error(syntax) from err

    notes: list[str] = []
    if frames > 1:
        notes.append(f"The DICOM file holds {frames} frames; the first was read.")
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2") and pixels.ndim == 2:
            gray, note = _gray_to_display(pixels, dataset)
            if photometric == "MONOCHROME1":  # stored with white as 0: shown inverted
                gray = 1.0 - gray
            if note:
                notes.append(note)
        else:
            gray = _colour_to_gray(pixels, dataset, photometric)
    except FilmReadError:
        raise
    except Exception as err:
        raise FilmReadError(
            "The DICOM display settings (rescale, window or lookup table) are damaged."
        ) from err
    return Film(pixels=gray.astype(np.float32), format="DICOM", source_mode=photometric,
                metadata=metadata, notes=tuple(notes), header=header_facts(dataset))


def _infer_transfer_syntax(dataset: Dataset) -> None:
    """Name the transfer syntax a data set without one in its file meta was read in.

    pydicom tells implicit from explicit VR by the first element and keeps what it found
    as ``original_encoding``; its pixel decoders need the syntax spelled out.
    """
    syntax = {(True, True): ImplicitVRLittleEndian, (False, True): ExplicitVRLittleEndian,
              (False, False): ExplicitVRBigEndian}.get(tuple(dataset.original_encoding))
    if syntax is None:
        raise FilmReadError("The DICOM header is damaged and cannot be read.")
    dataset.file_meta.TransferSyntaxUID = syntax


def _check_deflated_size(data: bytes, start: int = 132) -> None:
    """Refuse a deflated DICOM whose data set inflates past MAX_INFLATED_BYTES.

    pydicom reads the file meta group, then inflates the rest in one go; this reads the
    meta group the same way and, for the deflated syntax, inflates a piece at a time.
    ``start`` is where the meta group begins: after the preamble, or 0 in a bare data set.
    """
    stream = io.BytesIO(data)
    for implicit in (False, True):  # pydicom's own fallback for a meta group in implicit VR
        stream.seek(start)
        try:
            meta = read_dataset(stream, is_implicit_VR=implicit, is_little_endian=True,
                                stop_when=lambda tag, vr, length: tag >> 16 != 2)
            syntax = meta.get("TransferSyntaxUID")
            break
        except Exception:  # pydicom will meet the same damage and report it
            continue
    else:
        return
    if syntax != DeflatedExplicitVRLittleEndian:
        return
    inflater = zlib.decompressobj(-zlib.MAX_WBITS)
    pending, total = data[stream.tell():], 0
    try:
        while pending and not inflater.eof:
            total += len(inflater.decompress(pending, 1 << 22))
            pending = inflater.unconsumed_tail
            if total > MAX_INFLATED_BYTES:
                limit = f"{MAX_INFLATED_BYTES / 1e6:.0f} MB"
                raise FilmReadError(
                    f"The compressed DICOM file inflates to more than {limit}, "
                    "more than a film can hold; it was not read."
                )
    except zlib.error as err:
        raise FilmReadError("The compressed DICOM data set is damaged and cannot be read.") from err


def _pixel_data_error(syntax) -> FilmReadError:
    """A clear error for pixel data that did not decode, naming a compression if there is one."""
    if syntax is not None and not syntax.is_transfer_syntax:
        return FilmReadError(
            "The DICOM file names a transfer syntax this tool does not know, "
            "so its pixel data cannot be decoded."
        )
    if syntax is None or not syntax.is_compressed:
        return FilmReadError("The DICOM pixel data is damaged or truncated and cannot be decoded.")
    try:
        available = pydicom.pixels.get_decoder(syntax).is_available
    except Exception:  # no decoder is registered for this syntax at all
        available = False
    reason = "the compressed data is damaged" if available else "no decoder for it is installed"
    return FilmReadError(
        f"The DICOM pixel data is compressed as '{syntax.name}' and cannot be decoded: {reason}."
    )


def _gray_to_display(pixels: np.ndarray, dataset: Dataset) -> tuple[np.ndarray, str | None]:
    """Stored grey values -> [0, 1] as displayed (before MONOCHROME1 inversion).

    The modality LUT (rescale slope and intercept) comes first, then the VOI transform: the
    first window, or else the first VOI LUT. A file with neither is shown over the full
    range its stored bits can hold, as a raster file of that depth would be.
    """
    values = pydicom.pixels.apply_modality_lut(pixels, dataset).astype(np.float64)
    windowed = _window(values, dataset)
    if windowed is not None:
        return windowed, None
    if dataset.get("VOILUTSequence"):
        return _voi_lut(values, dataset), None
    if not np.issubdtype(pixels.dtype, np.integer):  # Float Pixel Data: no nominal range
        low, high = float(values.min()), float(values.max())
    else:
        bits = int(dataset.get("BitsStored") or pixels.dtype.itemsize * 8)
        bits = min(max(bits, 1), pixels.dtype.itemsize * 8)
        signed = int(dataset.get("PixelRepresentation", 0) or 0) == 1
        stored = np.array([-(2 ** (bits - 1)), 2 ** (bits - 1) - 1] if signed else [0, 2**bits - 1])
        bounds = pydicom.pixels.apply_modality_lut(stored, dataset).astype(np.float64)
        low, high = float(bounds.min()), float(bounds.max())
    note = "The file sets no display window; its full range of values is shown."
    if not high > low:
        return np.zeros_like(values), note
    return np.clip((values - low) / (high - low), 0.0, 1.0), note


def _window(values: np.ndarray, dataset: Dataset) -> np.ndarray | None:
    """The file's first VOI window applied by pydicom onto [0, 1]; None without a usable one.

    pydicom's ``apply_windowing`` does the arithmetic (PS3.3 C.11.2.1.2: LINEAR, LINEAR_EXACT,
    SIGMOID). What it would refuse, or turn into NaN, is settled here first: a blank or unknown
    VOI LUT Function is LINEAR, the standard's default, and a window that is not finite or too
    narrow for its function is no window at all (the VOI LUT or the full range is shown).
    """
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center in (None, "") or width in (None, ""):
        return None
    center, width = _first(center), _first(width)
    function = str(dataset.get("VOILUTFunction", "") or "").strip().upper()
    if function not in ("LINEAR_EXACT", "SIGMOID"):
        function = "LINEAR"
    usable = width >= 1 if function == "LINEAR" else width > 0
    if not (np.isfinite(center) and np.isfinite(width) and usable):
        return None
    # Only the window is handed over. Its output range follows Bits Stored and Pixel
    # Representation: one unsigned bit makes it [0, 1], the display scale, exactly.
    window = Dataset()
    window.PhotometricInterpretation = "MONOCHROME2"
    window.BitsStored, window.PixelRepresentation = 1, 0
    window.add_new("WindowCenter", "FD", center)
    window.add_new("WindowWidth", "FD", width)
    window.VOILUTFunction = function
    with np.errstate(over="ignore"):  # SIGMOID far from its centre: exp overflows to 0 or 1
        return pydicom.pixels.apply_windowing(values, window)


def _first(value) -> float:
    """The first value of a multi-valued element (of several windows, the first is the default)."""
    return float(value[0] if isinstance(value, (list, tuple, MultiValue)) else value)


def _voi_lut(values: np.ndarray, dataset: Dataset) -> np.ndarray:
    """The first VOI LUT applied, onto [0, 1] over its nominal output range."""
    item = dataset.VOILUTSequence[0]
    depth = int(item.LUTDescriptor[2])
    if depth == 8:
        # pydicom 3.0 indexes an 8-bit LUT in uint8, wrapping every input above 255; its entries
        # read the same as 16-bit ones, so it is applied as one (the scale below stays 8-bit).
        widened = copy.deepcopy(item)
        widened.LUTDescriptor = [int(item.LUTDescriptor[0]), int(item.LUTDescriptor[1]), 16]
        dataset = copy.copy(dataset)
        dataset.VOILUTSequence = [widened]
    # The LUT maps integer input values; its output has `depth` bits (PS3.3 C.11.2.1.1).
    mapped = pydicom.pixels.apply_voi(np.round(values).astype(np.int64), dataset)
    return np.clip(mapped.astype(np.float64) / (2**depth - 1), 0.0, 1.0)


def _colour_to_gray(pixels: np.ndarray, dataset: Dataset, photometric: str) -> np.ndarray:
    """Colour DICOM (RGB, YBR converted to RGB by pydicom, or a palette) -> grey in [0, 1]."""
    if photometric == "PALETTE COLOR":
        pixels = pydicom.pixels.apply_color_lut(pixels, dataset)
        top = float(np.iinfo(pixels.dtype).max)
    elif np.issubdtype(pixels.dtype, np.integer):
        bits = int(dataset.get("BitsStored") or pixels.dtype.itemsize * 8)
        top = float(2 ** min(max(bits, 1), pixels.dtype.itemsize * 8) - 1)
    else:
        top = max(float(pixels.max()), 1.0)
    pixels = pixels.astype(np.float64) / top
    if pixels.ndim == 3 and pixels.shape[-1] >= 3:
        # ITU-R 601-2 luma, as Pillow's "L" conversion.
        gray = pixels[..., 0] * 0.299 + pixels[..., 1] * 0.587 + pixels[..., 2] * 0.114
    elif pixels.ndim == 2:
        gray = pixels
    else:
        raise FilmReadError(
            f"The DICOM image has an unexpected layout ({photometric!r}, shape {pixels.shape})."
        )
    return np.clip(gray, 0.0, 1.0)


# ---------------------------------------------------------------- what the header says

# Storage classes that hold raw detector data (DX, mammography and intra-oral, "For Processing").
FOR_PROCESSING_CLASSES = {
    "1.2.840.10008.5.1.4.1.1.1.1.1", "1.2.840.10008.5.1.4.1.1.1.2.1", "1.2.840.10008.5.1.4.1.1.1.3.1",
}
# Dates the age at the examination may be counted to, best first.
EXAMINATION_DATES = ("StudyDate", "AcquisitionDate", "SeriesDate", "ContentDate")
AGE_UNITS = {"D": 1 / 365.25, "W": 7 / 365.25, "M": 1 / 12, "Y": 1.0}
OLDEST_PLAUSIBLE_AGE = 130


def read_header(data: bytes) -> HeaderFacts | None:
    """What a DICOM file's header says (:func:`header_facts`), without its pixel data; None when
    the header cannot be read. For a file whose pixels could not be decoded."""
    try:
        _check_deflated_size(data)  # a deflate bomb is never handed to pydicom, here either
        return header_facts(pydicom.dcmread(io.BytesIO(data), stop_before_pixels=True, force=True))
    except Exception:  # the header is damaged too: nothing to say
        return None


def header_facts(dataset: Dataset) -> HeaderFacts:
    """What the header says about the examination (:class:`~pneumo.io.HeaderFacts`).

    A damaged or implausible field counts as missing; the birth and examination dates are
    read only to count the age, and are not kept.
    """
    def code(keyword: str) -> str:
        try:
            return " ".join(str(dataset.get(keyword, "") or "").split()).upper()
        except Exception:
            return ""

    codes: list[str] = []
    meanings: list[str] = []
    try:
        for item in dataset.get("ViewCodeSequence") or []:
            codes.append(str(item.get("CodeValue", "") or "").strip())
            meanings.append(str(item.get("CodeMeaning", "") or "").strip().lower())
    except Exception:
        codes, meanings = [], []
    sop_class = str(dataset.get("SOPClassUID", "") or "")
    return HeaderFacts(
        modality=code("Modality"), body_part=code("BodyPartExamined"),
        view_position=code("ViewPosition"), view_codes=tuple(filter(None, codes)),
        view_meanings=tuple(filter(None, meanings)),
        age_years=_age_years(dataset),
        for_processing=code("PresentationIntentType") == "FOR PROCESSING"
        or sop_class in FOR_PROCESSING_CLASSES,
    )


def _age_years(dataset: Dataset) -> float | None:
    """The age at the examination: Patient's Age ("nnnD/W/M/Y"), else birth date to study date."""
    try:
        text = str(dataset.get("PatientAge", "") or "").strip().upper()
        if len(text) == 4 and text[:3].isdigit() and text[3] in AGE_UNITS:
            return _plausible(int(text[:3]) * AGE_UNITS[text[3]])
        birth = _date(dataset.get("PatientBirthDate"))
        for keyword in EXAMINATION_DATES:
            seen = _date(dataset.get(keyword))
            if birth is not None and seen is not None:
                return _plausible((seen - birth).days / 365.25)
    except Exception:
        pass
    return None


def _date(value):
    """A DA value (YYYYMMDD) as a date, or None."""
    text = str(value or "").strip()
    try:
        return datetime.datetime.strptime(text[:8], "%Y%m%d").date() if len(text) >= 8 else None
    except ValueError:
        return None


def _plausible(years: float) -> float | None:
    return years if 0 <= years <= OLDEST_PLAUSIBLE_AGE else None
