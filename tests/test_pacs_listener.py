"""The DICOM listener and its work queue, with a real pynetdicom SCU on loopback.

Films are real training films wrapped as DX with patient identifiers in the header; the
model is the tiny untrained one (the probabilities are compared, not judged).
"""

from __future__ import annotations

import io
import logging
import shutil
import threading
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest
from pydicom import dcmread, uid
from pydicom.dataset import Dataset

from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, STATUS_REJECTED, Classifier
from pneumo.pacs import queue as work_queue
from pneumo.pacs.listener import CANNOT_UNDERSTAND, OUT_OF_RESOURCES, SUCCESS, Listener, scrub
from pneumo.pacs.queue import (
    MAX_ATTEMPTS,
    STATUS_DONE,
    STATUS_FAILED,
    STATUS_QUEUED,
    STOPPED_REASON,
    Summary,
    WorkQueue,
)
from tests.support.data import film_sequence, real_films
from tests.support.dicom_films import IDENTIFIERS, in_syntax
from tests.support.scu import STUDY, TIMEOUT, as_bytes, associate, film_instance, grey_of, send



# -- films, an SCU, a recorder ---------------------------------------------------------------------


class Recorder:
    """A ``deliver`` that keeps (SOP Instance UID, assessment) pairs; ``gate`` holds each call."""

    def __init__(self, gate: threading.Event | None = None):
        self.delivered: list[tuple[str, object]] = []
        self.gate = gate
        self.started = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, source: Dataset, assessment) -> None:
        self.started.set()
        if self.gate is not None:
            assert self.gate.wait(TIMEOUT)
        with self._lock:
            self.delivered.append((str(source.SOPInstanceUID), assessment))

    def by_uid(self) -> dict:
        return dict(self.delivered)


@pytest.fixture(scope="module")
def classifier(tiny_model) -> Classifier:
    return Classifier(tiny_model)


@pytest.fixture(scope="module")
def grey() -> np.ndarray:
    return grey_of(real_films("PNEUMONIA")[0])


@pytest.fixture
def start(classifier, tmp_path):
    """``start(deliver=None, work_dir=None, **kw)``: a running Listener on a free port and its deliver."""
    running = []

    def start(deliver=None, work_dir=None, **kw):
        deliver = deliver or Recorder()
        listener = Listener(classifier, work_dir or tmp_path / "work", "PNEUMO", 0, deliver, **kw).start()
        running.append(listener)
        return listener, deliver

    yield start
    for listener in running:
        if not listener.stopping:
            listener.stop()


# -- the network side ------------------------------------------------------------------------------


def test_c_echo_is_answered(start):
    listener, _ = start()
    assoc = associate(listener.port, [])
    assert assoc.is_established
    assert assoc.send_c_echo().Status == SUCCESS
    assoc.release()


def test_a_real_film_sent_as_dx_is_processed_once_with_the_classifiers_probability(start, classifier, grey):
    listener, recorder = start()
    film = film_instance(grey)
    assert send(listener.port, [film, film]) == [SUCCESS, SUCCESS]  # sent twice, answered twice
    assert listener.wait_idle(TIMEOUT)
    expected = classifier.assess(as_bytes(film))
    assert expected.status == STATUS_OK
    assert [u for u, _ in recorder.delivered] == [film.SOPInstanceUID]  # processed once
    assessment = recorder.delivered[0][1]
    assert assessment.status == STATUS_OK
    assert assessment.p_pneumonia == pytest.approx(expected.p_pneumonia, abs=1e-6)
    entry = listener.queue.entry(film.SOPInstanceUID)
    assert (entry.status, entry.study_uid, entry.result_status, entry.label) == (
        STATUS_DONE, STUDY, STATUS_OK, expected.label)
    assert entry.p_pneumonia == pytest.approx(expected.p_pneumonia, abs=1e-6)
    assert entry.path is None and not any(listener.queue.incoming.iterdir())  # the file is gone


