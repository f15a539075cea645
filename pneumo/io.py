"""Reading films: JPEG, PNG, TIFF, BMP and DICOM, from a path or from bytes.

Every reader returns a :class:`Film`: one grayscale frame as float32 in [0, 1]
(0 = black, as displayed), plus the few facts about the file that are safe to
show. Patient identifiers in DICOM headers are never read into a ``Film``.

Whatever the bytes, the only error raised is :class:`FilmReadError`, with one
sentence for the user; sizes are checked from headers before any pixel is decoded.
Only the formats named above are opened (Pillow knows more, some of which it hands
to outside programs).
"""

from __future__ import annotations

import io
import warnings
import zlib
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000
"""Largest film accepted (width x height), checked before any pixel is decoded."""

MIN_SIDE = 64
"""Smallest side, in pixels, of an image that can still be a chest film."""

FILM_SUFFIXES = (".jpeg", ".jpg", ".png", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
"""File endings the folder walkers pick up (DICOM files without an ending are read too)."""

# DICOM header fields that may be shown to a user. Everything else, and above all
# PatientName, PatientID, PatientBirthDate and AccessionNumber, is never copied.
DICOM_SAFE_FIELDS = {
    "Modality": "modality",
    "ViewPosition": "view",
    "BodyPartExamined": "body_part",
    "StudyDate": "study_date",
    "PhotometricInterpretation": "photometric",
}

# Keep Pillow's own bomb check in line with ours (it warns above its limit, raises above twice it).
Image.MAX_IMAGE_PIXELS = MAX_PIXELS


class FilmReadError(ValueError):
    """A file that cannot be read as a film; the message is one sentence for the user."""


@dataclass(frozen=True)
class Film:
    """One decoded film.

    Attributes:
        pixels: float32 array (height, width) in [0, 1], 0 displayed as black.
        format: the container it came from ("JPEG", "PNG", "DICOM", ...).
        source_mode: the pixel layout of the file ("L", "RGB", "I;16", "MONOCHROME1", ...).
        metadata: header fields safe to show (DICOM view, modality, study date).
        notes: facts worth telling the user about how the file was read.
        colourfulness: how much colour the file held before grayscale conversion: the
            spread of its RGB pixels (in [0, 1]) beyond a single tint, 0 for grayscale files
            and for grey or evenly tinted (sepia, bluish) scans. Read by pneumo.guard.
    """

    pixels: np.ndarray
    format: str
    source_mode: str
    metadata: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    colourfulness: float = 0.0

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.pixels.shape[1]), int(self.pixels.shape[0])


def read_film(source: str | Path | bytes) -> Film:
    """Read one film from a path or from the file's bytes.

    Args:
        source: a file path, or the raw bytes of an uploaded file.

    Returns:
        The decoded :class:`Film`.

    Raises:
        FilmReadError: the file is missing, empty, truncated, not an image, too
            large, too small, or a DICOM without decodable pixel data.
    """
    data = _read_bytes(source)
    if not data:
        raise FilmReadError("The file is empty.")
    if _is_dicom(data):
        film = _read_dicom(data)
    elif data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        raise FilmReadError("This is a ZIP archive, not an image: extract the films first.")
    else:
        film = _read_raster(data)
    height, width = film.pixels.shape
    if min(height, width) < MIN_SIDE:
        raise FilmReadError(
            f"The image is {width} x {height} pixels, too small to be a chest film "
            f"(at least {MIN_SIDE} pixels a side)."
        )
    if not np.isfinite(film.pixels).all():
        raise FilmReadError("The image holds values that are not numbers (NaN or infinity).")
    return film


def _read_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        if path.is_dir():
            raise FilmReadError(f"The path {path} is a folder, not a file.")
        return path.read_bytes()
    except FileNotFoundError as err:
        raise FilmReadError(f"No such file: {path}.") from err
    except (OSError, ValueError) as err:  # ValueError: a path with a NUL byte
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise FilmReadError(f"The file {path} cannot be opened ({reason}).") from err


