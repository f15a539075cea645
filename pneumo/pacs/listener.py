"""The DICOM listener: a C-STORE and C-ECHO SCP (pynetdicom) feeding the persisted work queue.

The association handler only writes what it received into the work dir and queues it
(:mod:`pneumo.pacs.queue`), then answers Success at once; one worker thread takes the queued
rows in order, runs :meth:`Classifier.assess` on the stored file and hands the source data set
and the assessment to ``deliver`` (the caller's: results as DICOM, sent on), then keeps the
result in the row for the worklist (:mod:`pneumo.pacs.worklist`); the film and its overlay are
kept as images only when the operator asks (``keep_overlays``). Pneumo's own results, sent
back by the PACS, are recognised and not read again. The listener accepts
the storage classes chest films come in and, so that each is answered with a refusal rather
than dropped, the other image classes (CT, MR, US, ...); non-image classes (reports, waveforms,
documents) are refused by the presentation contexts. The log holds UIDs, statuses and reasons,
never a patient's name, ID, birth date or accession number (the queue keeps the accession
number only with ``keep_accession``, for the worklist).
"""

from __future__ import annotations

import io
import logging
import sqlite3
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path

from pydicom import dcmread, uid
from pydicom.dataset import Dataset
from pydicom.multival import MultiValue
from pynetdicom import AE, evt
from pynetdicom.sop_class import Verification

from pneumo.inference.predict import Assessment, Classifier
from pneumo.pacs.queue import OWN_RESULT, RETRY_DELAY_S, STATUS_FAILED, Entry, Summary, WorkQueue
from pneumo.pacs.results import is_our_result
from pneumo.pacs.worklist import Delivered, StoredResult, save_images

log = logging.getLogger(__name__)

CHEST_FILM_STORAGE = (
    uid.ComputedRadiographyImageStorage,
    uid.DigitalXRayImageStorageForPresentation,
    uid.DigitalXRayImageStorageForProcessing,
    uid.SecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleByteSecondaryCaptureImageStorage,
    uid.MultiFrameGrayscaleWordSecondaryCaptureImageStorage,
    uid.MultiFrameTrueColorSecondaryCaptureImageStorage,
)
"""The storage classes a chest film comes in."""
OTHER_IMAGE_STORAGE = (
    uid.CTImageStorage, uid.EnhancedCTImageStorage, uid.MRImageStorage, uid.EnhancedMRImageStorage,
    uid.UltrasoundImageStorage, uid.UltrasoundMultiFrameImageStorage, uid.NuclearMedicineImageStorage,
    uid.PositronEmissionTomographyImageStorage, uid.XRayAngiographicImageStorage,
    uid.XRayRadiofluoroscopicImageStorage, uid.DigitalMammographyXRayImageStorageForPresentation,
    uid.DigitalMammographyXRayImageStorageForProcessing,
    uid.DigitalIntraOralXRayImageStorageForPresentation,
    uid.DigitalIntraOralXRayImageStorageForProcessing, uid.VLPhotographicImageStorage,
    uid.BreastTomosynthesisImageStorage,
)
"""Image classes accepted so that the header checks can refuse them in a result, not in silence."""
IMAGE_STORAGE = CHEST_FILM_STORAGE + OTHER_IMAGE_STORAGE

_UNCOMPRESSED = (uid.ExplicitVRLittleEndian, uid.ImplicitVRLittleEndian,
                 uid.DeflatedExplicitVRLittleEndian, uid.ExplicitVRBigEndian)
_COMPRESSED = (uid.JPEGBaseline8Bit, uid.JPEGExtended12Bit, uid.JPEGLossless, uid.JPEGLosslessSV1,
               uid.JPEGLSLossless, uid.JPEGLSNearLossless, uid.JPEG2000Lossless, uid.JPEG2000,
               uid.HTJ2KLossless, uid.HTJ2KLosslessRPCL, uid.HTJ2K, uid.RLELossless)


def decodable_syntaxes() -> tuple[str, ...]:
    """The transfer syntaxes offered: the uncompressed ones, and each compressed one pydicom can decode here.

    A syntax without a decoder is not offered, so the sender falls back to one it also proposed
    (usually explicit VR little endian) instead of getting an unreadable-film result.
    """
    from pydicom.pixels import get_decoder

    return _UNCOMPRESSED + tuple(ts for ts in _COMPRESSED if get_decoder(ts).is_available)


