"""DICOM files built in memory for the tests, most of them from a real film's grey levels.

:func:`encode_dicom` writes any stored values with any header fields; :func:`make_dicom`
puts a real film's pixels behind patient identifiers for the privacy checks; the
``as_dicom_*`` builders hold one film's grey levels in ways a reader must undo exactly;
:func:`in_syntax` re-encodes a file in any transfer syntax (pydicom, else dcmtk),
:func:`as_bare_dataset` drops the preamble, :func:`public_dicom_files` lists pydicom's
public test files.
"""

from __future__ import annotations

import importlib.util
import io
import subprocess
from pathlib import Path

import numpy as np
from pydicom import dcmread, dcmwrite, uid
from pydicom.dataset import Dataset, FileMetaDataset

IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "SECRET-ID-42",
               "PatientBirthDate": "20200101", "AccessionNumber": "ACC-99887"}
"""Header fields that must never be shown, logged or written."""
SAFE_FIELDS = {"Modality": "DX", "ViewPosition": "AP", "StudyDate": "20240315"}
"""Header fields the app may show."""


def encode_dicom(
    frames: np.ndarray | None,
    *,
    photometric: str = "MONOCHROME2",
    bits_stored: int | None = None,
    transfer_syntax: str = uid.ExplicitVRLittleEndian,
    pixel_data: bytes | None = None,
    samples_per_pixel: int = 1,
    **elements,
) -> bytes:
    """A DICOM file in memory from stored values (uint8 or uint16).

    Args:
        frames: (H, W), (n, H, W) for several frames, (H, W, 3) with ``samples_per_pixel=3``,
            or None for a header without pixel data.
        photometric: the Photometric Interpretation.
        bits_stored: Bits Stored, when fewer than the bits allocated.
        transfer_syntax: the Transfer Syntax UID; a private one is written explicit VR LE.
        pixel_data: bytes to store as Pixel Data instead of ``frames`` (encapsulated, damaged).
        samples_per_pixel: 1 for grey, 3 for colour.
        **elements: more data elements (``RescaleSlope=0.5``, ``PatientName=...``).
    """
    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = uid.DigitalXRayImageStorageForPresentation
    meta.MediaStorageSOPInstanceUID = "1.2.826.0.1.3680043.10.1.1"
    meta.TransferSyntaxUID = transfer_syntax
    dataset = Dataset()
    dataset.file_meta = meta
    dataset.SOPClassUID = meta.MediaStorageSOPClassUID
    dataset.SOPInstanceUID = meta.MediaStorageSOPInstanceUID
    dataset.Modality = "DX"
    if frames is not None:
        if samples_per_pixel == 1:
            dataset.Rows, dataset.Columns = frames.shape[-2:]
            if frames.ndim == 3:
                dataset.NumberOfFrames = frames.shape[0]
        else:
            dataset.Rows, dataset.Columns = frames.shape[:2]
            dataset.PlanarConfiguration = 0
        dataset.SamplesPerPixel = samples_per_pixel
        dataset.PhotometricInterpretation = photometric
        dataset.BitsAllocated = frames.dtype.itemsize * 8
        dataset.BitsStored = bits_stored or dataset.BitsAllocated
        dataset.HighBit = dataset.BitsStored - 1
        dataset.PixelRepresentation = 0
    for keyword, value in elements.items():
        setattr(dataset, keyword, value)
    if frames is not None:
        dataset.PixelData = frames.tobytes() if pixel_data is None else pixel_data
        if pixel_data is None:
            dataset["PixelData"].VR = "OB" if dataset.BitsAllocated == 8 else "OW"
    # A private (unknown) syntax needs its encoding spelled out; ours is explicit VR LE.
    encoding = {} if uid.UID(transfer_syntax).is_transfer_syntax else {
        "implicit_vr": False, "little_endian": True}
    buffer = io.BytesIO()
    dcmwrite(buffer, dataset, enforce_file_format=True, **encoding)
    return buffer.getvalue()


