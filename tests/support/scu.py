"""DICOM peers for the listener's tests: real films sent as DX instances, and a storage SCP standing in for the PACS."""

from __future__ import annotations

import io
import threading
from pathlib import Path

import numpy as np
from PIL import Image
from pydicom import dcmread, uid
from pydicom.dataset import Dataset
from pydicom.uid import generate_uid
from pynetdicom import AE, evt
from pynetdicom.sop_class import Comprehensive3DSRStorage, SecondaryCaptureImageStorage, Verification

from tests.support.dicom_films import IDENTIFIERS, SAFE_FIELDS, encode_dicom

TIMEOUT = 30.0
STUDY = "1.2.826.0.1.3680043.10.1.17"


def grey_of(path: Path, reduce: int = 1) -> np.ndarray:
    """A real film's grey levels (uint8), optionally reduced by an integer factor."""
    image = Image.open(path).convert("L")
    return np.asarray(image.reduce(reduce) if reduce > 1 else image)


def film_instance(grey: np.ndarray, sop_class: str = uid.DigitalXRayImageStorageForPresentation,
                  pixel_data: bytes | None = None) -> Dataset:
    """The film as a 12-bit DX instance (new UIDs, the study :data:`STUDY`) with the identifiers."""
    stored = grey.astype(np.uint16) * 16
    data = encode_dicom(stored, bits_stored=12, pixel_data=pixel_data, **IDENTIFIERS, **SAFE_FIELDS)
    dataset = dcmread(io.BytesIO(data))
    dataset.SOPClassUID = dataset.file_meta.MediaStorageSOPClassUID = sop_class
    dataset.SOPInstanceUID = dataset.file_meta.MediaStorageSOPInstanceUID = generate_uid()
    dataset.StudyInstanceUID, dataset.SeriesInstanceUID = STUDY, generate_uid()
    return dataset


def as_bytes(dataset: Dataset) -> bytes:
    buffer = io.BytesIO()
    dataset.save_as(buffer, enforce_file_format=True)
    return buffer.getvalue()


def associate(port: int, sop_classes, calling: str = "TESTSCU", syntaxes=(uid.ExplicitVRLittleEndian,)):
    ae = AE(ae_title=calling)
    ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = TIMEOUT
    ae.add_requested_context(Verification)
    for sop_class in sop_classes:
        ae.add_requested_context(sop_class, list(syntaxes))
    return ae.associate("127.0.0.1", port, ae_title="PNEUMO")


def send(port: int, datasets: list[Dataset], calling: str = "TESTSCU") -> list[int]:
    """C-STORE each data set over one association; their DIMSE statuses."""
    syntaxes = sorted({str(ds.file_meta.TransferSyntaxUID) for ds in datasets})
    assoc = associate(port, sorted({str(ds.SOPClassUID) for ds in datasets}), calling, syntaxes)
    assert assoc.is_established
    try:
        return [int(assoc.send_c_store(ds).Status) for ds in datasets]
    finally:
        assoc.release()


class StorageSink:
    """A storage SCP on loopback standing in for the PACS: keeps every data set it is sent."""

    def __init__(self):
        self.received = []
        self._lock = threading.Lock()
        ae = AE(ae_title="SINK")
        for sop_class in (Comprehensive3DSRStorage, SecondaryCaptureImageStorage):
            ae.add_supported_context(sop_class, [uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian])
        self.server = ae.start_server(("127.0.0.1", 0), block=False,
                                      evt_handlers=[(evt.EVT_C_STORE, self._store)])
        self.port = self.server.server_address[1]

    def _store(self, event) -> int:
        with self._lock:
            self.received.append(event.dataset)
        return 0x0000

    def stop(self) -> None:
        self.server.shutdown()