SUCCESS = 0x0000
OUT_OF_RESOURCES = 0xA700
"""C-STORE failure: the received data set could not be written to the work dir."""
CANNOT_UNDERSTAND = 0xC210
"""C-STORE failure (the 0xC000 family): the received data set could not be decoded."""
IDENTIFYING_KEYWORDS = ("PatientName", "PatientID", "PatientBirthDate", "AccessionNumber",
                        "OtherPatientIDs", "IssuerOfPatientID", "StudyID")
"""Header fields whose values are scrubbed from any failure reason before it is kept or logged."""
MAX_REASON = 300

Deliver = Callable[[Dataset, Assessment], "Delivered | None"]
"""``deliver(source_dataset, assessment)``: what is done with each result (an exception fails the row).

It may return a :class:`pneumo.pacs.worklist.Delivered` (the result to keep, with the film and
overlay it made); when it returns None the listener keeps the assessment's own result."""
OWN_RESULT_REASON = "One of Pneumo's own results, sent back by the PACS; it is not read again."


def scrub(text: str, dataset: Dataset | None) -> str:
    """``text`` on one line, at most :data:`MAX_REASON` characters, without the dataset's identifiers."""
    line = " ".join(str(text).split())
    for keyword in IDENTIFYING_KEYWORDS if dataset is not None else ():
        value = dataset.get(keyword)
        values = [] if value is None else list(value) if isinstance(value, MultiValue) else [value]
        for item in values:
            item = str(item).strip()
            if len(item) >= 2:
                line = line.replace(item, "[removed]")
                line = line.replace(item.replace("^", " "), "[removed]")
    return line[:MAX_REASON]


