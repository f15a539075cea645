"""The worklist: what the listener keeps of each result, read back for triage without the model.

A real listener (the tiny untrained model) receives real training films over loopback and
sends its results with the real Forwarder to a pynetdicom storage SCP standing in for the
PACS; the worklist is then read from the listener's work dir.
"""

from __future__ import annotations

import io
import sqlite3
from dataclasses import replace

import numpy as np
import pytest
from pydicom import dcmread, uid
from pynetdicom.sop_class import Comprehensive3DSRStorage, SecondaryCaptureImageStorage

from pneumo.inference.predict import STATUS_OK, STATUS_REJECTED, Classifier
from pneumo.pacs import queue as work_queue
from pneumo.pacs.audit import DOWNLOADED_PDF, OPENED, AuditLog
from pneumo.pacs.forward import Destination, Forwarder
from pneumo.pacs.listener import SUCCESS, Listener
from pneumo.pacs.queue import STATUS_DONE, WorkQueue, result_id
from pneumo.pacs.worklist import (
    ORDER_LIKELY,
    ORDER_NEWEST,
    StoredResult,
    WorklistError,
    load_result,
    read_worklist,
)
from pneumo.render import pdf
from tests.support.data import real_films
from tests.support.dicom_films import IDENTIFIERS
from tests.support.scu import TIMEOUT, StorageSink, film_instance, grey_of, send


@pytest.fixture(scope="module")
def classifier(tiny_model) -> Classifier:
    return Classifier(tiny_model)


@pytest.fixture(scope="module")
def sink():
    running = StorageSink()
    yield running
    running.stop()


@pytest.fixture(scope="module")
def films() -> list:
    """Four real films (two normal, two pneumonia) as DX instances with patient identifiers."""
    greys = [grey_of(path, reduce=2) for path in real_films("NORMAL", 2) + real_films("PNEUMONIA", 2)]
    return [film_instance(grey) for grey in greys]


def run_listener(classifier, sink, work_dir, datasets, **options) -> Listener:
    """A listener forwarding to the sink; ``datasets`` sent one by one (in arrival order), then stopped."""
    forwarder = Forwarder(classifier, Destination("127.0.0.1", sink.port, "SINK"), calling_ae="PNEUMO")
    listener = Listener(classifier, work_dir, "PNEUMO", 0, forwarder, **options).start()
    try:
        for dataset in datasets:
            assert send(listener.port, [dataset]) == [SUCCESS]
            assert listener.wait_idle(TIMEOUT)
    finally:
        listener.stop()
    return listener


@pytest.fixture(scope="module")
def read_without_images(classifier, sink, films, tmp_path_factory):
    """A work dir where the films and a CT image were read by a listener that keeps no images."""
    work = tmp_path_factory.mktemp("worklist") / "work"
    ct = film_instance(grey_of(real_films("NORMAL", 3)[2], reduce=4), sop_class=uid.CTImageStorage)
    ct.Modality = "CT"
    run_listener(classifier, sink, work, [*films, ct])
    return work, ct


def test_every_film_has_a_stored_result_with_the_classifiers_figures(read_without_images, classifier, films):
    work, _ = read_without_images
    for dataset in films:
        result, film, overlay = load_result(work, result_id(dataset.SOPInstanceUID))
        buffer = io.BytesIO()
        dataset.save_as(buffer, enforce_file_format=True)
        direct = classifier.assess(buffer.getvalue())
        assert result.status == STATUS_OK
        assert result.p_pneumonia == pytest.approx(direct.p_pneumonia, abs=1e-6)
        assert result.threshold == classifier.threshold and result.method == "Grad-CAM"
        low, high = result.interval
        assert 0.0 <= low <= high <= 1.0
        assert result.model_version == classifier.loaded.version
        assert film is None and overlay is None  # no images kept unless the operator asks


def test_likely_order_puts_the_highest_probability_first_and_refusals_apart(read_without_images):
    work, ct = read_without_images
    worklist = read_worklist(work, ORDER_LIKELY)
    probabilities = [row.p_pneumonia for row in worklist.rows]
    assert len(probabilities) == 4 and probabilities == sorted(probabilities, reverse=True)
    assert all(row.status == STATUS_DONE and row.verdict for row in worklist.rows)
    (refused,) = worklist.refused
    assert refused.id == result_id(ct.SOPInstanceUID) and refused.result_status == STATUS_REJECTED
    assert "CT" in refused.reason
    assert worklist.counts == {STATUS_DONE: 5} and not worklist.accession_kept


