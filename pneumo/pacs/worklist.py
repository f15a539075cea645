"""The worklist: what the listener read, kept so a result can be shown again without the model.

When the listener finishes a film it stores a :class:`StoredResult` in the queue's row (the
figures, words and checks the diagnose page shows, never a patient's identity) and, only when
the operator started it with ``--keep-overlays``, the film as the model saw it and its Grad-CAM
overlay as two small PNGs under ``<work dir>/results/``. :func:`read_worklist` reads the queue
file read-only (the listener keeps writing; WAL mode means neither waits) and orders it for
triage; :func:`load_result` gives one row's result back. Rows are named by an opaque id (a hash
of the SOP Instance UID, :func:`pneumo.pacs.queue.result_id`), which is what the page's links and the audit log use.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
from PIL import Image

from pneumo.inference.predict import STATUS_OK, Assessment, Classifier
from pneumo.pacs.queue import OWN_RESULT, QUEUE_FILE, RESULTS_DIR, STATUS_DONE
from pneumo.render.diagnosis import scored_alike_words
from pneumo.render.pdf import CaseReport
from pneumo.render.wording import verdict_for

ORDER_LIKELY, ORDER_NEWEST = "likely", "newest"
ORDERS = (ORDER_LIKELY, ORDER_NEWEST)
KEPT_METADATA = ("view", "modality", "body_part", "photometric")
"""Header fields a stored result keeps: what the page shows, without the study date."""
FILM_PNG, OVERLAY_PNG = "film.png", "overlay.png"


class WorklistError(RuntimeError):
    """No readable listener queue where the worklist looks; one sentence saying what to do."""


@dataclass(frozen=True)
class StoredResult:
    """One film's result as the worklist shows it and the PDF prints it (JSON in the queue row).

    ``status`` is the assessment's (``ok``, ``rejected``, ``error``); for a refused or unreadable
    film ``message`` says why and the figures are None. ``interval`` is the 10-90% interval
    under test-time changes (None when it was not computed); ``method`` the overlay's method
    name; ``attention_outside`` whether that map's weight lay at the film's border.
    """

    status: str
    message: str = ""
    p_pneumonia: float | None = None
    label: str = ""
    threshold: float = 0.5
    classes: tuple[str, ...] = ("NORMAL", "PNEUMONIA")
    interval: tuple[float, float] | None = None
    pattern: str = ""
    p_bacterial: float | None = None
    subtype_threshold: float | None = None
    warnings: tuple[str, ...] = ()
    out_of_scope_reason: str = ""
    notes: tuple[str, ...] = ()
    metadata: Mapping[str, str] = field(default_factory=dict)
    model_name: str = ""
    model_version: str = ""
    site: str = ""
    method: str = ""
    attention_outside: bool = False
    scored_alike: str = ""  # how the model's out-of-fold training films scored alike turned out, when known

    @classmethod
    def of(cls, assessment: Assessment, classifier: Classifier, interval: tuple[float, float] | None = None,
           method: str = "", attention_outside: bool = False) -> StoredResult:
        """What is kept of an assessment; the refused film's probability (an expert's "show anyway") is not."""
        ok = assessment.status == STATUS_OK
        film = assessment.film
        subtype = classifier.subtype
        return cls(
            status=assessment.status, message=assessment.message,
            p_pneumonia=assessment.p_pneumonia if ok else None, label=assessment.label or "",
            threshold=float(classifier.threshold), classes=tuple(classifier.classes),
            interval=tuple(interval) if interval is not None and ok else None,
            pattern=assessment.pattern, p_bacterial=assessment.p_bacterial,
            subtype_threshold=float(subtype.threshold) if assessment.pattern and subtype is not None else None,
            warnings=tuple(assessment.warnings), out_of_scope_reason=assessment.out_of_scope_reason,
            notes=tuple(film.notes) if film is not None else (),
            metadata={k: v for k, v in (film.metadata if film is not None else {}).items() if k in KEPT_METADATA},
            model_name=classifier.loaded.name, model_version=classifier.loaded.version,
            site=classifier.site_name, method=method if ok else "", attention_outside=attention_outside,
            scored_alike=(scored_alike_words(classifier, assessment.p_pneumonia) or "") if ok else "")

    def to_json(self) -> str:
        """The JSON text kept in the queue row."""
        return json.dumps(asdict(self), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> StoredResult:
        """The result kept in a queue row (unknown keys, from a newer listener, are ignored)."""
        values = json.loads(text)
        known = {name: values[name] for name in cls.__dataclass_fields__ if name in values}
        for name in ("classes", "warnings", "notes"):
            if name in known:
                known[name] = tuple(known[name])
        if known.get("interval") is not None:
            known["interval"] = tuple(known["interval"])
        return cls(**known)

    def case_report(self, film: np.ndarray | None, overlay: np.ndarray | None, created=None) -> CaseReport:
        """The PDF case report of a read film (without images when the listener kept none).

        Raises:
            ValueError: the film was not read (no probability to report).
        """
        if self.p_pneumonia is None:
            raise ValueError("a film that was not read has no case report")
        return CaseReport(
            film=film, overlay=overlay, p_pneumonia=self.p_pneumonia, threshold=self.threshold,
            model_name=self.model_name, model_version=self.model_version, method=self.method,
            interval=self.interval, classes=self.classes, metadata=dict(self.metadata),
            attention_outside=self.attention_outside, created=created, site=self.site, warnings=self.warnings,
            pattern=self.pattern if self.p_bacterial is not None else "",
            p_bacterial=self.p_bacterial if self.pattern else None, subtype_threshold=self.subtype_threshold,
            scored_alike=self.scored_alike)


@dataclass(frozen=True)
class Delivered:
    """What a listener's ``deliver`` hands back: the result to keep, and the film and overlay it showed."""

    result: StoredResult
    film: np.ndarray | None = None
    overlay: np.ndarray | None = None


