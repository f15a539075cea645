"""The DICOM listener's work queue: one SQLite row per received instance, in the work dir.

A row holds the instance's UIDs, an opaque id (:func:`result_id`), when it came, its status
(``queued``, ``done``, ``failed``), how many times the worker started on it, and the result (its
summary, and the stored result the worklist shows: :mod:`pneumo.pacs.worklist`); never a
patient's name, ID or birth date, and the accession number only when the operator asked for it
(``--keep-accession``). The received file lies in ``<work dir>/incoming/`` only until the row
is done or failed; after that the row is the record.

A restart resumes the queued rows. A row is claimed by counting an attempt *before* the work
starts, so a worker that dies mid-film (killed, out of memory) leaves a row whose count says
so: the next start tries it once more, and a row started :data:`MAX_ATTEMPTS` times without
finishing is marked failed, not retried forever. A failed attempt (the destination PACS down)
is tried again no sooner than :data:`RETRY_DELAY_S` later. The same SOP Instance UID sent twice is
queued once, unless its row has failed: then the film sent again is queued again, so a sender
can recover what an outage lost. One :class:`WorkQueue` serves the listener's handler threads and its worker
(one lock around one connection); other processes (the worklist page) may read the file,
which is in WAL mode so readers never block the listener.
"""

from __future__ import annotations

import hashlib
import os
import sqlite3
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

STATUS_QUEUED, STATUS_DONE, STATUS_FAILED = "queued", "done", "failed"
STATUSES = (STATUS_QUEUED, STATUS_DONE, STATUS_FAILED)
OWN_RESULT = "own-result"
"""A done row's result status when the film was one of Pneumo's own results (not read, not listed)."""
MAX_ATTEMPTS = 2
"""A row is started at most this many times; then it is failed with its last reason."""
RETRY_DELAY_S = 30.0
"""Seconds a row whose attempt failed waits before it is tried again."""
QUEUE_FILE = "queue.sqlite3"
INCOMING_DIR = "incoming"
RESULTS_DIR = "results"
"""Where the worklist's film and overlay PNGs lie, one folder per row id (``--keep-overlays`` only)."""
STOPPED_REASON = ("The worker stopped before finishing this film "
                  f"{MAX_ATTEMPTS} times (it crashed or was killed), so it is not tried again.")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS instances (
    sop_instance_uid TEXT PRIMARY KEY,
    study_uid TEXT NOT NULL,
    sop_class_uid TEXT NOT NULL,
    received TEXT NOT NULL,
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    file TEXT,
    finished TEXT,
    result_status TEXT,
    p_pneumonia REAL,
    label TEXT,
    pattern TEXT,
    p_bacterial REAL,
    reason TEXT,
    row_id TEXT,
    accession TEXT,
    result TEXT
)
"""
_ADDED_COLUMNS = {"row_id": "TEXT", "accession": "TEXT", "result": "TEXT", "retry_after": "REAL"}
"""Columns a queue written by an earlier listener lacks; added when it is opened."""
_COLUMNS = ("sop_instance_uid", "study_uid", "sop_class_uid", "received", "status", "attempts",
            "file", "finished", "result_status", "p_pneumonia", "label", "pattern", "p_bacterial",
            "reason", "row_id", "accession", "result")


@dataclass(frozen=True)
class Summary:
    """What the queue keeps of an assessment (:class:`pneumo.inference.predict.Assessment`).

    ``status`` is the assessment's (``ok``, ``rejected``, ``error``); ``reason`` its message
    (the refusal or read error; for an ``ok`` film any warnings, else "").
    """

    status: str
    p_pneumonia: float | None = None
    label: str = ""
    pattern: str = ""
    p_bacterial: float | None = None
    reason: str = ""

    @classmethod
    def of(cls, assessment) -> Summary:
        """The summary of an ``Assessment``."""
        return cls(status=assessment.status, p_pneumonia=assessment.p_pneumonia,
                   label=assessment.label or "", pattern=assessment.pattern,
                   p_bacterial=assessment.p_bacterial, reason=assessment.message)


@dataclass(frozen=True)
class Entry:
    """One row of the queue. ``path`` is the received file while the row is queued, else None.

    ``result_status`` .. ``p_bacterial`` are the result's :class:`Summary` once done;
    ``reason`` is the result's message when done, or why the row failed; ``result`` the
    stored result's JSON (:class:`pneumo.pacs.worklist.StoredResult`) once done.
    """

    sop_instance_uid: str
    study_uid: str
    sop_class_uid: str
    received: str
    status: str
    attempts: int
    path: Path | None
    finished: str | None
    result_status: str | None
    p_pneumonia: float | None
    label: str | None
    pattern: str | None
    p_bacterial: float | None
    reason: str | None
    row_id: str | None = None
    accession: str | None = None
    result: str | None = None


def _now() -> str:
    return datetime.now(timezone.utc).isoformat(timespec="milliseconds")


def result_id(sop_instance_uid: str) -> str:
    """A row's opaque id: a hash of the SOP Instance UID (what links, folders and the audit log use)."""
    return hashlib.sha256(sop_instance_uid.encode("utf-8", "replace")).hexdigest()[:40]