def test_newest_order_lists_the_last_film_received_first(read_without_images, films):
    work, _ = read_without_images
    rows = read_worklist(work, ORDER_NEWEST).rows
    assert [row.id for row in rows] == [result_id(ds.SOPInstanceUID) for ds in reversed(films)]


def test_a_refused_film_keeps_its_reason_and_no_probability(read_without_images):
    work, ct = read_without_images
    result, _, _ = load_result(work, result_id(ct.SOPInstanceUID))
    assert result.status == STATUS_REJECTED and result.p_pneumonia is None and "CT" in result.message
    with pytest.raises(ValueError, match="not read"):
        result.case_report(None, None)


def test_a_stored_results_pdf_has_its_figures_and_says_where_the_overlay_is(read_without_images, films):
    work, _ = read_without_images
    result, film, overlay = load_result(work, result_id(films[0].SOPInstanceUID))
    document = pdf.case_report_pdf(result.case_report(film, overlay))
    assert document.startswith(b"%PDF") and b"/Subtype /Image" not in document


def test_overlays_and_accession_numbers_are_kept_only_when_asked(classifier, sink, films, tmp_path):
    plain, kept = tmp_path / "plain", tmp_path / "kept"
    run_listener(classifier, sink, plain, films[:1])
    run_listener(classifier, sink, kept, films[1:2], keep_overlays=True, keep_accession=True)
    assert not (plain / work_queue.RESULTS_DIR).exists()
    accession = IDENTIFIERS["AccessionNumber"].encode()
    assert not any(accession in p.read_bytes() for p in plain.rglob("*") if p.is_file())

    worklist = read_worklist(kept)
    assert worklist.accession_kept and worklist.rows[0].accession == IDENTIFIERS["AccessionNumber"]
    result, film, overlay = load_result(kept, result_id(films[1].SOPInstanceUID))
    size = classifier.size
    assert film.shape == (size, size) and overlay.shape == (size, size, 3)
    assert not np.array_equal(overlay[..., 0], overlay[..., 2])  # a coloured map, not the grey film
    document = pdf.case_report_pdf(result.case_report(film, overlay))
    assert b"/Subtype /Image" in document


def test_our_own_results_sent_back_are_neither_read_nor_listed(classifier, sink, films, tmp_path):
    buffer = io.BytesIO()
    films[2].save_as(buffer, enforce_file_format=True)
    forwarder = Forwarder(classifier, Destination("127.0.0.1", sink.port, "SINK"))
    ours = forwarder.results(dcmread(io.BytesIO(buffer.getvalue())), classifier.assess(buffer.getvalue()))
    assert [str(ds.SOPClassUID) for ds in ours] == [Comprehensive3DSRStorage, SecondaryCaptureImageStorage]
    before = len(sink.received)
    run_listener(classifier, sink, tmp_path / "again", [ours[1]])  # the PACS sends our overlay back
    assert len(sink.received) == before  # nothing answered it
    worklist = read_worklist(tmp_path / "again")
    assert worklist.rows == () and worklist.refused == ()
    assert worklist.counts == {}
    with sqlite3.connect(tmp_path / "again" / work_queue.QUEUE_FILE) as db:
        assert db.execute("SELECT status, result_status FROM instances").fetchall() == [
            (STATUS_DONE, work_queue.OWN_RESULT)]  # kept, so a second send is known, but not listed


