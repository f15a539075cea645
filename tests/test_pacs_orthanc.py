"""End to end with a real PACS: a film stored in Orthanc is sent to the listener, and its study
then holds the structured report and the overlay, as `pneumo predict` reads the same file.

Orthanc (Debian's package, installed by `make test`) runs on loopback with a temporary
configuration; the listener runs in this process with the shipped model.
"""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import highdicom as hd
import numpy as np
import pytest
from PIL import Image
from pydicom import dcmread

from pneumo import store
from pneumo.cli import main
from pneumo.inference.predict import Classifier
from pneumo.pacs.forward import Destination, Forwarder
from pneumo.pacs.listener import Listener
from pneumo.pacs.queue import result_id
from pneumo.pacs.results import CODES, SC_SERIES_DESCRIPTION, SR_SERIES_DESCRIPTION
from pneumo.pacs.worklist import load_result, read_worklist
from tests.support.data import in_ci, real_films
from tests.support.dicom_films import IDENTIFIERS, SAFE_FIELDS, encode_dicom
from tests.support.orthanc import ORTHANC, running_orthanc

STUDY_UID = "1.2.826.0.1.3680043.10.1.20"
WAIT_S = 60.0
"""How long the test waits for the results to arrive (a bound, not the figure measured)."""


def dx_file(path: Path, **changes) -> bytes:
    """A real film as a DX file with patient identifiers, in a study of its own."""
    grey = np.asarray(Image.open(path).convert("L"))
    fields = {**IDENTIFIERS, **SAFE_FIELDS, "PatientSex": "F", "StudyInstanceUID": STUDY_UID,
              "SeriesInstanceUID": STUDY_UID + ".1", **changes}
    return encode_dicom(grey, **fields)


@pytest.fixture(scope="module")
def pacs(tmp_path_factory):
    """Orthanc, the listener (shipped model) sending its results to Orthanc, and the listener's work dir."""
    if not Path(ORTHANC).exists():
        if in_ci():
            pytest.fail(f"CI=true: Orthanc is missing at {ORTHANC} (make debian-tools installs it)")
        pytest.skip(f"Orthanc is not installed at {ORTHANC} (make debian-tools)")
    root = tmp_path_factory.mktemp("pacs")
    loaded = store.load(store.default_model_name(store.REPO_STORE), store.REPO_STORE)
    classifier = Classifier(loaded)
    destination = Destination("127.0.0.1", 0, "ORTHANC")  # the port is known once Orthanc runs
    listener = Listener(classifier, root / "work", "PNEUMO", 0, deliver=None).start()
    try:
        with running_orthanc(root / "orthanc", {"PNEUMO": ("PNEUMO", "127.0.0.1", listener.port)}) as orthanc:
            destination = Destination("127.0.0.1", orthanc.dicom_port, orthanc.ae_title)
            listener.deliver = Forwarder(classifier, destination, calling_ae="PNEUMO")
            yield orthanc, listener, root
    finally:
        listener.stop()


def results_of(orthanc, study_id: str, expected: int) -> dict[str, list]:
    """The study's instances by series description, once ``expected`` instances are there."""
    deadline = time.monotonic() + WAIT_S
    while True:
        instances = orthanc.study_instances(study_id)
        if len(instances) >= expected or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    found: dict[str, list] = {}
    for instance in instances:
        dataset = dcmread(io.BytesIO(orthanc.instance_file(instance["ID"])))
        found.setdefault(str(dataset.get("SeriesDescription", "")), []).append(dataset)
    return found


def p_pneumonia_in(report) -> float:
    groups = hd.sr.Comprehensive3DSR.from_dataset(report).content.get_image_measurement_groups()
    (measurement,) = groups[0].get_measurements(name=CODES["p_pneumonia"])
    return float(measurement.value)


def test_a_film_sent_from_orthanc_gets_its_report_and_overlay_in_its_study(pacs, tmp_path, capsys):
    orthanc, listener, root = pacs
    film = real_films("PNEUMONIA", 1)[0]
    data = dx_file(film)
    stored = orthanc.upload(data)
    started = time.monotonic()
    answer = orthanc.send("PNEUMO", stored["ID"])
    assert answer.get("FailedInstancesCount", 0) == 0
    found = results_of(orthanc, stored["ParentStudy"], expected=3)
    seconds = time.monotonic() - started
    print(f"results in the study {seconds:.1f} s after Orthanc was asked to send the film")
    assert set(found) >= {SR_SERIES_DESCRIPTION, SC_SERIES_DESCRIPTION}, sorted(found)
    (report,), (overlay,) = found[SR_SERIES_DESCRIPTION], found[SC_SERIES_DESCRIPTION]
    assert report.StudyInstanceUID == overlay.StudyInstanceUID == STUDY_UID
    assert report.VerificationFlag == "UNVERIFIED" and overlay.BurnedInAnnotation == "YES"

    # The same file through the command line gives the same probability.
    path = tmp_path / "film.dcm"
    path.write_bytes(data)
    assert main(["predict", str(path), "--csv", str(tmp_path / "out.csv")]) == 0
    (row,) = list(csv.DictReader((tmp_path / "out.csv").open()))
    assert row["status"] == "ok"
    assert p_pneumonia_in(report) == pytest.approx(float(row["p_pneumonia"]), abs=5e-5)

    # The worklist lists it with the same probability, and its stored result needs no model.
    film_id = result_id(dcmread(io.BytesIO(data)).SOPInstanceUID)
    (row,) = [r for r in read_worklist(root / "work").rows if r.id == film_id]
    assert row.status == "done" and row.p_pneumonia == pytest.approx(p_pneumonia_in(report), abs=5e-5)
    stored, _, _ = load_result(root / "work", row.id)
    assert stored.p_pneumonia == pytest.approx(row.p_pneumonia) and stored.interval is not None

    # Nothing of the patient's is left in the listener's work dir or queue.
    for file in (root / "work").rglob("*"):
        if file.is_file():
            content = file.read_bytes()
            assert not any(value.encode() in content for value in IDENTIFIERS.values()), file


def test_a_ct_image_sent_from_orthanc_gets_a_report_saying_why(pacs):
    orthanc, listener, _ = pacs
    film = real_films("NORMAL", 1)[0]
    stored = orthanc.upload(dx_file(film, Modality="CT", StudyInstanceUID=STUDY_UID + ".9",
                                    SeriesInstanceUID=STUDY_UID + ".9.1",
                                    SOPInstanceUID="1.2.826.0.1.3680043.10.1.99"))
    orthanc.send("PNEUMO", stored["ID"])
    found = results_of(orthanc, stored["ParentStudy"], expected=2)
    assert SC_SERIES_DESCRIPTION not in found  # nothing was read, so there is no overlay
    (report,) = found[SR_SERIES_DESCRIPTION]
    groups = hd.sr.Comprehensive3DSR.from_dataset(report).content.get_image_measurement_groups()
    assert not groups[0].get_measurements(name=CODES["p_pneumonia"])
    texts = [item.TextValue for item in groups[0][0].ContentSequence if item.ValueType == "TEXT"]
    assert any("This is a CT image, not a radiograph" in text for text in texts)