def _is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _one_line(err: BaseException) -> str:
    """The first line of an exception's message, short enough to sit inside a sentence."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
    return text if len(text) <= 120 else text[:117] + "..."


def _check_pixel_count(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise FilmReadError(
            f"The image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), "
            f"more than the {MAX_PIXELS / 1e6:.0f} megapixels a film can have; it was not decoded."
        )


# The raster formats read, by Pillow's names. Pillow knows many more (EPS and PDF among
# them, which it hands to Ghostscript); an upload is never opened as one of those.
RASTER_FORMATS = ("JPEG", "PNG", "TIFF", "BMP")


def _read_raster(data: bytes) -> Film:
    try:
        with warnings.catch_warnings():
            # Pillow's bomb warning is replaced by our own check and message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
            _check_pixel_count(*image.size)
            image.load()
            fmt = image.format or "image"
            frames = getattr(image, "n_frames", 1)
            image = ImageOps.exif_transpose(image)
            mode = image.mode
            pixels = _raster_to_gray(image)
            colourfulness = _colourfulness(image)
    except FilmReadError:
        raise
    except Image.DecompressionBombError as err:
        raise FilmReadError(
            f"The image is larger than the {MAX_PIXELS / 1e6:.0f} megapixels a film can have; "
            "it was not decoded."
        ) from err
    except UnidentifiedImageError as err:
        raise FilmReadError(
            "The file is not an image this tool can read (JPEG, PNG, TIFF, BMP or DICOM)."
        ) from err
    except Exception as err:
        # Pillow's decoders and EXIF parser raise many kinds of errors on damaged files
        # (OSError, SyntaxError, struct.error, IndexError, ...): all mean the same here.
        raise FilmReadError(
            f"The image is damaged or truncated and cannot be decoded ({_one_line(err)})."
        ) from err
    notes: list[str] = []
    if frames > 1:
        notes.append(f"The file holds {frames} images; the first was read.")
    return Film(pixels=pixels, format=fmt, source_mode=mode, notes=tuple(notes),
                colourfulness=colourfulness)


_GRAY_MODES = ("1", "L", "LA", "La", "I", "F", "I;16", "I;16B", "I;16L", "I;16N")


def _colourfulness(image: Image.Image, side: int = 256) -> float:
    """How much colour an image holds beyond one tint, on a [0, 1] scale.

    The RGB pixels (in [0, 1], on a copy at most ``side`` pixels a side) vary mostly along
    one direction for a grey or evenly tinted film; the spread across that direction,
    sqrt of the two smaller eigenvalues of their 3 x 3 covariance, is what several hues add.
    Grayscale modes give 0 without a look at the pixels.
    """
    if image.mode in _GRAY_MODES:
        return 0.0
    rgb = image.convert("RGB")
    if max(rgb.size) > side:
        scale = side / max(rgb.size)
        rgb = rgb.resize((max(1, round(rgb.width * scale)), max(1, round(rgb.height * scale))),
                         Image.Resampling.BOX)
    pixels = np.asarray(rgb, dtype=np.float64).reshape(-1, 3) / 255.0
    if len(pixels) < 2:
        return 0.0
    eigenvalues = np.linalg.eigvalsh(np.cov(pixels, rowvar=False))  # ascending
    return float(np.sqrt(max(eigenvalues[0] + eigenvalues[1], 0.0)))


def _raster_to_gray(image: Image.Image) -> np.ndarray:
    """Pillow image of any mode -> float32 (H, W) in [0, 1]."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        if not np.isfinite(array).all():
            raise FilmReadError("The image holds values that are not numbers (NaN or infinity).")
        peak = array.max(initial=0)
        # Integer or float samples with no stated range: [0, 1] floats, 8 or 16 bits.
        top = 1.0 if mode == "F" and peak <= 1.0 else 65535.0 if peak > 255 else 255.0
        return np.clip(array / top, 0.0, 1.0).astype(np.float32)
    if mode in ("RGBA", "LA", "PA") or (mode == "P" and "transparency" in image.info):
        # Transparent areas are shown as black, as a viewer on a dark background would.
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (0, 0, 0, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode == "1":
        image = image.convert("L")
    if image.mode != "L":
        image = image.convert("RGB").convert("L")
    return np.asarray(image, dtype=np.float32) / 255.0


# A deflated DICOM data set is inflated whole by pydicom before anything is checked; one
# that would inflate past this many bytes (a 50-megapixel film of four 8-bit samples, or
# of two 16-bit ones) is refused while inflating, a piece at a time.
MAX_INFLATED_BYTES = 4 * MAX_PIXELS


def _read_dicom(data: bytes) -> Film:
    import pydicom

    _check_deflated_size(data)
    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
        if "PixelData" not in dataset and "FloatPixelData" not in dataset:
            raise FilmReadError("The DICOM file holds no image (no pixel data).")
        rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
        frames = int(dataset.get("NumberOfFrames", 1) or 1)
        photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2")).strip()
        syntax = dataset.file_meta.get("TransferSyntaxUID")
        metadata = {
            label: str(dataset.get(keyword))
            for keyword, label in DICOM_SAFE_FIELDS.items()
            if dataset.get(keyword) not in (None, "")
        }
    except FilmReadError:
        raise
    except Exception as err:
        # pydicom raises whatever its parsers meet (InvalidDicomError, EOFError, struct.error,
        # BytesLengthException, ...). Its messages may quote header values, so none is shown.
        raise FilmReadError("The DICOM header is damaged and cannot be read.") from err
    _check_pixel_count(columns, rows)
    try:
        pixels = _first_frame(dataset)
    except Exception as err:
        raise _pixel_data_error(syntax) from err

    notes: list[str] = []
    if frames > 1:
        notes.append(f"The DICOM file holds {frames} frames; the first was read.")
    try:
        if photometric in ("MONOCHROME1", "MONOCHROME2") and pixels.ndim == 2:
            gray, note = _dicom_gray_to_display(pixels, dataset)
            if photometric == "MONOCHROME1":  # stored with white as 0: shown inverted
                gray = 1.0 - gray
            if note:
                notes.append(note)
        else:
            gray = _dicom_color_to_gray(pixels, dataset, photometric)
    except FilmReadError:
        raise
    except Exception as err:
        raise FilmReadError(
            "The DICOM display settings (rescale, window or lookup table) are damaged."
        ) from err
    return Film(pixels=gray.astype(np.float32), format="DICOM", source_mode=photometric,
                metadata=metadata, notes=tuple(notes))


def _check_deflated_size(data: bytes) -> None:
    """Refuse a deflated DICOM whose data set inflates past MAX_INFLATED_BYTES.

    pydicom reads the file meta group, then inflates the rest in one go; this reads the
    meta group the same way and, for the deflated syntax, inflates a piece at a time.
    """
    from pydicom.filereader import read_dataset
    from pydicom.uid import DeflatedExplicitVRLittleEndian

    stream = io.BytesIO(data)
    for implicit in (False, True):  # pydicom's own fallback for a meta group in implicit VR
        stream.seek(132)
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


def _first_frame(dataset) -> np.ndarray:
    """The first frame's stored values, decoding only that frame of a multi-frame file."""
    from pydicom.pixels import pixel_array

    return pixel_array(dataset, index=0)


def _pixel_data_error(syntax) -> FilmReadError:
    """A clear error for pixel data that did not decode, naming a compression if there is one."""
    from pydicom.pixels import get_decoder

    if syntax is not None and not syntax.is_transfer_syntax:
        return FilmReadError(
            "The DICOM file names a transfer syntax this tool does not know, "
            "so its pixel data cannot be decoded."
        )
    if syntax is None or not syntax.is_compressed:
        return FilmReadError("The DICOM pixel data is damaged or truncated and cannot be decoded.")
    try:
        available = get_decoder(syntax).is_available
    except Exception:  # no decoder is registered for this syntax at all
        available = False
    reason = "the compressed data is damaged" if available else "no decoder for it is installed"
    return FilmReadError(
        f"The DICOM pixel data is compressed as '{syntax.name}' and cannot be decoded: {reason}."
    )


def _dicom_gray_to_display(pixels: np.ndarray, dataset) -> tuple[np.ndarray, str | None]:
    """Stored grey values -> [0, 1] as displayed (before MONOCHROME1 inversion).

    The modality LUT (rescale slope and intercept) comes first, then the VOI transform: the
    first window, or else the first VOI LUT. A file with neither is shown over the full
    range its stored bits can hold, as a raster file of that depth would be.
    """
    from pydicom.pixels import apply_modality_lut

    values = apply_modality_lut(pixels, dataset).astype(np.float64)
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
        bounds = apply_modality_lut(stored, dataset).astype(np.float64)
        low, high = float(bounds.min()), float(bounds.max())
    note = "The file sets no display window; its full range of values is shown."
    if not high > low:
        return np.zeros_like(values), note
    return np.clip((values - low) / (high - low), 0.0, 1.0), note


def _window(values: np.ndarray, dataset) -> np.ndarray | None:
    """The first VOI window of the file applied onto [0, 1], or None if it has no usable one.

    DICOM PS3.3 C.11.2.1.2: LINEAR (the default), LINEAR_EXACT and SIGMOID.
    """
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is None or width is None or center == "" or width == "":
        return None
    center = float(center[0] if _is_multi(center) else center)
    width = float(width[0] if _is_multi(width) else width)
    function = str(dataset.get("VOILUTFunction", "LINEAR") or "LINEAR").strip().upper()
    if not (np.isfinite(center) and np.isfinite(width)):
        return None
    if function == "SIGMOID" and width > 0:
        with np.errstate(over="ignore"):
            return 1.0 / (1.0 + np.exp(-4.0 * (values - center) / width))
    if function == "LINEAR_EXACT" and width > 0:
        return np.clip((values - center) / width + 0.5, 0.0, 1.0)
    if width == 1:  # LINEAR with width 1 is a threshold at center - 0.5
        return (values > center - 0.5).astype(np.float64)
    if width > 1:
        return np.clip((values - (center - 0.5)) / (width - 1) + 0.5, 0.0, 1.0)
    return None


def _voi_lut(values: np.ndarray, dataset) -> np.ndarray:
    """The first VOI LUT applied, onto [0, 1] over its nominal output range."""
    from pydicom.pixels import apply_voi

    depth = int(dataset.VOILUTSequence[0].LUTDescriptor[2])
    # The LUT maps integer input values; its output has `depth` bits (PS3.3 C.11.2.1.1).
    mapped = apply_voi(np.round(values).astype(np.int64), dataset)
    return np.clip(mapped.astype(np.float64) / (2**depth - 1), 0.0, 1.0)


def _dicom_color_to_gray(pixels: np.ndarray, dataset, photometric: str) -> np.ndarray:
    """Colour DICOM (RGB, YBR converted to RGB by pydicom, or a palette) -> grey in [0, 1]."""
    from pydicom.pixels import apply_color_lut

    if photometric == "PALETTE COLOR":
        pixels = apply_color_lut(pixels, dataset)
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


def _is_multi(value) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def find_film_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (walked recursively) into a sorted list of film paths.

    Files named directly are kept whatever their ending; inside folders only files
    with a film ending (or none, as DICOM exports often have) are picked up. Hidden
    files, and everything inside hidden folders (``.git``, ``.ipynb_checkpoints``),
    are skipped.

    Args:
        paths: files and folders, in the order they should be listed.

    Returns:
        The files named directly, and each folder's films in sorted order.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    found: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"No such file or folder: {path}")
        if path.is_file():
            found.append(path)
            continue
        for child in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if not hidden and child.is_file() and (
                child.suffix.lower() in FILM_SUFFIXES or child.suffix == ""
            ):
                found.append(child)
    return found