def test_a_queue_from_an_earlier_listener_gets_the_new_columns_and_ids(tmp_path):
    work = tmp_path / "old"
    (work / work_queue.INCOMING_DIR).mkdir(parents=True)
    db = sqlite3.connect(work / work_queue.QUEUE_FILE)
    db.execute("CREATE TABLE instances (sop_instance_uid TEXT PRIMARY KEY, study_uid TEXT NOT NULL, "
               "sop_class_uid TEXT NOT NULL, received TEXT NOT NULL, status TEXT NOT NULL, attempts INTEGER "
               "NOT NULL DEFAULT 0, file TEXT, finished TEXT, result_status TEXT, p_pneumonia REAL, label TEXT, "
               "pattern TEXT, p_bacterial REAL, reason TEXT)")
    db.execute("INSERT INTO instances VALUES ('1.2.3', '1.2', '1.2.840.10008.5.1.4.1.1.1.1', "
               "'2026-12-01T10:00:00.000+00:00', 'done', 1, NULL, '2026-12-01T10:00:01.000+00:00', 'ok', 0.9, "
               "'PNEUMONIA', NULL, NULL, '')")
    db.commit()
    db.close()
    with pytest.raises(WorklistError, match="earlier listener"):
        read_worklist(work)  # the worklist never writes; the listener brings the queue up to date
    WorkQueue(work).close()
    (row,) = read_worklist(work).rows
    assert row.id == result_id("1.2.3") and row.p_pneumonia == 0.9 and not row.has_result
    with pytest.raises(WorklistError, match="no stored result"):
        load_result(work, row.id)


def test_no_queue_is_one_sentence_naming_the_command(tmp_path):
    with pytest.raises(WorklistError, match=r"There is no listener queue in .*dicom-listener"):
        read_worklist(tmp_path)
    with pytest.raises(ValueError, match="unknown worklist order"):
        read_worklist(tmp_path, "oldest")


def test_a_stored_result_round_trips_through_json(classifier):
    result = StoredResult(status=STATUS_OK, p_pneumonia=0.7, label="PNEUMONIA", threshold=0.34,
                          interval=(0.6, 0.8), warnings=("Check the age.",), metadata={"view": "AP"},
                          pattern="viral", p_bacterial=0.2, subtype_threshold=0.5, model_name="m")
    assert StoredResult.from_json(result.to_json()) == result
    assert StoredResult.from_json(result.to_json()[:-1] + ', "from_a_newer_listener": 1}') == result


def test_the_audit_log_appends_whole_lines_with_opaque_ids(tmp_path):
    log = AuditLog(tmp_path / "audit.jsonl")
    assert log.events() == []
    log.record("dr.a@hospital.example", OPENED, "ab12")
    log.record("dr.b@hospital.example", DOWNLOADED_PDF, "cd34")
    events = log.events()
    assert [(e.user, e.action, e.result) for e in events] == [
        ("dr.a@hospital.example", OPENED, "ab12"), ("dr.b@hospital.example", DOWNLOADED_PDF, "cd34")]
    assert events[0].time <= events[1].time
    with pytest.raises(ValueError, match="unknown audit action"):
        log.record("x", "deleted", "ab12")
    with pytest.raises(ValueError, match="needs a user"):
        log.record("", OPENED, "ab12")


def test_the_work_dir_with_images_and_the_audit_log_hold_no_patient_identifiers(classifier, sink, films, tmp_path):
    work = tmp_path / "work"
    run_listener(classifier, sink, work, films[:2], keep_overlays=True)
    log = AuditLog(work / "audit.jsonl")
    for row in read_worklist(work).rows:
        log.record("dr.a@hospital.example", OPENED, row.id)
    files = [p for p in work.rglob("*") if p.is_file()]
    assert {p.suffix for p in files} >= {".png", ".jsonl", ".sqlite3"}
    needles = [value.encode() for value in IDENTIFIERS.values()]
    for path in files:
        assert not [n for n in needles if n in path.read_bytes()], path.name
    audit = (work / "audit.jsonl").read_text()
    assert not any(ds.SOPInstanceUID in audit or ds.StudyInstanceUID in audit for ds in films)


def test_a_stored_result_keeps_how_films_scored_alike_turned_out_and_its_pdf_prints_it(shipped_classifier):
    from pneumo.render.diagnosis import scored_alike_words

    shipped = shipped_classifier
    assessment = shipped.assess(real_films("PNEUMONIA", 1)[0])
    stored = StoredResult.of(assessment, shipped)
    assert stored.scored_alike and stored.scored_alike == scored_alike_words(shipped, assessment.p_pneumonia)
    assert stored.scored_alike.startswith(f"Measured {shipped.loaded.card['validation']['kind']}: of the ")
    assert StoredResult.from_json(stored.to_json()) == stored
    assert stored.case_report(None, None).scored_alike == stored.scored_alike
    refused = StoredResult.of(replace(assessment, status=STATUS_REJECTED, p_pneumonia=None), shipped)
    assert refused.scored_alike == ""