def file_name(sop_instance_uid: str) -> str:
    """The received file's name: the row's id, so a peer's UID never becomes a path."""
    return result_id(sop_instance_uid) + ".dcm"


class WorkQueue:
    """The persisted queue in ``work_dir`` (created if missing).

    Opening it removes what a crash may have left: half-written files, and files no queued
    row refers to.

    Raises:
        OSError: the work dir cannot be created.
        sqlite3.DatabaseError: the queue file is not a queue.
    """

    def __init__(self, work_dir: str | Path, retry_delay: float = RETRY_DELAY_S):
        self.work_dir = Path(work_dir)
        self.retry_delay = float(retry_delay)
        self.incoming = self.work_dir / INCOMING_DIR
        self.incoming.mkdir(parents=True, exist_ok=True)
        self.path = self.work_dir / QUEUE_FILE
        self._lock = threading.Lock()
        self._claimed: set[str] = set()  # rows this process's worker has started and not finished
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)
        self._add_missing_columns()
        self._remove_orphans()

    # -- the handler's side --------------------------------------------------------------------

    def add(self, sop_instance_uid: str, study_uid: str, sop_class_uid: str, data: bytes,
            accession: str | None = None) -> bool:
        """Keep a received file and queue it; False (nothing kept) when the UID is already queued or done.

        A UID whose row has failed is queued again with this file (its attempts start afresh).

        The file is written and flushed to disk before the row exists, so a queued row always
        has its file. ``accession`` is kept only when given (the operator's choice).

        Raises:
            OSError: the file cannot be written (disk full, work dir gone).
        """
        handle, temp = tempfile.mkstemp(dir=self.incoming, suffix=".part")
        try:
            with os.fdopen(handle, "wb") as out:
                out.write(data)
                out.flush()
                os.fsync(out.fileno())
            with self._lock:
                known = self._db.execute("SELECT status FROM instances WHERE sop_instance_uid = ?",
                                         (sop_instance_uid,)).fetchone()
                if known and known[0] != STATUS_FAILED:
                    return False
                name = file_name(sop_instance_uid)
                os.replace(temp, self.incoming / name)
                if known:
                    self._db.execute(
                        "UPDATE instances SET status = ?, attempts = 0, file = ?, received = ?, finished = NULL, "
                        "result_status = NULL, p_pneumonia = NULL, label = NULL, pattern = NULL, "
                        "p_bacterial = NULL, reason = NULL, result = NULL, retry_after = NULL, accession = ? "
                        "WHERE sop_instance_uid = ?",
                        (STATUS_QUEUED, name, _now(), accession or None, sop_instance_uid))
                    return True
                self._db.execute(
                    "INSERT INTO instances (sop_instance_uid, study_uid, sop_class_uid, received, "
                    "status, file, row_id, accession) VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    (sop_instance_uid, study_uid, sop_class_uid, _now(), STATUS_QUEUED, name,
                     result_id(sop_instance_uid), accession or None))
                return True
        finally:
            if os.path.exists(temp):
                os.unlink(temp)

    # -- the worker's side ---------------------------------------------------------------------

    def claim(self) -> Entry | None:
        """The oldest queued row not yet started here and not waiting to be retried, its attempt
        counted; None when there is none.

        A row already started :data:`MAX_ATTEMPTS` times (by workers that never finished it)
        is failed with :data:`STOPPED_REASON` and skipped.
        """
        with self._lock:
            while True:
                row = self._db.execute(
                    f"SELECT {', '.join(_COLUMNS)} FROM instances WHERE status = ? "
                    f"AND sop_instance_uid NOT IN ({', '.join('?' * len(self._claimed))}) "
                    "AND (retry_after IS NULL OR retry_after <= ?) "
                    "ORDER BY rowid LIMIT 1", (STATUS_QUEUED, *self._claimed, time.time())).fetchone()
                if row is None:
                    return None
                uid, attempts = row[0], row[5]
                if attempts >= MAX_ATTEMPTS:
                    self._close_row(uid, STATUS_FAILED, None, STOPPED_REASON)
                    continue
                self._db.execute("UPDATE instances SET attempts = attempts + 1 WHERE sop_instance_uid = ?",
                                 (uid,))
                self._claimed.add(uid)
                return self._entry((*row[:5], attempts + 1, *row[6:]))

    def finish(self, sop_instance_uid: str, summary: Summary, result: str | None = None) -> None:
        """Mark a claimed row done with its summary and stored result (JSON), and delete its file."""
        with self._lock:
            self._close_row(sop_instance_uid, STATUS_DONE, summary, summary.reason, result)

    def fail(self, sop_instance_uid: str, reason: str) -> str:
        """A claimed row's attempt failed: queued again (after ``retry_delay``) while attempts remain, else failed.

        Args:
            reason: one sentence, without patient identifiers; kept as the row's reason.

        Returns:
            The row's status afterwards (``queued`` or ``failed``).
        """
        with self._lock:
            self._claimed.discard(sop_instance_uid)
            attempts = self._db.execute("SELECT attempts FROM instances WHERE sop_instance_uid = ?",
                                        (sop_instance_uid,)).fetchone()
            if attempts is not None and attempts[0] < MAX_ATTEMPTS:
                self._db.execute("UPDATE instances SET reason = ?, retry_after = ? WHERE sop_instance_uid = ?",
                                 (reason, time.time() + self.retry_delay, sop_instance_uid))
                return STATUS_QUEUED
            self._close_row(sop_instance_uid, STATUS_FAILED, None, reason)
            return STATUS_FAILED

    # -- reading -------------------------------------------------------------------------------

    def entry(self, sop_instance_uid: str) -> Entry | None:
        """The row of one instance, or None."""
        with self._lock:
            row = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM instances WHERE sop_instance_uid = ?",
                                   (sop_instance_uid,)).fetchone()
        return None if row is None else self._entry(row)

    def entries(self) -> list[Entry]:
        """Every row, oldest first."""
        with self._lock:
            rows = self._db.execute(f"SELECT {', '.join(_COLUMNS)} FROM instances ORDER BY rowid").fetchall()
        return [self._entry(row) for row in rows]

    def counts(self) -> dict[str, int]:
        """The number of rows of each status (all of :data:`STATUSES`, zeros included)."""
        with self._lock:
            found = dict(self._db.execute("SELECT status, COUNT(*) FROM instances GROUP BY status").fetchall())
        return {status: int(found.get(status, 0)) for status in STATUSES}

    def pending(self) -> int:
        """Rows still queued (started or not)."""
        return self.counts()[STATUS_QUEUED]

    def close(self) -> None:
        """Close the database connection (the queue is unusable afterwards)."""
        with self._lock:
            self._db.close()

    # -- inside --------------------------------------------------------------------------------

    def _entry(self, row) -> Entry:
        values = dict(zip(_COLUMNS, row))
        name = values.pop("file")
        return Entry(path=self.incoming / name if name else None, **values)

    def _close_row(self, uid: str, status: str, summary: Summary | None, reason: str,
                   result: str | None = None) -> None:
        """Set a row's final status (lock held), then delete its file: the row is the record."""
        self._claimed.discard(uid)
        name = self._db.execute("SELECT file FROM instances WHERE sop_instance_uid = ?", (uid,)).fetchone()
        s = summary or Summary(status="")
        self._db.execute(
            "UPDATE instances SET status = ?, file = NULL, finished = ?, result_status = ?, "
            "p_pneumonia = ?, label = ?, pattern = ?, p_bacterial = ?, reason = ?, result = ? "
            "WHERE sop_instance_uid = ?",
            (status, _now(), s.status or None, s.p_pneumonia, s.label or None, s.pattern or None,
             s.p_bacterial, reason, result, uid))
        if name and name[0]:
            (self.incoming / name[0]).unlink(missing_ok=True)

    def _add_missing_columns(self) -> None:
        """Bring a queue written by an earlier listener up to this schema (its rows get their ids)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(instances)")}
        for name, kind in _ADDED_COLUMNS.items():
            if name not in present:
                self._db.execute(f"ALTER TABLE instances ADD COLUMN {name} {kind}")
        for (uid,) in self._db.execute("SELECT sop_instance_uid FROM instances WHERE row_id IS NULL").fetchall():
            self._db.execute("UPDATE instances SET row_id = ? WHERE sop_instance_uid = ?", (result_id(uid), uid))
        self._db.execute("CREATE INDEX IF NOT EXISTS instances_row_id ON instances (row_id)")

    def _remove_orphans(self) -> None:
        """Delete half-written files and files no queued row refers to (left by a crash)."""
        kept = {name for (name,) in self._db.execute(
            "SELECT file FROM instances WHERE status = ? AND file IS NOT NULL", (STATUS_QUEUED,))}
        for path in self.incoming.iterdir():
            if path.is_file() and path.name not in kept:
                path.unlink(missing_ok=True)