@dataclass(frozen=True)
class WorklistRow:
    """One received film as the worklist lists it (no patient identity; ``accession`` only when kept).

    ``verdict`` is the read film's verdict in the diagnose page's words (at the threshold it was
    read at), "" for any other row.
    """

    id: str
    received: str
    finished: str | None
    status: str
    result_status: str | None
    p_pneumonia: float | None
    label: str | None
    pattern: str | None
    p_bacterial: float | None
    reason: str | None
    accession: str | None
    has_result: bool
    verdict: str = ""

    @property
    def label_words(self) -> str:
        """Which film this is, for the opened result and its PDF: when it came, and its accession
        number when the operator kept it (``received 2026-12-07 10:11:28 UTC, accession A-2``)."""
        words = f"received {self.received.replace('T', ' ')[:19]} UTC"
        return f"{words}, accession {self.accession}" if self.accession else words

    @property
    def refused(self) -> bool:
        """Done, but refused or unreadable: listed apart, with its reason."""
        return self.status == STATUS_DONE and self.result_status not in (None, STATUS_OK)

    @property
    def read(self) -> bool:
        """Done and read by the model: it has a probability."""
        return self.status == STATUS_DONE and self.result_status == STATUS_OK


@dataclass(frozen=True)
class Worklist:
    """The queue read once: the films read or waiting (in the order asked for), and those refused."""

    rows: tuple[WorklistRow, ...]
    refused: tuple[WorklistRow, ...]
    counts: Mapping[str, int]
    accession_kept: bool


_ROW_SQL = ("SELECT row_id, received, finished, status, result_status, p_pneumonia, label, pattern, "
            "p_bacterial, reason, accession, result FROM instances")


def _connect(work_dir: str | Path) -> sqlite3.Connection:
    path = Path(work_dir) / QUEUE_FILE
    if not path.is_file():
        raise WorklistError(f"There is no listener queue in {work_dir}: start `python -m pneumo dicom-listener "
                            f"--work-dir {work_dir} ...` there first.")
    try:
        db = sqlite3.connect(f"{path.resolve().as_uri()}?mode=ro", uri=True)
        db.execute("SELECT row_id, accession, result FROM instances LIMIT 1")
    except sqlite3.OperationalError as err:
        if "no such column" in str(err):
            raise WorklistError(f"The listener queue in {work_dir} was written by an earlier listener: start "
                                "the listener on it once to bring it up to date.") from None
        raise WorklistError(f"The listener queue in {work_dir} cannot be read ({err}).") from None
    except sqlite3.Error as err:
        raise WorklistError(f"The listener queue in {work_dir} cannot be read ({err}).") from None
    return db


