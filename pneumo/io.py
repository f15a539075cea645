"""Reading films: JPEG, PNG, TIFF, BMP and DICOM, from a path or from bytes.

:func:`read_film` is the one entry point. It tells the file's type from its first bytes,
reads raster images here with Pillow and hands DICOM files (with the preamble, or a bare
data set that starts as one would) to :mod:`pneumo.dicom`; every
film comes back as a :class:`Film`: one grayscale frame as float32 in [0, 1] (0 = black,
as displayed), plus the few facts about the file that are safe to show.

Whatever the bytes, the only error raised is :class:`FilmReadError`, with one
sentence for the user; sizes are checked from headers before any pixel is decoded,
against this module's own :data:`MAX_PIXELS` (Pillow's process-wide limit is left as
it is). Only the formats named above are opened (Pillow knows more, some of which it
hands to outside programs).
"""

from __future__ import annotations

import io
import os
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

MAX_PIXELS = 50_000_000
"""Largest film accepted (width x height), checked before any pixel is decoded."""

MIN_SIDE = 64
"""Smallest side, in pixels, of an image that can still be a chest film."""

MAX_FILE_BYTES = 512 * 1024 * 1024
"""A file larger than this is not read: no radiograph comes near it, and reading one whole
(a disk image or a video in an archive) could take a batch worker's memory."""
INDEX_FILE_NAMES = ("dicomdir",)
"""Index files a DICOM CD or export carries beside its films: skipped inside folders."""
FILM_SUFFIXES = (".jpg", ".jpeg", ".png", ".tif", ".tiff", ".bmp", ".dcm", ".dicom")
"""File endings the folder walkers pick up (DICOM files without an ending are read too)."""

FILM_TYPES = tuple(suffix.removeprefix(".") for suffix in FILM_SUFFIXES)
"""The same endings without the dot, as an upload widget takes them."""


class FilmReadError(ValueError):
    """A file that cannot be read as a film; the message is one sentence for the user.

    ``header`` holds what a DICOM file's header says about the examination when the header
    could be read (:class:`HeaderFacts`), so that its intended-use checks still apply.
    """

    header: HeaderFacts | None = None


