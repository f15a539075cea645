"""Reading films: JPEG, PNG, TIFF, BMP and DICOM, from a path or from bytes.

Every reader returns a :class:`Film`: one grayscale frame as float32 in [0, 1]
(0 = black, as displayed), plus the few facts about the file that are safe to
show. Patient identifiers in DICOM headers are never read into a ``Film``.
"""

from __future__ import annotations

import io
import warnings
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

# Keep Pillow's own bomb check in line with ours (it warns at half and raises at twice its limit).
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
    """

    pixels: np.ndarray
    format: str
    source_mode: str
    metadata: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

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
    return film


def _read_bytes(source: str | Path | bytes) -> bytes:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    if not path.exists():
        raise FilmReadError(f"No such file: {path}.")
    if path.is_dir():
        raise FilmReadError(f"{path} is a folder, not a file.")
    try:
        return path.read_bytes()
    except OSError as err:
        raise FilmReadError(f"The file cannot be opened: {err.strerror or err}.") from err


def _is_dicom(data: bytes) -> bool:
    return len(data) >= 132 and data[128:132] == b"DICM"


def _check_pixel_count(width: int, height: int) -> None:
    if width * height > MAX_PIXELS:
        raise FilmReadError(
            f"The image is {width} x {height} pixels ({width * height / 1e6:.0f} megapixels), "
            f"more than the {MAX_PIXELS / 1e6:.0f} megapixels a film can have; it was not decoded."
        )


def _read_raster(data: bytes) -> Film:
    try:
        with warnings.catch_warnings():
            # Pillow's bomb warning is replaced by our own check and message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data))
            _check_pixel_count(*image.size)
            image.load()
            fmt = image.format or "image"
            image = ImageOps.exif_transpose(image)
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
    except (OSError, SyntaxError, ValueError) as err:
        raise FilmReadError(f"The image is damaged or truncated and cannot be decoded ({err}).") from err
    notes: list[str] = []
    if getattr(image, "n_frames", 1) > 1:
        notes.append(f"The file holds {image.n_frames} images; the first was read.")
    mode = image.mode
    return Film(pixels=_raster_to_gray(image), format=fmt, source_mode=mode, notes=tuple(notes))


def _raster_to_gray(image: Image.Image) -> np.ndarray:
    """Pillow image of any mode -> float32 (H, W) in [0, 1]."""
    mode = image.mode
    if mode in ("I;16", "I;16B", "I;16L", "I;16N"):
        return np.asarray(image, dtype=np.float32) / 65535.0
    if mode in ("I", "F"):
        array = np.asarray(image, dtype=np.float64)
        top = 65535.0 if array.max(initial=0) > 255 else 255.0
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


def _read_dicom(data: bytes) -> Film:
    import pydicom
    from pydicom.errors import InvalidDicomError
    from pydicom.pixels import apply_modality_lut

    try:
        dataset = pydicom.dcmread(io.BytesIO(data))
    except (InvalidDicomError, OSError, ValueError, EOFError, KeyError, TypeError) as err:
        raise FilmReadError(f"The DICOM file is damaged and cannot be read ({err}).") from err
    if "PixelData" not in dataset and "FloatPixelData" not in dataset:
        raise FilmReadError("The DICOM file holds no image (no pixel data).")
    rows, columns = int(dataset.get("Rows", 0) or 0), int(dataset.get("Columns", 0) or 0)
    _check_pixel_count(columns, rows)
    frames = int(dataset.get("NumberOfFrames", 1) or 1)
    try:
        pixels = dataset.pixel_array if frames == 1 else _first_frame(dataset)
    except (NotImplementedError, RuntimeError) as err:
        syntax = dataset.file_meta.get("TransferSyntaxUID")
        name = getattr(syntax, "name", str(syntax))
        raise FilmReadError(
            f"The DICOM file is compressed as '{name}', which this installation cannot decode."
        ) from err
    except (ValueError, AttributeError, KeyError, EOFError, TypeError) as err:
        raise FilmReadError(f"The DICOM pixel data is damaged and cannot be decoded ({err}).") from err

    photometric = str(dataset.get("PhotometricInterpretation", "MONOCHROME2"))
    notes: list[str] = []
    if frames > 1:
        notes.append(f"The DICOM file holds {frames} frames; the first was read.")
    if photometric not in ("MONOCHROME1", "MONOCHROME2"):
        gray = _raster_to_gray(Image.fromarray(np.asarray(pixels, dtype=np.uint8)).convert("L"))
    else:
        values = apply_modality_lut(np.asarray(pixels), dataset).astype(np.float64)
        gray = _window(values, dataset)
        if photometric == "MONOCHROME1":
            gray = 1.0 - gray
    metadata = {
        label: str(dataset.get(keyword))
        for keyword, label in DICOM_SAFE_FIELDS.items()
        if dataset.get(keyword) not in (None, "")
    }
    return Film(pixels=gray.astype(np.float32), format="DICOM", source_mode=photometric,
                metadata=metadata, notes=tuple(notes))


def _first_frame(dataset) -> np.ndarray:
    from pydicom.pixels import pixel_array

    return pixel_array(dataset, index=0)


def _window(values: np.ndarray, dataset) -> np.ndarray:
    """Apply the DICOM VOI window (or VOI LUT) and scale to [0, 1]."""
    center, width = dataset.get("WindowCenter"), dataset.get("WindowWidth")
    if center is not None and width is not None:
        center = float(center[0] if _is_multi(center) else center)
        width = float(width[0] if _is_multi(width) else width)
        if width >= 1:
            # DICOM PS3.3 C.11.2.1.2.1, the "LINEAR" function, onto [0, 1].
            scaled = (values - (center - 0.5)) / (width - 1) + 0.5
            return np.clip(scaled, 0.0, 1.0)
    if "VOILUTSequence" in dataset:
        from pydicom.pixels import apply_voi_lut

        values = apply_voi_lut(values, dataset).astype(np.float64)
    low, high = float(values.min()), float(values.max())
    if high <= low:
        return np.zeros_like(values)
    return (values - low) / (high - low)


def _is_multi(value) -> bool:
    return isinstance(value, (list, tuple)) or type(value).__name__ == "MultiValue"


def find_film_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (walked recursively) into a sorted list of film paths.

    Files named directly are kept whatever their ending; inside folders only files
    with a film ending (or none, as DICOM exports often have) are picked up.

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
            if child.is_file() and not child.name.startswith(".") and (
                child.suffix.lower() in FILM_SUFFIXES or child.suffix == ""
            ):
                found.append(child)
    return found
