"""Results back into the study: a film's structured report and overlay, sent with C-STORE.

:class:`Forwarder` is the listener's ``deliver``: for every film it builds the structured
report (a refused or unreadable film's says why), for a film read it also builds the
secondary capture with the Grad-CAM overlay, and sends both to the destination in one
association. A destination that refuses or cannot be reached raises
:class:`ForwardError` (one sentence with the peer's reason, which pynetdicom would otherwise log
as ERROR lines of its own), so the listener tries the film once more and then
marks it failed; nothing is dropped silently. Our own results sent back to us are
recognised and not answered again.
"""

from __future__ import annotations

import logging
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from pydicom.dataset import Dataset
from pynetdicom import AE
from pynetdicom.association import Association
from pynetdicom.dul import DULServiceProvider
from pydicom.uid import ExplicitVRLittleEndian, ImplicitVRLittleEndian
from pynetdicom.sop_class import Comprehensive3DSRStorage, SecondaryCaptureImageStorage

from pneumo.inference.explain import Explainer
from pneumo.inference.predict import STATUS_OK, Assessment, Classifier
from pneumo.pacs.results import is_our_result, secondary_capture, structured_report
from pneumo.pacs.worklist import Delivered, StoredResult
from pneumo.preprocess import to_model_input
from pneumo.render.diagnosis import film_view

OVERLAY_METHOD = "gradcam"
OVERLAY_OPACITY = 0.45


ASSOCIATION_LOGGERS = ("pynetdicom.transport", "pynetdicom.acse")
"""Where pynetdicom logs why an association it requested failed (connect error, rejection)."""
REASON_PREFIXES = ("TCP Initialisation Error: ", "Reason: ")
"""Of those lines, the ones that say why; the rest ("Association request failed: ...") only say that it failed."""


class ForwardError(RuntimeError):
    """The destination could not be reached or did not store a result; one sentence."""


class _RequestorFailure(logging.Filter):
    """Holds back pynetdicom's ERROR lines about the association we are requesting, keeping their reason.

    Only lines logged by the requesting thread (which negotiates, so logs a rejection) or by a
    requestor association's own threads (its DUL makes the TCP connection, so logs a refusal) are
    held; the listener's acceptor associations keep logging as before.
    """

    def __init__(self, caller: threading.Thread):
        super().__init__()
        self.caller = caller
        self.reasons: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        thread = threading.current_thread()
        association = thread.assoc if isinstance(thread, DULServiceProvider) else thread
        ours = thread is self.caller or (isinstance(association, Association) and association.is_requestor)
        if not ours or record.levelno < logging.ERROR:
            return True
        message = record.getMessage()
        self.reasons += [re.sub(r"^\[Errno \d+\] ", "", message[len(prefix):].strip())
                         for prefix in REASON_PREFIXES if message.startswith(prefix)]
        return False


@contextmanager
def _requestor_failure() -> Iterator[_RequestorFailure]:
    held = _RequestorFailure(threading.current_thread())
    loggers = [logging.getLogger(name) for name in ASSOCIATION_LOGGERS]
    for logger in loggers:
        logger.addFilter(held)
    try:
        yield held
    finally:
        for logger in loggers:
            logger.removeFilter(held)


@dataclass(frozen=True)
class Destination:
    """Where results go: a DICOM peer's host, port and AE title."""

    host: str
    port: int
    ae_title: str

    @classmethod
    def parse(cls, text: str) -> Destination:
        """``HOST:PORT:AET``, as ``--forward`` takes it.

        Raises:
            ValueError: not three parts, a port that is not a number from 1 to 65535, or an
                AE title longer than 16 characters.
        """
        parts = text.rsplit(":", 2)
        if len(parts) != 3 or not all(parts):
            raise ValueError(f"--forward takes HOST:PORT:AET, got {text!r}.")
        host, port, ae_title = parts
        if not port.isdigit() or not 0 < int(port) < 65536:
            raise ValueError(f"--forward's port must be a number from 1 to 65535, got {port!r}.")
        if len(ae_title) > 16:
            raise ValueError(f"--forward's AE title must be at most 16 characters, got {len(ae_title)}.")
        return cls(host, int(port), ae_title)


class Forwarder:
    """The listener's ``deliver``: builds a film's results and C-STOREs them to ``destination``."""

    def __init__(self, classifier: Classifier, destination: Destination, calling_ae: str = "PNEUMO",
                 timeout: float = 30.0):
        self.classifier = classifier
        self.destination = destination
        self.calling_ae = calling_ae
        self.timeout = timeout
        self.explainer = Explainer(classifier.loaded)

    def results(self, source: Dataset, assessment: Assessment) -> list[Dataset]:
        """The structured report, and for a film that was read, the overlay as a secondary capture."""
        return self._build(source, assessment)[0]

    def _build(self, source: Dataset, assessment: Assessment) -> tuple[list[Dataset], Delivered]:
        objects = [structured_report(source, assessment, self.classifier)]
        if assessment.status != STATUS_OK or assessment.film is None:
            return objects, Delivered(StoredResult.of(assessment, self.classifier))
        heatmap = self.explainer.heatmap(to_model_input(assessment.film, self.classifier.size), OVERLAY_METHOD)
        view = film_view(assessment.film, heatmap, self.classifier.size, OVERLAY_METHOD, OVERLAY_OPACITY,
                         assessment.p_pneumonia, self.classifier.threshold)
        objects.append(secondary_capture(source, assessment, view.overlay, self.classifier,
                                         method_name=view.method_name))
        stored = StoredResult.of(assessment, self.classifier, self.classifier.uncertainty(assessment.film),
                                 method=view.method_name, attention_outside=view.warning is not None)
        return objects, Delivered(stored, film=view.film, overlay=view.overlay)

    def __call__(self, source: Dataset, assessment: Assessment) -> Delivered | None:
        """Send a film's results; returns what the worklist keeps of them (None for our own result)."""
        if is_our_result(source):
            return None  # the PACS sent our own result back: answering it would start a loop
        objects, delivered = self._build(source, assessment)
        self.send(objects)
        return delivered

    def send(self, objects: list[Dataset]) -> None:
        """C-STORE the objects to the destination in one association.

        Raises:
            ForwardError: no association, or a store that did not succeed.
        """
        ae = AE(ae_title=self.calling_ae)
        # connection_timeout too: a host that is down never answers the TCP connect (134 s without it)
        ae.acse_timeout = ae.dimse_timeout = ae.network_timeout = ae.connection_timeout = self.timeout
        # One context per transfer syntax: a peer that picks implicit VR for a context offering
        # both would leave our explicit-VR objects with no context to travel in.
        for sop_class in (Comprehensive3DSRStorage, SecondaryCaptureImageStorage):
            for syntax in (ExplicitVRLittleEndian, ImplicitVRLittleEndian):
                ae.add_requested_context(sop_class, syntax)
        where = f"{self.destination.ae_title} at {self.destination.host}:{self.destination.port}"
        with _requestor_failure() as failure:
            association = ae.associate(self.destination.host, self.destination.port,
                                       ae_title=self.destination.ae_title)
        if not association.is_established:
            why = f" ({'; '.join(failure.reasons)})" if failure.reasons else ""
            raise ForwardError(f"The result destination {where} did not accept an association{why}.")
        try:
            for dataset in objects:
                status = association.send_c_store(dataset)
                code = getattr(status, "Status", None)
                if code is None or code not in (0x0000, 0xB000, 0xB007, 0xB006):
                    shown = "no answer" if code is None else f"status 0x{code:04X}"
                    raise ForwardError(f"The result destination {where} did not store a result ({shown}).")
        finally:
            association.release()