def _query(work_dir: str | Path, sql: str, parameters: tuple = ()) -> list[tuple]:
    """Every row ``sql`` selects from the listener queue in ``work_dir``, read-only.

    Raises:
        WorklistError: no queue in ``work_dir``, or one that cannot be read.
    """
    db = _connect(work_dir)
    try:
        return db.execute(sql, parameters).fetchall()
    except sqlite3.Error as err:
        raise WorklistError(f"The listener queue in {work_dir} cannot be read ({err}).") from None
    finally:
        db.close()


def read_worklist(work_dir: str | Path, order: str = ORDER_LIKELY) -> Worklist:
    """The listener's films for triage: read films most likely positive first (or newest first).

    In ``likely`` order read films come by falling P(pneumonia), then the films still queued
    or failed (no probability yet), each group newest first; in ``newest`` order every row
    comes by arrival, newest first. Refused and unreadable films are listed apart, newest first.

    Raises:
        WorklistError: no queue in ``work_dir``, or one that cannot be read.
        ValueError: an unknown order.
    """
    if order not in ORDERS:
        raise ValueError(f"unknown worklist order {order!r}; choose from {list(ORDERS)}")
    rows = [_row(values) for values in _query(work_dir, _ROW_SQL + " ORDER BY rowid DESC")]
    rows = [row for row in rows if row.result_status != OWN_RESULT]
    counts: dict[str, int] = {}
    for row in rows:
        counts[row.status] = counts.get(row.status, 0) + 1
    listed = [row for row in rows if not row.refused]
    if order == ORDER_LIKELY:  # sorted() is stable: each group stays newest first
        listed = sorted(listed, key=lambda row: -row.p_pneumonia if row.read and row.p_pneumonia is not None
                        else float("inf"))
    return Worklist(rows=tuple(listed), refused=tuple(row for row in rows if row.refused), counts=counts,
                    accession_kept=any(row.accession for row in rows))


def read_row(work_dir: str | Path, row_id: str) -> WorklistRow | None:
    """One worklist row by its id (as :func:`read_worklist` lists it), or None when there is none.

    Raises:
        WorklistError: no queue in ``work_dir``, or one that cannot be read.
    """
    found = _query(work_dir, _ROW_SQL + " WHERE row_id = ?", (row_id,))
    return _row(found[0]) if found else None


def _row(values) -> WorklistRow:
    *fields, text = values
    row = WorklistRow(*fields, has_result=text is not None)
    if row.read and row.p_pneumonia is not None and text is not None:
        result = StoredResult.from_json(text)
        row = replace(row, verdict=verdict_for(row.p_pneumonia, result.threshold, result.classes).text)
    return row


def load_result(work_dir: str | Path, row_id: str) -> tuple[StoredResult, np.ndarray | None, np.ndarray | None]:
    """One row's stored result, and its film and overlay when the listener kept them (else None, None).

    Raises:
        WorklistError: no queue, or no stored result under that id.
    """
    found = _query(work_dir, "SELECT result FROM instances WHERE row_id = ? AND result IS NOT NULL", (row_id,))
    if not found:
        raise WorklistError("That worklist row has no stored result (it is still queued, failed, or was removed).")
    folder = Path(work_dir) / RESULTS_DIR / row_id
    film, overlay = (_png(folder / name) for name in (FILM_PNG, OVERLAY_PNG))
    if film is None or overlay is None:
        film = overlay = None
    return StoredResult.from_json(found[0][0]), film, overlay


def save_images(work_dir: str | Path, row_id: str, film: np.ndarray, overlay: np.ndarray) -> None:
    """Keep a row's film and overlay as PNGs (the listener calls this only with ``--keep-overlays``)."""
    folder = Path(work_dir) / RESULTS_DIR / row_id
    folder.mkdir(parents=True, exist_ok=True)
    for name, image in ((FILM_PNG, film), (OVERLAY_PNG, overlay)):
        temp = folder / f"{name}.part"
        Image.fromarray(np.asarray(image, dtype=np.uint8)).save(temp, format="PNG")
        temp.replace(folder / name)


def _png(path: Path) -> np.ndarray | None:
    try:
        with Image.open(path) as image:
            return np.asarray(image)
    except (OSError, ValueError):
        return None