def make_dicom(pixels: np.ndarray | None) -> bytes:
    """A DICOM file with patient identifiers and safe fields; 12-bit pixels, or none at all.

    Args:
        pixels: uint16 (rows, columns) in 0-4095, or None for a header without pixel data.
    """
    frames = None if pixels is None else pixels.astype(np.uint16)
    return encode_dicom(frames, bits_stored=12, **IDENTIFIERS, **SAFE_FIELDS)


def as_dicom_12bit_windowed(g: np.ndarray) -> bytes:
    """Grey levels ``g`` (uint8) behind a rescale and a LINEAR window that undo each other."""
    # Stored 0..4080 in 12 bits; modality value v = 0.5 * s - 100 = 8 g - 100.
    # The LINEAR window (PS3.3 C.11.2.1.2.1) with W = 2041, C = 920.5 maps v back to g / 255:
    # (v - (C - 0.5)) / (W - 1) + 0.5 = (8 g - 1020) / 2040 + 0.5 = g / 255.
    stored = g.astype(np.uint16) * 16
    return encode_dicom(stored, bits_stored=12, RescaleSlope=0.5, RescaleIntercept=-100,
                        WindowCenter=920.5, WindowWidth=2041)


def grey_voi_lut() -> Dataset:
    """A VOI LUT item for 12-bit codes: each code's level (code // 16) as level * 257 in 16 bits."""
    lut = Dataset()
    lut.LUTDescriptor = [4096, 0, 16]
    lut.LUTData = [(code // 16) * 257 for code in range(4096)]
    lut["LUTData"].VR = "US"
    return lut


def as_dicom_voi_lut(g: np.ndarray) -> bytes:
    """Grey levels ``g`` as noisy 12-bit codes, with a VOI LUT that maps them back."""
    # Stored 0..4095 (12 bits, 16 codes a level plus noise); the VOI LUT maps each code to
    # level * 257 in 16 bits, so the display is g / 255 whatever the noise.
    noise = np.random.default_rng(0).integers(0, 16, g.shape, dtype=np.uint16)
    stored = g.astype(np.uint16) * 16 + noise
    return encode_dicom(stored, bits_stored=12, VOILUTSequence=[grey_voi_lut()])


def as_dicom_multiframe(g: np.ndarray) -> bytes:
    """Grey levels ``g`` as the first of three frames (then its negative, then black)."""
    return encode_dicom(np.stack([g, 255 - g, np.zeros_like(g)]))


# ---------------------------------------------------------------------------------------
# One film in every transfer syntax, bare data sets, and pydicom's public test files.
# ---------------------------------------------------------------------------------------

# What Dataset.compress writes (pydicom's RLE encoder, pyjpegls, openjpeg), with its options.
PYDICOM_ENCODERS = {
    uid.RLELossless: {},
    uid.JPEGLSLossless: {},
    uid.JPEGLSNearLossless: {"jls_error": 2},
    uid.JPEG2000Lossless: {},
    uid.JPEG2000: {"j2k_cr": [10]},  # 10:1, a common setting for lossy archives of CR/DX
}
# What needs Debian's dcmtk (pydicom 3.0 encodes no JPEG process and no big endian).
DCMTK_ENCODERS = {
    # +sr keeps the stored values' range (dcmtk's default stretches min..max to it).
    uid.JPEGBaseline8Bit: ["dcmcjpeg", "+eb", "+sr"],
    uid.JPEGExtended12Bit: ["dcmcjpeg", "+ee", "+sr"],
    uid.JPEGLossless: ["dcmcjpeg", "+el"],
    uid.JPEGLosslessSV1: ["dcmcjpeg", "+e1"],
    uid.ExplicitVRBigEndian: ["dcmconv", "+tb"],
}
# Written by encode_dicom itself.
PLAIN_SYNTAXES = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian,
                  uid.DeflatedExplicitVRLittleEndian)
LOSSY_SYNTAXES = (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLSNearLossless,
                  uid.JPEG2000)
"""The syntaxes that change grey levels (their tolerances are in test_dicom_encodings.py)."""
EIGHT_BIT_ONLY = (uid.JPEGBaseline8Bit,)
"""JPEG baseline holds 8-bit samples only (ISO 10918-1 process 1)."""


def in_syntax(plain: bytes, syntax: str, workdir: Path) -> bytes:
    """A DICOM file (explicit VR little endian, as encode_dicom writes) re-encoded in ``syntax``.

    Args:
        plain: the file's bytes.
        syntax: a Transfer Syntax UID from PLAIN_SYNTAXES, PYDICOM_ENCODERS or DCMTK_ENCODERS.
        workdir: a folder for dcmtk's input and output files (a test's tmp_path).
    """
    syntax = uid.UID(syntax)
    if syntax in PYDICOM_ENCODERS:
        dataset = dcmread(io.BytesIO(plain))
        dataset.compress(syntax, **PYDICOM_ENCODERS[syntax])
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        return buffer.getvalue()
    if syntax in DCMTK_ENCODERS:
        source, target = workdir / "plain.dcm", workdir / f"{syntax}.dcm"
        source.write_bytes(plain)
        subprocess.run([*DCMTK_ENCODERS[syntax], "-q", str(source), str(target)], check=True,
                       capture_output=True, timeout=60)
        return target.read_bytes()
    dataset = dcmread(io.BytesIO(plain))
    dataset.file_meta.TransferSyntaxUID = syntax
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def as_bare_dataset(data: bytes, *, implicit_vr: bool, file_meta: bool = False) -> bytes:
    """A DICOM file's data set without the preamble and ``DICM``, as older CR exports write it.

    Args:
        data: an uncompressed DICOM file.
        implicit_vr: write the data set in implicit (else explicit) VR little endian.
        file_meta: keep the file meta group (group 0x0002) at the start.
    """
    dataset = dcmread(io.BytesIO(data))
    dataset.preamble = None
    syntax = uid.ImplicitVRLittleEndian if implicit_vr else uid.ExplicitVRLittleEndian
    buffer = io.BytesIO()
    if file_meta:
        dataset.file_meta.TransferSyntaxUID = syntax
        dcmwrite(buffer, dataset, enforce_file_format=True)
        return buffer.getvalue()[132:]
    del dataset.file_meta
    dcmwrite(buffer, dataset, enforce_file_format=False, implicit_vr=implicit_vr,
             little_endian=True)
    return buffer.getvalue()


def fragment_span(data: bytes) -> tuple[int, int]:
    """Where a compressed DICOM file's encapsulated pixel data lies: (start, end) byte offsets."""
    encapsulated = dcmread(io.BytesIO(data)).PixelData
    start = data.rindex(encapsulated)
    return start, start + len(encapsulated)


def public_dicom_files() -> list[Path]:
    """pydicom's public test files (its own and pydicom-data's) that hold pixel data.

    CT, MR, US, RG, SC, OT, NM and more, in many transfer syntaxes, some damaged on purpose.
    Skips (fails in CI) when pydicom-data (requirements-dev.txt) is not installed.
    """
    __tracebackhide__ = True
    from pydicom.data import get_testdata_files

    from tests.support.data import skip_or_fail

    if importlib.util.find_spec("data_store") is None:  # pydicom-data's package
        skip_or_fail("pydicom-data is not installed (pip install -r requirements-dev.txt)")
    found = []
    for name in sorted(get_testdata_files()):
        try:
            dataset = dcmread(name, force=True, defer_size=256)
        except Exception:  # unreadable on purpose: read_film is tried on it all the same
            found.append(Path(name))
            continue
        if any(keyword in dataset for keyword in
               ("PixelData", "FloatPixelData", "DoubleFloatPixelData")):
            found.append(Path(name))
    return found
