"""pneumo.pacs.forward: where results go, a dead destination in one sentence, our own results not answered."""

from __future__ import annotations

import io
import logging
import socket
import time

import numpy as np
import pytest
from PIL import Image
from pydicom import Dataset, dcmread
from pynetdicom import AE
from pynetdicom.sop_class import SecondaryCaptureImageStorage

from pneumo.cli import main
from pneumo.inference.predict import Classifier
from pneumo.pacs import results
from pneumo.pacs.forward import Destination, Forwarder, ForwardError
from pneumo.pacs.results import is_our_result
from tests.support.data import real_films
from tests.support.dicom_films import encode_dicom
from tests.support.orthanc import free_port


@pytest.mark.parametrize(("text", "expected"), [
    ("127.0.0.1:4242:ORTHANC", Destination("127.0.0.1", 4242, "ORTHANC")),
    ("pacs.example.org:104:PACS", Destination("pacs.example.org", 104, "PACS")),
])
def test_a_destination_is_host_port_and_ae_title(text, expected):
    assert Destination.parse(text) == expected


@pytest.mark.parametrize(("text", "words"), [
    ("pacs:104", "HOST:PORT:AET"), ("pacs:port:PACS", "a number from 1 to 65535"),
    ("pacs:70000:PACS", "a number from 1 to 65535"), ("pacs:104:" + "A" * 17, "at most 16 characters"),
])
def test_a_bad_destination_is_one_sentence(text, words):
    with pytest.raises(ValueError, match=words):
        Destination.parse(text)


def test_our_own_results_are_recognised():
    ours = Dataset()
    ours.Manufacturer, ours.SeriesDescription = results.MANUFACTURER, results.SR_SERIES_DESCRIPTION
    film = Dataset()
    film.Manufacturer, film.SeriesDescription = "ACME", "Chest AP"
    assert is_our_result(ours) and not is_our_result(film)


def pynetdicom_errors(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name.startswith("pynetdicom") and r.levelno >= logging.ERROR]


def test_a_dead_destination_is_one_sentence(tiny_model, caplog):
    grey = np.asarray(Image.open(real_films("NORMAL")[0]).convert("L"))
    classifier = Classifier(tiny_model)
    data = encode_dicom(grey, StudyInstanceUID="1.2.826.0.1.3680043.10.1.30",
                        SeriesInstanceUID="1.2.826.0.1.3680043.10.1.31", PatientName="Doe^Jane", PatientID="X")
    source = dcmread(io.BytesIO(data))
    forwarder = Forwarder(classifier, Destination("127.0.0.1", free_port(), "NOBODY"), timeout=5)
    caplog.set_level(logging.INFO, logger="pynetdicom")
    with pytest.raises(ForwardError, match=r"^The result destination NOBODY at 127\.0\.0\.1:\d+ did not accept "
                                           r"an association \(Connection refused\)\.$"):
        forwarder(source, classifier.assess(data))
    assert pynetdicom_errors(caplog) == []  # its reason is in our sentence, not in two lines of its own
    assert not any(logging.getLogger(name).filters for name in ("pynetdicom.transport", "pynetdicom.acse"))


def test_a_destination_that_rejects_our_association_says_why_in_one_sentence(tiny_model, caplog):
    peer = AE(ae_title="ARCHIVE")
    peer.require_called_aet = True  # a PACS that answers only to its own AE title
    peer.add_supported_context(SecondaryCaptureImageStorage)
    server = peer.start_server(("127.0.0.1", 0), block=False)
    caplog.set_level(logging.INFO, logger="pynetdicom")
    classifier, port = Classifier(tiny_model), server.server_address[1]
    try:
        with pytest.raises(ForwardError, match=r"^The result destination WRONG at 127\.0\.0\.1:\d+ did not accept "
                                               r"an association \(Called AE title not recognised\)\.$"):
            Forwarder(classifier, Destination("127.0.0.1", port, "WRONG"), timeout=5).send([])
        assert pynetdicom_errors(caplog) == []
        Forwarder(classifier, Destination("127.0.0.1", port, "ARCHIVE"), timeout=5).send([])
    finally:
        server.shutdown()


def test_a_destination_that_never_answers_the_connect_fails_within_the_timeout(tiny_model):
    """A host that is down or firewalled drops the TCP handshake; a listener with a full accept
    queue does the same on loopback. Without a connect timeout the kernel's retries take ~130 s."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = server.getsockname()[1]
    fillers = []
    for _ in range(3):  # fill the accept queue: later handshakes get no answer
        filler = socket.socket()
        filler.setblocking(False)
        filler.connect_ex(("127.0.0.1", port))
        fillers.append(filler)
    time.sleep(0.5)
    forwarder = Forwarder(Classifier(tiny_model), Destination("127.0.0.1", port, "SILENT"), timeout=2)
    started = time.monotonic()
    try:
        with pytest.raises(ForwardError, match=r"^The result destination SILENT at 127\.0\.0\.1:\d+ did not accept "
                                               r"an association \(timed out\)\.$"):
            forwarder.send([])
        assert time.monotonic() - started < 30  # the 2 s timeout, not the kernel's two minutes
    finally:
        for sock in (*fillers, server):
            sock.close()


@pytest.mark.parametrize(("arguments", "words"), [
    (["--forward", "nowhere"], "HOST:PORT:AET"),
    (["--forward", "h:104:PACS", "--port", "0"], "--port must be a number"),
    (["--forward", "h:104:PACS", "--ae-title", "X" * 17], "--ae-title must be 1 to 16"),
    (["--forward", "h:104:PACS", "--model", "nope"], "Unknown model 'nope'"),
    (["--forward", "h:104:PACS", "--work-dir", "/proc/pneumo-work"], "--work-dir /proc/pneumo-work: /proc is not a writable folder"),
])
def test_the_listener_command_refuses_bad_options_in_one_sentence(arguments, words, tmp_path, capsys):
    assert main(["dicom-listener", "--work-dir", str(tmp_path / "work"), *arguments]) == 2
    error = capsys.readouterr().err
    assert words in error and "Traceback" not in error