def test_twenty_films_over_four_concurrent_associations_are_all_processed_once(start, classifier):
    listener, recorder = start()
    films = [film_instance(grey_of(path, reduce=2)) for path in film_sequence(20)]
    batches = [films[i::4] for i in range(4)]
    with ThreadPoolExecutor(4) as pool:
        statuses = list(pool.map(lambda batch: send(listener.port, batch), batches))
    assert all(s == SUCCESS for batch in statuses for s in batch)
    assert listener.wait_idle(TIMEOUT)
    counts = Counter(u for u, _ in recorder.delivered)
    assert set(counts) == {f.SOPInstanceUID for f in films} and set(counts.values()) == {1}
    assert listener.queue.counts() == {STATUS_QUEUED: 0, STATUS_DONE: 20, STATUS_FAILED: 0}
    assert {a.status for _, a in recorder.delivered} == {"ok"}  # films big enough to be read (112 px)
    some = films[7]
    assert recorder.by_uid()[some.SOPInstanceUID].p_pneumonia == pytest.approx(
        classifier.assess(as_bytes(some)).p_pneumonia, abs=1e-6)


def test_a_listener_stopped_with_rows_queued_is_finished_by_a_new_one_on_the_same_work_dir(start, tmp_path):
    gate = threading.Event()
    first, held = start(deliver=Recorder(gate))
    films = [film_instance(grey_of(path, reduce=2)) for path in film_sequence(6)]
    # Answered at once although the worker is held on the first film: the model is not in the handler.
    assert send(first.port, films) == [SUCCESS] * 6
    assert held.started.wait(TIMEOUT)
    stopper = threading.Thread(target=first.stop)
    stopper.start()
    while not first.stopping:
        time.sleep(0.01)
    gate.set()
    stopper.join(TIMEOUT)
    assert len(held.delivered) == 1
    assert WorkQueue(tmp_path / "work").counts()[STATUS_QUEUED] == 5
    second, recorder = start(work_dir=tmp_path / "work")
    assert second.wait_idle(TIMEOUT)
    done = [u for u, _ in held.delivered + recorder.delivered]
    assert sorted(done) == sorted(f.SOPInstanceUID for f in films)  # all, none twice
    assert second.queue.counts()[STATUS_DONE] == 6