class Listener:
    """A DICOM SCP on ``port`` whose received films are assessed one by one and delivered.

    Args:
        classifier: what assesses each film (its guard and site as configured).
        work_dir: the queue's folder (:class:`pneumo.pacs.queue.WorkQueue`); a restart on the
            same folder resumes the queued films.
        ae_title: the listener's AE title (the called AE title peers use).
        port: the TCP port; 0 takes a free one (read :attr:`port` after :meth:`start`).
        deliver: called in the worker thread with the source data set and its assessment.
        allowed: calling AE titles accepted; None accepts any.
        host: the address to listen on (``"0.0.0.0"`` for every interface).
        keep_overlays: keep each read film and its overlay as PNGs for the worklist.
        keep_accession: keep each film's accession number in the queue for the worklist.
        retry_delay: seconds before a film whose attempt failed is tried again.
    """

    def __init__(self, classifier: Classifier, work_dir: str | Path, ae_title: str, port: int,
                 deliver: Deliver, allowed: Iterable[str] | None = None, host: str = "127.0.0.1",
                 keep_overlays: bool = False, keep_accession: bool = False,
                 retry_delay: float = RETRY_DELAY_S):
        self.classifier = classifier
        self.retry_delay = retry_delay
        self.keep_overlays = keep_overlays
        self.keep_accession = keep_accession
        self.work_dir = Path(work_dir)
        self.ae_title = ae_title
        self.host = host
        self.deliver = deliver
        self.allowed = list(allowed) if allowed is not None else None
        self.queue: WorkQueue | None = None
        self._requested_port = port
        self._server = None
        self._worker: threading.Thread | None = None
        self._stop = threading.Event()
        self._changed = threading.Condition()
        self._busy = False

    @property
    def port(self) -> int:
        """The port listened on (the one taken when 0 was asked for)."""
        return self._server.server_address[1] if self._server is not None else self._requested_port

    @property
    def stopping(self) -> bool:
        """True once :meth:`stop` has been called."""
        return self._stop.is_set()

    def start(self) -> Listener:
        """Open the queue, start the worker (it resumes queued rows) and the server; returns self.

        Raises:
            OSError: the work dir cannot be used, or the port cannot be bound.
        """
        self.queue = WorkQueue(self.work_dir, self.retry_delay)
        self._stop.clear()
        self._worker = threading.Thread(target=self._work, name="pneumo-listener-worker", daemon=True)
        self._worker.start()
        ae = AE(ae_title=self.ae_title)
        syntaxes = list(decodable_syntaxes())
        ae.add_supported_context(Verification)
        for storage in IMAGE_STORAGE:
            ae.add_supported_context(storage, syntaxes)
        if self.allowed is not None:
            ae.require_calling_aet = self.allowed
        handlers = [(evt.EVT_C_ECHO, lambda event: SUCCESS), (evt.EVT_C_STORE, self._on_store)]
        try:
            self._server = ae.start_server((self.host, self._requested_port), block=False,
                                           evt_handlers=handlers)
        except Exception:
            self._stop.set()
            self._worker.join()
            self.queue.close()
            raise
        log.info("DICOM listener %s on %s:%d", self.ae_title, self.host, self.port)
        return self

    def stop(self, timeout: float = 60.0) -> None:
        """Stop serving, let the worker finish the film in hand, close the queue; queued rows stay queued."""
        self._stop.set()
        if self._server is not None:
            self._server.shutdown()
        with self._changed:
            self._changed.notify_all()
        if self._worker is not None:
            self._worker.join(timeout)
        if self.queue is not None:
            self.queue.close()
        log.info("DICOM listener %s stopped", self.ae_title)

    def wait_idle(self, timeout: float) -> bool:
        """Wait until no row is queued and the worker is not busy; False when ``timeout`` (s) passes first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while self._busy or self.queue.pending() > 0:
                if time.monotonic() >= deadline or self._stop.is_set():
                    return False
                self._changed.wait(0.1)
            return True

    # -- the association's side: store, queue, answer ---------------------------------------------

    def _on_store(self, event) -> int:
        instance = str(event.request.AffectedSOPInstanceUID or "")
        sop_class = str(event.request.AffectedSOPClassUID or "")
        try:
            study = str(event.dataset.get("StudyInstanceUID", ""))
            accession = str(event.dataset.get("AccessionNumber", "") or "") if self.keep_accession else None
        except Exception as err:  # whatever the peer sent, the answer is a status, not a traceback
            log.warning("Refused instance %s (0x%04X): its data set could not be decoded (%s).",
                        instance, CANNOT_UNDERSTAND, type(err).__name__)
            return CANNOT_UNDERSTAND
        try:
            added = self.queue.add(instance, study, sop_class, event.encoded_dataset(), accession=accession)
        except sqlite3.ProgrammingError:  # the queue is closed: an association outlived stop()
            log.warning("Refused instance %s (0x%04X): the listener has stopped; send it again later.",
                        instance, OUT_OF_RESOURCES)
            return OUT_OF_RESOURCES
        except (OSError, sqlite3.Error) as err:  # disk full, work dir gone, queue file locked
            log.warning("Refused instance %s (0x%04X): it could not be written to the work dir (%s).",
                        instance, OUT_OF_RESOURCES, getattr(err, "strerror", None) or type(err).__name__)
            return OUT_OF_RESOURCES
        if added:
            log.info("Queued instance %s of study %s.", instance, study)
            with self._changed:
                self._changed.notify_all()
        else:
            log.info("Instance %s was already received; not queued again.", instance)
        return SUCCESS

    # -- the worker: assess, deliver, record -------------------------------------------------------

    def _work(self) -> None:
        while not self._stop.is_set():
            with self._changed:
                entry = self.queue.claim()
                self._busy = entry is not None
                if entry is None:
                    self._changed.wait(0.5)
                    continue
            try:
                self._process(entry)
            finally:
                with self._changed:
                    self._busy = False
                    self._changed.notify_all()

    def _process(self, entry: Entry) -> None:
        source = None
        try:
            data = entry.path.read_bytes()
            source = dcmread(io.BytesIO(data), stop_before_pixels=True)  # the header files the results; assess decodes the pixels
            if is_our_result(source):
                self.queue.finish(entry.sop_instance_uid, Summary(status=OWN_RESULT, reason=OWN_RESULT_REASON))
                log.info("Instance %s is one of our own results; not read again.", entry.sop_instance_uid)
                return
            assessment = self.classifier.assess(data, name=entry.sop_instance_uid)
            delivered = self.deliver(source, assessment)
        except Exception as err:  # one film's failure is recorded; the worker goes on
            reason = scrub(f"{type(err).__name__}: {err}", source)
            state = self.queue.fail(entry.sop_instance_uid, reason)
            log.warning("Instance %s failed (attempt %d, now %s): %s", entry.sop_instance_uid,
                        entry.attempts, state, reason)
            if state == STATUS_FAILED:
                log.warning("Instance %s will not be tried again.", entry.sop_instance_uid)
            return
        if not isinstance(delivered, Delivered):
            delivered = Delivered(StoredResult.of(assessment, self.classifier))
        if self.keep_overlays and delivered.film is not None and delivered.overlay is not None:
            try:
                save_images(self.work_dir, entry.row_id, delivered.film, delivered.overlay)
            except OSError as err:  # the results are in the study; the worklist shows this one without images
                log.warning("Instance %s: its overlay could not be kept for the worklist (%s).",
                            entry.sop_instance_uid, err.strerror or type(err).__name__)
        self.queue.finish(entry.sop_instance_uid, Summary.of(assessment), delivered.result.to_json())
        log.info("Instance %s done: %s.", entry.sop_instance_uid, assessment.status)
