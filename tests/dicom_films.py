"""DICOM files built in memory for the tests: a real film's pixels behind patient identifiers."""

from __future__ import annotations

import io

import numpy as np

IDENTIFIERS = {"PatientName": "Doe^Jane", "PatientID": "SECRET-ID-42",
               "PatientBirthDate": "20200101", "AccessionNumber": "ACC-99887"}
"""Header fields that must never be shown, logged or written."""
SAFE_FIELDS = {"Modality": "DX", "ViewPosition": "AP", "StudyDate": "20240315"}
"""Header fields the app may show."""


def make_dicom(pixels: np.ndarray | None) -> bytes:
    """A DICOM file with patient identifiers and safe fields; 12-bit pixels, or none at all.

    Args:
        pixels: uint16 (rows, columns) in 0-4095, or None for a header without pixel data.
    """
    from pydicom.dataset import Dataset, FileMetaDataset
    from pydicom.uid import ExplicitVRLittleEndian, SecondaryCaptureImageStorage, generate_uid

    meta = FileMetaDataset()
    meta.MediaStorageSOPClassUID = SecondaryCaptureImageStorage
    meta.MediaStorageSOPInstanceUID = generate_uid()
    meta.TransferSyntaxUID = ExplicitVRLittleEndian
    ds = Dataset()
    ds.file_meta = meta
    ds.SOPClassUID, ds.SOPInstanceUID = meta.MediaStorageSOPClassUID, meta.MediaStorageSOPInstanceUID
    for keyword, value in {**IDENTIFIERS, **SAFE_FIELDS}.items():
        setattr(ds, keyword, value)
    if pixels is not None:
        ds.Rows, ds.Columns = pixels.shape
        ds.SamplesPerPixel, ds.PhotometricInterpretation = 1, "MONOCHROME2"
        ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 16, 12, 11, 0
        ds.PixelData = pixels.astype(np.uint16).tobytes()
    buffer = io.BytesIO()
    ds.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