def test_a_ct_image_is_received_and_refused_by_the_header_checks(start, grey):
    listener, recorder = start()
    film = film_instance(grey, sop_class=uid.CTImageStorage)
    film.Modality = "CT"
    assert send(listener.port, [film]) == [SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    assessment = recorder.by_uid()[film.SOPInstanceUID]
    assert assessment.status == STATUS_REJECTED and "CT" in assessment.message
    entry = listener.queue.entry(film.SOPInstanceUID)
    assert entry.result_status == STATUS_REJECTED and entry.reason == assessment.message


def test_corrupt_pixel_data_gives_an_error_result_and_the_listener_keeps_serving(start, grey):
    listener, recorder = start()
    half = (grey.astype(np.uint16) * 16).tobytes()[: grey.size]  # half the pixel bytes
    broken, good = film_instance(grey, pixel_data=half), film_instance(grey)
    assert send(listener.port, [broken]) == [SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    assert send(listener.port, [good]) == [SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    results = recorder.by_uid()
    assert results[broken.SOPInstanceUID].status == STATUS_ERROR
    assert results[broken.SOPInstanceUID].message
    assert results[good.SOPInstanceUID].status == STATUS_OK
    assert listener.queue.entry(broken.SOPInstanceUID).status == STATUS_DONE  # a result, not a crash


def test_an_unknown_calling_ae_is_rejected_when_an_allow_list_is_set(start):
    listener, _ = start(allowed=["MODALITY1"])
    stranger = associate(listener.port, [], calling="STRANGER")
    assert stranger.is_rejected
    known = associate(listener.port, [], calling="MODALITY1")
    assert known.is_established and known.send_c_echo().Status == SUCCESS
    known.release()


def test_a_non_image_sop_class_is_refused_by_the_presentation_contexts(start):
    listener, _ = start()
    assoc = associate(listener.port, [uid.BasicTextSRStorage, uid.EncapsulatedPDFStorage,
                                      uid.DigitalXRayImageStorageForProcessing])
    assert assoc.is_established
    accepted = {str(c.abstract_syntax) for c in assoc.accepted_contexts}
    rejected = {str(c.abstract_syntax) for c in assoc.rejected_contexts}
    assoc.release()
    assert {uid.BasicTextSRStorage, uid.EncapsulatedPDFStorage} <= rejected
    assert uid.DigitalXRayImageStorageForProcessing in accepted


LOSSLESS = [uid.RLELossless, uid.JPEGLSLossless, uid.JPEG2000Lossless, uid.ImplicitVRLittleEndian,
            uid.DeflatedExplicitVRLittleEndian]
if shutil.which("dcmcjpeg") and shutil.which("dcmconv"):  # dcmtk writes what pydicom cannot
    LOSSLESS += [uid.JPEGLosslessSV1, uid.ExplicitVRBigEndian]


@pytest.mark.parametrize("syntax", LOSSLESS)
def test_a_film_in_a_lossless_syntax_gets_the_plain_films_probability(start, classifier, grey, syntax,
                                                                     tmp_path):
    listener, recorder = start()
    plain = as_bytes(film_instance(grey[::2, ::2].copy()))
    expected = classifier.assess(plain).p_pneumonia
    film = dcmread(io.BytesIO(in_syntax(plain, syntax, tmp_path)))
    assert film.file_meta.TransferSyntaxUID == syntax
    assert send(listener.port, [film]) == [SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    assessment = recorder.by_uid()[film.SOPInstanceUID]
    assert assessment.status == STATUS_OK and assessment.p_pneumonia == pytest.approx(expected, abs=1e-6)


def test_a_film_that_cannot_be_written_gets_a_failure_status_and_one_log_line(start, grey, caplog):
    listener, _ = start()
    incoming = listener.queue.incoming
    incoming.rmdir()
    incoming.write_text("not a folder")  # nothing can be written under it, even as root
    with caplog.at_level(logging.WARNING, logger="pneumo.pacs.listener"):
        assert send(listener.port, [film_instance(grey)]) == [OUT_OF_RESOURCES]
    lines = [r for r in caplog.records if r.name == "pneumo.pacs.listener"]
    assert len(lines) == 1 and "could not be written" in lines[0].getMessage()
    assert listener.queue.counts()[STATUS_QUEUED] == 0
    assert OUT_OF_RESOURCES >> 12 == 0xA and CANNOT_UNDERSTAND >> 12 == 0xC


def test_a_deliver_that_raises_fails_the_row_after_two_attempts_and_the_rest_go_on(start, grey):
    calls, when = Counter(), []
    bad, good = film_instance(grey[::2, ::2].copy()), film_instance(grey[::2, ::2].copy())

    def deliver(source, assessment):
        calls[str(source.SOPInstanceUID)] += 1
        if source.SOPInstanceUID == bad.SOPInstanceUID:
            when.append(time.monotonic())
            raise ConnectionError(f"forward peer refused the result for {source.PatientName}")

    listener, _ = start(deliver=deliver, retry_delay=1.0)
    assert send(listener.port, [bad, good]) == [SUCCESS, SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    assert calls == {bad.SOPInstanceUID: MAX_ATTEMPTS, good.SOPInstanceUID: 1}
    assert when[1] - when[0] >= 1.0  # tried again after the delay, not at once
    entry = listener.queue.entry(bad.SOPInstanceUID)
    assert entry.status == STATUS_FAILED and entry.attempts == MAX_ATTEMPTS
    assert entry.reason.startswith("ConnectionError: forward peer refused")
    assert IDENTIFIERS["PatientName"] not in entry.reason and "Doe" not in entry.reason
    assert listener.queue.entry(good.SOPInstanceUID).status == STATUS_DONE
    assert not any(listener.queue.incoming.iterdir())


def test_the_queue_the_work_dir_and_the_log_hold_no_patient_identifiers(start, grey, tmp_path, caplog):
    caplog.set_level(logging.DEBUG, logger="pneumo")
    caplog.set_level(logging.INFO, logger="pynetdicom")
    listener, recorder = start()
    ct = film_instance(grey[::2, ::2].copy(), sop_class=uid.CTImageStorage)
    ct.Modality = "CT"
    films = [film_instance(grey), ct]
    assert send(listener.port, films) == [SUCCESS, SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    assert len(recorder.delivered) == 2
    listener.stop()
    files = [p for p in (tmp_path / "work").rglob("*") if p.is_file()]
    assert any(p.name == work_queue.QUEUE_FILE for p in files)
    needles = [value.encode() for value in IDENTIFIERS.values()]
    for path in files:
        data = path.read_bytes()
        assert not [n for n in needles if n in data], path.name
    text = caplog.text
    assert films[0].SOPInstanceUID in text  # the log does say what it did
    assert not [value for value in IDENTIFIERS.values() if value in text]


# -- the queue on its own ---------------------------------------------------------------------------


def test_a_row_whose_worker_dies_twice_is_failed_and_not_tried_again(tmp_path):
    queue = WorkQueue(tmp_path)
    assert queue.add("1.2.3.4", STUDY, uid.DigitalXRayImageStorageForPresentation, b"film bytes")
    for attempt in range(1, MAX_ATTEMPTS + 1):  # each worker claims it and dies without a word
        entry = queue.claim()
        assert entry.sop_instance_uid == "1.2.3.4" and entry.attempts == attempt
        assert entry.path.read_bytes() == b"film bytes"
        assert queue.claim() is None  # not handed out twice in one process
        queue.close()
        queue = WorkQueue(tmp_path)
    assert queue.claim() is None
    entry = queue.entry("1.2.3.4")
    assert (entry.status, entry.reason, entry.path) == (STATUS_FAILED, STOPPED_REASON, None)
    assert not any(queue.incoming.iterdir())


def test_a_failed_film_sent_again_is_queued_again_and_a_done_one_is_not(tmp_path):
    queue = WorkQueue(tmp_path, retry_delay=0)
    assert queue.add("1.2.5", STUDY, "1.2", b"first")
    for _ in range(MAX_ATTEMPTS):
        queue.fail(queue.claim().sop_instance_uid, "The result destination PACS did not accept an association.")
    entry = queue.entry("1.2.5")
    assert (entry.status, entry.path) == (STATUS_FAILED, None)
    assert queue.add("1.2.5", STUDY, "1.2", b"again")  # the sender's recovery after the outage
    entry = queue.entry("1.2.5")
    assert (entry.status, entry.attempts, entry.reason) == (STATUS_QUEUED, 0, None)
    assert entry.path.read_bytes() == b"again"
    claimed = queue.claim()
    queue.finish(claimed.sop_instance_uid, Summary(status=STATUS_OK, p_pneumonia=0.9, label="PNEUMONIA"))
    assert not queue.add("1.2.5", STUDY, "1.2", b"third")
    assert queue.entry("1.2.5").status == STATUS_DONE


def test_a_failed_attempt_waits_its_retry_delay_before_it_is_claimed_again(tmp_path):
    queue = WorkQueue(tmp_path, retry_delay=3600)
    assert queue.add("1.2.6", STUDY, "1.2", b"film")
    assert queue.fail(queue.claim().sop_instance_uid, "peer down") == STATUS_QUEUED
    assert queue.claim() is None and queue.pending() == 1
    queue.close()
    assert WorkQueue(tmp_path, retry_delay=3600).claim() is None  # the wait survives a restart


def test_the_queue_keeps_one_row_per_instance_and_removes_what_a_crash_left(tmp_path):
    queue = WorkQueue(tmp_path)
    assert queue.add("1.2.3", STUDY, "1.2", b"a")
    assert not queue.add("1.2.3", STUDY, "1.2", b"b")
    assert queue.entry("1.2.3").path.read_bytes() == b"a"
    claimed = queue.claim()
    queue.finish(claimed.sop_instance_uid, Summary(status=STATUS_OK, p_pneumonia=0.25, label="NORMAL"))
    assert not queue.add("1.2.3", STUDY, "1.2", b"c")  # done already: still not again
    (queue.incoming / "left.part").write_bytes(b"half")
    (queue.incoming / "stray.dcm").write_bytes(b"no row")
    queue.close()
    queue = WorkQueue(tmp_path)
    assert not any(queue.incoming.iterdir())
    entry = queue.entry("1.2.3")
    assert (entry.status, entry.p_pneumonia, entry.label, entry.attempts) == (STATUS_DONE, 0.25, "NORMAL", 1)
    assert work_queue.file_name("../../etc/x").endswith(".dcm") and "/" not in work_queue.file_name("../x")


def test_scrub_removes_a_datasets_identifiers_in_either_spelling():
    dataset = Dataset()
    dataset.PatientName, dataset.PatientID = "Doe^Jane", "SECRET-ID-42"
    text = scrub("could not send Doe^Jane (Doe Jane), id SECRET-ID-42\nsecond line", dataset)
    assert "Doe" not in text and "SECRET" not in text and "\n" not in text


# -- load, a restart under load, an association cut mid-transfer -----------------------------------

LOAD_FILMS, LOAD_ASSOCIATIONS = 100, 10
LOAD_BOUND = 120.0
"""Seconds the load tests wait for the listener (a bound on the wait, not a timing assertion)."""


@pytest.fixture(scope="module")
def load_greys(train_dir) -> list[np.ndarray]:
    """:data:`LOAD_FILMS` different real films (NORMAL and PNEUMONIA in turn), at full size.

    Full size: the training films are 224 px, and a reduced one is below the guard's 64 px.
    """
    return [grey_of(path) for path in film_sequence(LOAD_FILMS, train_dir)]


def load_films(greys: list[np.ndarray]) -> list[Dataset]:
    """One DX instance per film, each with its own SOP Instance UID."""
    films = [film_instance(grey) for grey in greys]
    assert len({f.SOPInstanceUID for f in films}) == len(films)
    return films


def test_a_hundred_films_over_ten_concurrent_associations_are_each_delivered_once(
        start, classifier, load_greys):
    listener, recorder = start()
    films = load_films(load_greys)
    batches = [films[i::LOAD_ASSOCIATIONS] for i in range(LOAD_ASSOCIATIONS)]
    began = time.monotonic()
    with ThreadPoolExecutor(LOAD_ASSOCIATIONS) as pool:
        futures = [pool.submit(send, listener.port, batch) for batch in batches]
        statuses = [s for future in futures for s in future.result(timeout=LOAD_BOUND)]
    sent = time.monotonic() - began
    assert listener.wait_idle(LOAD_BOUND)
    took = time.monotonic() - began
    print(f"\n{LOAD_FILMS} films over {LOAD_ASSOCIATIONS} associations: all answered in {sent:.2f} s, "
          f"all delivered in {took:.2f} s")
    assert statuses == [SUCCESS] * LOAD_FILMS
    counts = Counter(u for u, _ in recorder.delivered)
    assert set(counts) == {f.SOPInstanceUID for f in films}  # none lost
    assert set(counts.values()) == {1}  # none twice
    assert all(a.status == STATUS_OK for _, a in recorder.delivered)
    assert listener.queue.counts() == {STATUS_QUEUED: 0, STATUS_DONE: LOAD_FILMS, STATUS_FAILED: 0}
    assert not any(listener.queue.incoming.iterdir())
    some = films[LOAD_FILMS // 2 + 1]
    assert recorder.by_uid()[some.SOPInstanceUID].p_pneumonia == pytest.approx(
        classifier.assess(as_bytes(some)).p_pneumonia, abs=1e-6)


class HoldAt(Recorder):
    """A Recorder whose ``hold``-th call waits for ``gate`` (``holding`` is set when it does)."""

    def __init__(self, hold: int, gate: threading.Event):
        super().__init__()
        self.hold, self.hold_gate, self.calls = hold, gate, 0
        self.holding = threading.Event()

    def __call__(self, source: Dataset, assessment) -> None:
        self.calls += 1  # the worker is one thread
        if self.calls == self.hold:
            self.holding.set()
            assert self.hold_gate.wait(TIMEOUT)
        super().__call__(source, assessment)


def test_a_listener_stopped_under_load_is_finished_by_a_new_one_each_film_delivered_once(
        start, tmp_path, load_greys):
    """10 associations send 3 films each, then 3 while the listener stops, then 4 once it has stopped.

    The worker is held on its 10th film while the listener stops, so rows are queued then; the
    associations outlive the stop, and what a stopped listener could not take is refused with a
    status, which the sender sends again to the new listener (as a PACS retries).
    """
    work = tmp_path / "work"
    gate = threading.Event()
    first, held = start(deliver=HoldAt(10, gate), work_dir=work)
    films = load_films(load_greys)
    batches = [films[i::LOAD_ASSOCIATIONS] for i in range(LOAD_ASSOCIATIONS)]
    phases = [threading.Barrier(LOAD_ASSOCIATIONS + 1) for _ in range(3)]
    answers: dict[str, int] = {}

    def sender(batch: list[Dataset]) -> None:
        assoc = associate(first.port, [uid.DigitalXRayImageStorageForPresentation])
        assert assoc.is_established
        try:
            for part, barrier in zip((batch[:3], batch[3:6], batch[6:]), phases):
                barrier.wait(TIMEOUT)  # the main thread moves the listener on between the parts
                for film in part:
                    status = assoc.send_c_store(film)
                    answers[film.SOPInstanceUID] = int(status.Status) if "Status" in status else -1
                barrier.wait(TIMEOUT)
        finally:
            if assoc.is_established:
                assoc.release()

    began = time.monotonic()
    with ThreadPoolExecutor(LOAD_ASSOCIATIONS) as pool:
        futures = [pool.submit(sender, batch) for batch in batches]
        phases[0].wait(TIMEOUT)  # part 1: 30 films to a running listener
        phases[0].wait(TIMEOUT)
        assert held.holding.wait(TIMEOUT)  # the worker holds its 10th film
        stopper = threading.Thread(target=first.stop)
        stopper.start()
        while not first.stopping:
            time.sleep(0.01)
        phases[1].wait(TIMEOUT)  # part 2: 30 films while it stops (its queue is still open)
        phases[1].wait(TIMEOUT)
        gate.set()
        stopper.join(TIMEOUT)
        assert not stopper.is_alive()
        phases[2].wait(TIMEOUT)  # part 3: 40 films on associations that outlived the stop
        phases[2].wait(TIMEOUT)
        for future in futures:
            future.result(timeout=TIMEOUT)
    assert len(held.delivered) == 10
    taken = [f for f in films if answers[f.SOPInstanceUID] == SUCCESS]
    refused = [f for f in films if answers[f.SOPInstanceUID] != SUCCESS]
    assert len(taken) == 60 and len(refused) == 40  # parts 1 and 2 taken, part 3 refused
    assert {answers[f.SOPInstanceUID] for f in refused} == {OUT_OF_RESOURCES}
    between = WorkQueue(work)
    assert between.counts() == {STATUS_QUEUED: 50, STATUS_DONE: 10, STATUS_FAILED: 0}
    assert len(list(between.incoming.iterdir())) == 50  # the queued rows' files, nothing else
    between.close()

    second, recorder = start(work_dir=work)
    assert send(second.port, refused) == [SUCCESS] * len(refused)  # the sender tries again
    assert second.wait_idle(LOAD_BOUND)
    print(f"\nstopped under load and restarted: {len(held.delivered)} + {len(recorder.delivered)} "
          f"films delivered in {time.monotonic() - began:.2f} s")
    counts = Counter(u for u, _ in held.delivered + recorder.delivered)
    assert set(counts) == {f.SOPInstanceUID for f in films} and set(counts.values()) == {1}
    assert second.queue.counts() == {STATUS_QUEUED: 0, STATUS_DONE: LOAD_FILMS, STATUS_FAILED: 0}
    assert not any(second.queue.incoming.iterdir())


def cut_mid_transfer(port: int, film: Dataset, how: str, whole_pdus: int = 20) -> None:
    """Start a C-STORE of ``film`` and cut the association before its last fragment.

    The command and ``whole_pdus`` P-DATA-TF PDUs of the data set go out on the association's
    socket; then ``how`` is ``"abort"`` (an A-ABORT) or ``"close"`` (half of the next PDU, then
    the connection is closed).
    """
    import socket

    from pynetdicom.dimse_messages import C_STORE_RQ
    from pynetdicom.dimse_primitives import C_STORE
    from pynetdicom.dsutils import encode
    from pynetdicom.pdu import P_DATA_TF

    assoc = associate(port, [film.SOPClassUID])
    assert assoc.is_established
    context = assoc.accepted_contexts[[str(c.abstract_syntax) for c in assoc.accepted_contexts].index(
        film.SOPClassUID)]
    request = C_STORE()
    request.MessageID, request.Priority = 1, 2
    request.AffectedSOPClassUID, request.AffectedSOPInstanceUID = film.SOPClassUID, film.SOPInstanceUID
    request.DataSet = io.BytesIO(encode(film, False, True))  # explicit VR little endian, as agreed
    message = C_STORE_RQ()
    message.primitive_to_message(request)
    pdus = []
    for primitive in message.encode_msg(context.context_id, assoc.acceptor.maximum_length):
        pdu = P_DATA_TF()
        pdu.from_primitive(primitive)
        pdus.append(pdu.encode())
    assert len(pdus) > whole_pdus + 2  # a large data set: the cut is well before its end
    sock = assoc.dul.socket.socket
    for pdu in pdus[:1 + whole_pdus]:
        sock.sendall(pdu)
    if how == "abort":
        assoc.abort()
    else:
        sock.sendall(pdus[1 + whole_pdus][: len(pdus[1 + whole_pdus]) // 2])
        sock.shutdown(socket.SHUT_RDWR)
        assoc.abort()  # the local side's cleanup; the peer has already seen the connection close


@pytest.mark.parametrize("how", ["abort", "close"])
def test_an_association_cut_mid_transfer_leaves_nothing_and_the_listener_keeps_serving(
        start, grey, how, caplog):
    caplog.set_level(logging.WARNING, logger="pneumo")
    listener, recorder = start()
    large = np.kron(grey, np.ones((8, 8), grey.dtype))  # the film at 1792 px, as a DX is: 6 MB
    cut = film_instance(large)
    cut_mid_transfer(listener.port, cut, how)
    deadline = time.monotonic() + TIMEOUT
    while listener._server.active_associations and time.monotonic() < deadline:
        time.sleep(0.05)  # the listener's side of the cut association ends
    assert not listener._server.active_associations
    assert listener.queue.entries() == [] and not any(listener.queue.incoming.iterdir())
    following = film_instance(grey[::2, ::2].copy())
    assert send(listener.port, [following]) == [SUCCESS]
    assert listener.wait_idle(TIMEOUT)
    assert [u for u, _ in recorder.delivered] == [following.SOPInstanceUID]
    assert recorder.delivered[0][1].status == STATUS_OK
    assert [e.sop_instance_uid for e in listener.queue.entries()] == [following.SOPInstanceUID]
    assert listener.queue.entry(cut.SOPInstanceUID) is None
    assert not any(listener.queue.incoming.iterdir())
    assert not [r for r in caplog.records if r.name.startswith("pneumo")]  # nothing to report
