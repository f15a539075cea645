"""DICOM files built in memory for the tests, most of them from a real film's grey levels.

:func:`encode_dicom` writes any stored values with any header fields; :func:`make_dicom`
puts a real film's pixels behind patient identifiers for the privacy checks; the
``as_dicom_*`` builders hold one film's grey levels in ways a reader must undo exactly.
"""

from __future__ import annotations

import io

import numpy as np
from pydicom import dcmwrite, uid
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