@dataclass(frozen=True)
class HeaderFacts:
    """What a DICOM header says about the examination, for the intended-use checks.

    Codes and one derived age only: never a name, an identifier or a date. An empty string
    (or None) means the header did not say; :mod:`pneumo.guard.header` reads these.

    Attributes:
        modality: the Modality code, upper case ("DX", "CT", ...).
        body_part: Body Part Examined, upper case, as written (a code or vendor free text).
        view_position: View Position, upper case ("AP", "PA", "LL", ...).
        view_codes: the View Code Sequence's code values.
        view_meanings: the same codes' meanings, lower case ("left lateral", ...).
        age_years: the patient's age at the examination, from Patient's Age or else from the
            birth date and the study (or acquisition) date; None when neither gives one.
        for_processing: True when the image is raw detector data (Presentation Intent Type
            "FOR PROCESSING", or a "For Processing" storage class).
    """

    modality: str = ""
    body_part: str = ""
    view_position: str = ""
    view_codes: tuple[str, ...] = ()
    view_meanings: tuple[str, ...] = ()
    age_years: float | None = None
    for_processing: bool = False


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
            and for grey or evenly tinted (sepia, bluish) scans. Read by pneumo.guard.detector.
        header: what a DICOM header says about the examination (None for other files).
    """

    pixels: np.ndarray
    format: str
    source_mode: str
    metadata: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()
    colourfulness: float = 0.0
    header: HeaderFacts | None = None

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
    data = read_bytes(source)
    if not data:
        raise FilmReadError("The file is empty.")
    # The DICOM preamble and marker (PS3.10 7.1), or a bare data set.
    if (len(data) >= 132 and data[128:132] == b"DICM") or looks_like_bare_dicom(data):
        film = _read_dicom(data)
    elif data[:4] in (b"PK\x03\x04", b"PK\x05\x06"):
        raise FilmReadError("This is a ZIP archive, not an image: extract the films first.")
    else:
        film = _read_raster(data)
    height, width = film.pixels.shape
    if min(height, width) < MIN_SIDE:
        error = FilmReadError(
            f"The image is {width} x {height} pixels, too small to be a chest film "
            f"(at least {MIN_SIDE} pixels a side)."
        )
        error.header = film.header
        raise error
    if not np.isfinite(film.pixels).all():
        raise FilmReadError("The image holds values that are not numbers (NaN or infinity).")
    return film


# Value representations (PS3.5 6.2): an explicit VR element names one of these after its tag.
DICOM_VRS = frozenset(
    "AE AS AT CS DA DS DT FD FL IS LO LT OB OD OF OL OV OW PN SH SL SQ SS ST SV TM UC UI UL "
    "UN UR US UT UV".split()
)


def looks_like_bare_dicom(data: bytes) -> bool:
    """True when a file without the DICOM preamble starts as a DICOM data set would.

    Older CR exports write the data set alone (PS3.10 7.1 without its 128 bytes and
    ``DICM``). The first element must be in group 0x0002 (file meta) or 0x0008 (identifying),
    little endian, then either an explicit VR or an implicit VR length that fits the file;
    or in group 0x0008, big endian, with an explicit VR (there is no implicit big endian).
    """
    if len(data) < 8:
        return False
    if data[0] == 0 and data[1] == 0x08 and data[2] < 0x20:  # explicit VR big endian
        return data[4:6].decode("latin-1") in DICOM_VRS
    if data[1] != 0 or data[0] not in (0x02, 0x08) or data[3] >= 0x20:
        return False
    vr = data[4:6].decode("latin-1")
    if vr in DICOM_VRS:
        return True
    length = int.from_bytes(data[4:8], "little")
    return length < 0x1000 and 8 + length <= len(data)


def _read_dicom(data: bytes) -> Film:
    """:func:`pneumo.dicom.read_dicom`, with what the header says attached to any error."""
    from pneumo.dicom import read_dicom, read_header  # here: pneumo.dicom builds on this module

    try:
        return read_dicom(data)
    except FilmReadError as err:
        err.header = read_header(data)
        raise


def read_bytes(source: str | Path | bytes) -> bytes:
    """A file's bytes (bytes given are returned as they are).

    Raises:
        FilmReadError: no such file, a folder, or a file that cannot be opened.
    """
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    path = Path(source)
    try:
        if path.is_dir():
            raise FilmReadError(f"The path {path} is a folder, not a file.")
        size = path.stat().st_size
        if size > MAX_FILE_BYTES:
            raise FilmReadError(f"The file {path} holds {size / 2**20:,.0f} MB, more than any radiograph "
                                f"(limit {MAX_FILE_BYTES / 2**20:,.0f} MB); it was not read.")
        return path.read_bytes()
    except FileNotFoundError as err:
        raise FilmReadError(f"No such file: {path}.") from err
    except (OSError, ValueError) as err:  # ValueError: a path with a NUL byte
        reason = err.strerror if isinstance(err, OSError) and err.strerror else str(err)
        raise FilmReadError(f"The file {path} cannot be opened ({reason}).") from err


def one_line(err: BaseException) -> str:
    """The first line of an exception's message, short enough to sit inside a sentence."""
    text = (str(err).strip().splitlines() or [type(err).__name__])[0].rstrip(".")
    return text if len(text) <= 120 else text[:117] + "..."


def check_pixel_count(width: int, height: int) -> None:
    """Refuse a film whose header claims more than :data:`MAX_PIXELS`, before decoding it.

    Raises:
        FilmReadError: width x height is over the limit.
    """
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
            # Pillow's own bomb check still runs, at its default limit (above ours): its
            # warning gives way to our check and message, its error to our message.
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=RASTER_FORMATS)
            check_pixel_count(*image.size)
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
            f"The image is damaged or truncated and cannot be decoded ({one_line(err)})."
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


def find_film_files(paths: list[str | Path]) -> list[Path]:
    """Expand files and folders (walked recursively) into a sorted list of film paths.

    Files named directly are kept whatever their ending; inside folders only files
    with a film ending (or none, as DICOM exports often have) are picked up, but not a
    DICOM export's index (``DICOMDIR``). Hidden files, and everything inside hidden
    folders (``.git``, ``.ipynb_checkpoints``), are skipped.

    Args:
        paths: files and folders, in the order they should be listed.

    Returns:
        The files named directly, and each folder's films in sorted order; a file reached
        twice (named, and inside a named folder; or a folder named twice) is listed once,
        where it was first reached.

    Raises:
        FileNotFoundError: a path does not exist.
    """
    found: list[Path] = []
    seen: set[str] = set()

    def keep(path: Path) -> None:
        where = os.path.abspath(path)
        if where not in seen:
            seen.add(where)
            found.append(path)

    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise FileNotFoundError(f"No such file or folder: {path}")
        if path.is_file():
            keep(path)
            continue
        for child in sorted(path.rglob("*")):
            hidden = any(part.startswith(".") for part in child.relative_to(path).parts)
            if not hidden and child.is_file() and child.name.lower() not in INDEX_FILE_NAMES and (
                child.suffix.lower() in FILM_SUFFIXES or child.suffix == ""
            ):
                keep(child)
    return found
