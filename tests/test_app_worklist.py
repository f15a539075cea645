"""The worklist page through AppTest: a listener's work dir read for triage, a stored result opened and audited.

The work dir is filled through the queue's own API with results of real films read by the tiny
model (the listener's side is tested in tests/test_pacs_worklist.py); the page must show exactly
what was stored, without running the model.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from streamlit.testing.v1 import AppTest

from app_pages.worklist import OPEN_KEY
from pneumo.inference.predict import Classifier
from pneumo.pacs.audit import AUDIT_FILE, OPENED
from pneumo.pacs.queue import Summary, WorkQueue, result_id
from pneumo.pacs.worklist import StoredResult, save_images
from pneumo.render.wording import format_probability
from tests.support.data import real_films

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
PAGE = "app_pages/worklist.py"
TIMEOUT_S = 90


def fill(work: Path, classifier: Classifier, films: list[Path], kept: bool = False) -> list[tuple[str, StoredResult]]:
    """Queue and finish each film as the listener would (``kept``: with images and accession numbers).

    Returns (row id, stored result) in arrival order.
    """
    queue = WorkQueue(work)
    done = []
    try:
        for number, path in enumerate(films):
            uid = f"1.2.826.0.1.3680043.10.1.40.{number}"
            assert queue.add(uid, "1.2.826.0.1.3680043.10.1.40", "1.2.840.10008.5.1.4.1.1.1.1", b"x",
                             accession=f"ACC-{number}" if kept else None)
            entry = queue.claim()
            assessment = classifier.assess(path, name=uid)
            stored = StoredResult.of(assessment, classifier, interval=(0.1, 0.9), method="Grad-CAM")
            if kept:
                film = np.full((64, 64), 100, dtype=np.uint8)
                save_images(work, entry.row_id, film, np.stack([film, film // 2, film // 3], axis=-1))
            queue.finish(entry.sop_instance_uid, Summary.of(assessment), stored.to_json())
            done.append((result_id(uid), stored))
    finally:
        queue.close()
    return done


@pytest.fixture(scope="module")
def classifier(tiny_model) -> Classifier:
    return Classifier(tiny_model)


@pytest.fixture
def worklist(tmp_path, classifier, monkeypatch):
    """A work dir with three real films read (one of them an unreadable file) and the page's environment."""
    broken = tmp_path / "broken.png"
    broken.write_bytes(b"\x89PNG\r\n\x1a\n not a film")
    work = tmp_path / "work"
    rows = fill(work, classifier, [*real_films("NORMAL", 1), *real_films("PNEUMONIA", 1), broken])
    monkeypatch.setenv("PNEUMO_WORKLIST", str(work))
    monkeypatch.delenv("PNEUMO_AUDIT_LOG", raising=False)
    return work, rows


def open_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    assert not at.exception
    at.switch_page(PAGE).run()
    assert not at.exception
    return at


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for kind in ("markdown", "caption", "title", "subheader", "info", "warning",
                                                "error") for e in getattr(at, kind))


def test_without_a_listener_folder_the_page_says_how_to_set_one_up(monkeypatch):
    monkeypatch.delenv("PNEUMO_WORKLIST", raising=False)
    shown = texts(open_page())
    assert "No listener folder is set" in shown and "dicom-listener" in shown and "WORKLIST=" in shown


def test_the_table_lists_read_films_most_likely_first_and_the_unreadable_one_apart(worklist):
    work, rows = worklist
    at = open_page()
    table, refused = at.dataframe
    listed = table.value
    read = sorted((s.p_pneumonia for _, s in rows if s.p_pneumonia is not None), reverse=True)
    assert list(listed["p_pneumonia"]) == pytest.approx(read)
    assert "accession" not in listed.columns  # none kept
    assert list(refused.value["result"]) == ["error"] and refused.value["reason"].iloc[0]
    at.radio(key="worklist_order").set_value("newest").run()
    assert not at.exception
    newest = [s.p_pneumonia for _, s in reversed(rows) if s.p_pneumonia is not None]
    assert list(at.dataframe[0].value["p_pneumonia"]) == pytest.approx(newest)


def test_an_opened_row_shows_its_stored_result_without_the_model_and_is_audited(worklist, monkeypatch):
    work, rows = worklist
    row_id, stored = rows[1]

    def no_model(*_, **__):
        raise AssertionError("the worklist ran the model")

    at = open_page()
    monkeypatch.setattr(Classifier, "assess", no_model)
    monkeypatch.setattr(Classifier, "predict_inputs", no_model)
    at.session_state[OPEN_KEY] = row_id
    at.session_state["worklist_audit_pending"] = True
    at.run()
    assert not at.exception
    shown = texts(at)
    assert f"P(pneumonia) = **{format_probability(stored.p_pneumonia)}**" in shown
    assert "did not run again" in shown and "secondary capture" in shown  # no images were kept
    assert "Case report (PDF)" in [b.label for b in at.get("download_button")]
    assert any(h.value.startswith("Result: film received ") and "accession" not in h.value for h in at.subheader)
    (event,) = [json.loads(line) for line in (work / AUDIT_FILE).read_text().splitlines()]
    assert event["user"] == "local (no sign-in)" and event["action"] == OPENED and event["result"] == row_id
    at.run()  # a rerun of the same view is not a second opening
    assert len((work / AUDIT_FILE).read_text().splitlines()) == 1


def test_a_result_is_not_shown_when_the_audit_log_cannot_be_written(worklist, monkeypatch, tmp_path):
    _, rows = worklist
    monkeypatch.setenv("PNEUMO_AUDIT_LOG", str(tmp_path / "missing-folder" / "audit.jsonl"))
    at = open_page()
    at.session_state[OPEN_KEY] = rows[0][0]
    at.session_state["worklist_audit_pending"] = True
    at.run()
    assert not at.exception
    assert any("audit log" in e.value and "cannot be written" in e.value for e in at.error)
    assert "P(pneumonia) = **" not in texts(at)


def test_kept_images_and_accession_numbers_are_shown(tmp_path, classifier, monkeypatch):
    work = tmp_path / "work"
    ((row_id, _),) = fill(work, classifier, real_films("PNEUMONIA", 1), kept=True)
    monkeypatch.setenv("PNEUMO_WORKLIST", str(work))
    at = open_page()
    assert list(at.dataframe[0].value["accession"]) == ["ACC-0"]
    at.session_state[OPEN_KEY] = row_id
    at.run()
    (heading,) = [h.value for h in at.subheader if h.value.startswith("Result")]
    assert heading.startswith("Result: film received ") and heading.endswith(" UTC, accession ACC-0")
    captions = [c for image in at.image for c in image.captions]
    assert "The film as the model saw it" in captions and any("Grad-CAM" in c for c in captions)
