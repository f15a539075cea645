"""The audit log: who opened which worklist result, and when, one JSON line per event.

A line holds the time (UTC), the user as the sign-in names them (their e-mail or subject, or
``local (no sign-in)``), what they did (:data:`ACTIONS`) and the result's opaque id
(:func:`pneumo.pacs.queue.result_id`): never a patient's name, ID, birth date, accession number
or UID. Lines are appended whole and flushed to disk, so several app sessions can write to one
log and a crash loses at most the line in flight.
"""

from __future__ import annotations

import json
import os
import threading
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

AUDIT_FILE = "audit.jsonl"
"""The log's name in the worklist's folder, unless the operator names another file."""
OPENED, DOWNLOADED_PDF = "opened-result", "downloaded-report"
ACTIONS = (OPENED, DOWNLOADED_PDF)
_lock = threading.Lock()


@dataclass(frozen=True)
class AuditEvent:
    """One line of the log."""

    time: str
    user: str
    action: str
    result: str


class AuditLog:
    """An append-only JSON-lines file at ``path`` (its folder must exist)."""

    def __init__(self, path: str | Path):
        self.path = Path(path)

    def record(self, user: str, action: str, result: str) -> AuditEvent:
        """Append one event and flush it to disk; returns it.

        Raises:
            ValueError: an unknown action, or an empty user or result id.
            OSError: the log cannot be written.
        """
        if action not in ACTIONS:
            raise ValueError(f"unknown audit action {action!r}; choose from {list(ACTIONS)}")
        if not user or not result:
            raise ValueError("an audit event needs a user and a result id")
        event = AuditEvent(time=datetime.now(timezone.utc).isoformat(timespec="milliseconds"),
                           user=" ".join(user.split()), action=action, result=result)
        line = (json.dumps(event.__dict__, sort_keys=True) + "\n").encode("utf-8")
        with _lock:
            handle = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
            try:
                os.write(handle, line)
                os.fsync(handle)
            finally:
                os.close(handle)
        return event

    def events(self) -> list[AuditEvent]:
        """Every event so far, oldest first (none when the log does not exist yet)."""
        if not self.path.is_file():
            return []
        found = []
        for line in self.path.read_text(encoding="utf-8").splitlines():
            if line.strip():
                found.append(AuditEvent(**json.loads(line)))
        return found
