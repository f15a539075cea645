"""A batch run's results file: appended batch by batch, never left half-written, resumable.

Each row is a film's :data:`RESULT_FIELDS`: the CSV columns of ``predict``
(:data:`pneumo.inference.predict.CSV_FIELDS`), then ``model`` (the model's name and the first
12 hex digits of its file's sha256) and ``sha256`` (the scored file's own checksum, empty when
the file could not be read). A rerun with the same ``--out`` skips every film whose path and
checksum already have a row, scores again a film whose file changed (its old row is dropped),
and appends the rest.

A CSV results file is appended in whole batches, each flushed and fsynced, so a crash or a
Ctrl-C loses at most the batch in flight; a torn last line (a kill mid-write) is cut off when
the file is next opened. A Parquet file cannot be appended, so the rows of a run go to a
journal beside it (``.NAME.parquet.partial.csv``, a CSV like the above) and the Parquet file is
written once, under a temporary name and then renamed, when the run ends or is interrupted;
an unfinished journal is taken up by the next run.
"""

from __future__ import annotations

import csv
import hashlib
import io
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from pneumo.inference.predict import CSV_FIELDS
from pneumo.io import one_line

RESULT_FIELDS = (*CSV_FIELDS, "model", "sha256")
"""The columns of a batch results file, in order."""

FLOAT_FIELDS = ("p_pneumonia", "p_bacterial")
"""Columns stored as numbers in Parquet (empty: null)."""

FORMATS = {".csv": "csv", ".parquet": "parquet"}


class ResultsError(Exception):
    """A results file that cannot be used: one sentence the user can act on."""


def bytes_sha256(data: bytes) -> str:
    """The hex sha256 of ``data``."""
    return hashlib.sha256(data).hexdigest()


def file_sha256(path: str | Path) -> str | None:
    """The hex sha256 of a file's contents, or None when it cannot be read (gone, a folder)."""
    digest = hashlib.sha256()
    try:
        with open(path, "rb") as handle:
            for chunk in iter(lambda: handle.read(1 << 20), b""):
                digest.update(chunk)
    except (OSError, ValueError):
        return None
    return digest.hexdigest()


def model_id(name: str, sha256: str) -> str:
    """What the ``model`` column holds: ``"cnn160x5@1a2b3c4d5e6f"``."""
    return f"{name}@{sha256[:12]}"


def format_of(path: str | Path) -> str:
    """``"csv"`` or ``"parquet"`` by the file's suffix.

    Raises:
        ResultsError: any other suffix.
    """
    suffix = Path(path).suffix.lower()
    if suffix not in FORMATS:
        raise ResultsError(f"The results file {path} must end in .csv or .parquet.")
    return FORMATS[suffix]


@dataclass
class ResumePlan:
    """What a run has to do, given the rows already in its results file."""

    todo: list[str]  # paths to score, in the order given
    skipped: int = 0  # films whose row is kept (same path, same checksum)
    changed: list[str] = field(default_factory=list)  # films whose file changed since their row


class ResultsFile:
    """The results of one batch run, at ``path`` (``.csv`` or ``.parquet``).

    Args:
        path: the output file; its folder must exist and be writable.
        model: the :func:`model_id` of the model scoring this run; rows of another model refuse
            the resume.
        site: the site calibration of this run ("" for none); likewise.

    Raises:
        ResultsError: the folder is missing or not writable, the suffix is neither ``.csv`` nor
            ``.parquet``, or the file exists but is not a results file of this model and site.
    """

    def __init__(self, path: str | Path, model: str, site: str = ""):
        self.path = Path(path)
        if self.path.is_dir():
            raise ResultsError(f"The results file {path} is a folder; name a .csv or .parquet file.")
        self.format = format_of(self.path)
        self.model = model
        self.site = site
        folder = self.path.parent
        if not folder.is_dir():
            raise ResultsError(f"The results file {path} cannot be made: no such folder {folder}.")
        if not os.access(folder, os.W_OK):
            raise ResultsError(f"The results file {path} cannot be made: the folder {folder} is not writable.")
        # CSV: the file itself; Parquet: the journal beside it.
        self.journal = self.path if self.format == "csv" else folder / f".{self.path.name}.partial.csv"
        self._rows = self._read_existing()
        self._check_identity()
        self._handle = None

    # -- reading ------------------------------------------------------------------------------

    def rows(self) -> list[dict]:
        """Every row on file, as strings (the CSV's form), one per path (the latest)."""
        return list(self._rows.values())

    def _read_existing(self) -> dict[str, dict]:
        rows: dict[str, dict] = {}
        if self.format == "parquet" and self.path.exists():
            for row in _read_parquet(self.path):
                rows[row["path"]] = row
        for row in self._read_journal():
            rows[row["path"]] = row
        return rows

    def _read_journal(self) -> list[dict]:
        if not self.journal.exists():
            return []
        try:
            data = self.journal.read_bytes()
        except OSError as err:
            raise ResultsError(f"The results file {self.path} cannot be read ({err.strerror or err}).") from err
        if data and not data.endswith(b"\n"):  # a kill mid-write: drop the torn last line
            data = data[:data.rfind(b"\n") + 1]
            _truncate(self.journal, len(data))
        if not data:
            return []
        reader = csv.DictReader(io.StringIO(data.decode("utf-8", errors="replace"), newline=""))
        if tuple(reader.fieldnames or ()) != RESULT_FIELDS:
            raise ResultsError(f"The file {self.journal} is not a results file of this version of pneumo "
                               f"(its columns are not {','.join(RESULT_FIELDS)}); name another file.")
        rows = []
        for row in reader:
            if None in row or None in row.values():  # more or fewer fields than the header
                raise ResultsError(f"Line {reader.line_num} of {self.journal} is damaged (it does not have the "
                                   f"file's {len(RESULT_FIELDS)} columns); mend or remove that line, or name "
                                   "another file.")
            rows.append(row)
        return rows

    def _check_identity(self) -> None:
        models = {row["model"] for row in self._rows.values()}
        if models - {self.model}:
            other = sorted(models - {self.model})[0]
            raise ResultsError(f"The results file {self.path} holds results of model {other}, not {self.model}; "
                               "rerun with that model or name another file.")
        sites = {row["site"] for row in self._rows.values()}
        if sites - {self.site}:
            other = sorted(sites - {self.site})[0] or "(none)"
            raise ResultsError(f"The results file {self.path} holds results with site calibration {other}, not "
                               f"{self.site or '(none)'}; rerun with that site or name another file.")

    # -- planning -----------------------------------------------------------------------------

    def plan(self, paths: Sequence[str]) -> ResumePlan:
        """Which of ``paths`` still need scoring: no row yet, or a row for other bytes.

        A film whose row's checksum matches its file now is skipped; a film whose file changed
        is scored again and its old row dropped (the file is rewritten without it, atomically);
        a film whose file is gone keeps its row. Reads (hashes) only the films that have a row.
        A film's row is found however its path is spelt (``small/a.dcm`` from the folder above
        or ``/data/small/a.dcm``), as long as both name the same place from here.
        """
        plan = ResumePlan(todo=[])
        by_place = {os.path.abspath(spelt): spelt for spelt in self._rows}
        stale = []
        for path in paths:
            key = printable(path)  # how the row wrote it
            spelt = key if key in self._rows else by_place.get(os.path.abspath(key))
            if spelt is None:
                plan.todo.append(path)
                continue
            now = file_sha256(path)
            if now is None or now == self._rows[spelt]["sha256"]:
                plan.skipped += 1
            else:
                plan.changed.append(path)
                plan.todo.append(path)
                stale.append(spelt)
        if stale:
            for spelt in stale:
                del self._rows[spelt]
            self._rewrite_journal()
        return plan

    # -- writing ------------------------------------------------------------------------------

    def append(self, rows: Iterable[dict]) -> int:
        """Append whole rows (:data:`RESULT_FIELDS`), then flush and fsync; returns how many."""
        rows = [_clean(row) for row in rows]
        if not rows:
            return 0
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(RESULT_FIELDS), lineterminator="\n")
        if self._handle is None:
            fresh = not self.journal.exists() or self.journal.stat().st_size == 0
            try:
                self._handle = open(self.journal, "ab")
            except OSError as err:
                raise ResultsError(f"The results file {self.path} cannot be written ({err.strerror or err}).") from err
            if fresh:
                writer.writeheader()
        writer.writerows(rows)
        try:
            self._handle.write(buffer.getvalue().encode("utf-8"))
            self._handle.flush()
            os.fsync(self._handle.fileno())
        except OSError as err:
            raise ResultsError(f"The results file {self.path} cannot be written ({err.strerror or err}).") from err
        for row in rows:
            self._rows[row["path"]] = row
        return len(rows)

    def finish(self) -> Path:
        """Close the file; for Parquet, write it (temporary name, then rename) and drop the journal."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        if self.format == "parquet" and (self.journal.exists() or not self.path.exists()):
            _write_parquet(self.path, self.rows())
            self.journal.unlink(missing_ok=True)
        elif self.format == "csv" and not self.path.exists():
            self._rewrite_journal()  # nothing scored: still leave a file with its header
        return self.path

    def _rewrite_journal(self) -> None:
        """Write the journal again from the rows in memory (temporary name, then rename)."""
        if self._handle is not None:
            self._handle.close()
            self._handle = None
        buffer = io.StringIO(newline="")
        writer = csv.DictWriter(buffer, fieldnames=list(RESULT_FIELDS), lineterminator="\n")
        writer.writeheader()
        writer.writerows(self._rows.values())
        from pneumo.store import write_atomically

        try:
            write_atomically(self.journal, buffer.getvalue().encode("utf-8"))
        except OSError as err:
            raise ResultsError(f"The results file {self.path} cannot be written ({err.strerror or err}).") from err


def printable(text: str) -> str:
    """``text`` as any UTF-8 reader takes it: a file name's bytes that are not UTF-8 (a Latin-1
    ``M\xfcller.jpeg`` from an old share, which Python holds as surrogates) written as ``\xfc``."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")


def _clean(row: dict) -> dict:
    """The row's values as printable single-line strings (a line break would tear a row on resume)."""
    return {name: printable(" ".join(str(row.get(name, "") or "").splitlines())) for name in RESULT_FIELDS}


def _truncate(path: Path, size: int) -> None:
    with open(path, "r+b") as handle:
        handle.truncate(size)
        handle.flush()
        os.fsync(handle.fileno())


def _read_parquet(path: Path) -> list[dict]:
    import pyarrow.parquet as pq

    try:
        table = pq.read_table(path)
    except (OSError, ValueError) as err:  # pyarrow's ArrowInvalid is a ValueError
        raise ResultsError(f"The results file {path} is not a readable Parquet file ({one_line(err)}); name another file.") from err
    if tuple(table.column_names) != RESULT_FIELDS:
        raise ResultsError(f"The file {path} is not a results file of this version of pneumo "
                           f"(its columns are not {','.join(RESULT_FIELDS)}); name another file.")
    rows = []
    for record in table.to_pylist():
        rows.append({name: ("" if value is None else f"{value:.4f}" if name in FLOAT_FIELDS else str(value))
                     for name, value in record.items()})
    return rows


def _write_parquet(path: Path, rows: list[dict]) -> None:
    import pyarrow as pa
    import pyarrow.parquet as pq

    columns = {}
    for name in RESULT_FIELDS:
        values = [row[name] for row in rows]
        if name in FLOAT_FIELDS:
            columns[name] = pa.array([float(v) if v != "" else None for v in values], type=pa.float64())
        else:
            columns[name] = pa.array(values, type=pa.string())
    temporary = path.with_name(f".{path.name}.writing")
    try:
        pq.write_table(pa.table(columns), temporary)
        with open(temporary, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except OSError as err:
        temporary.unlink(missing_ok=True)
        raise ResultsError(f"The results file {path} cannot be written ({err.strerror or err}).") from err


class StreamedResults:
    """Rows written to an open text stream (stdout) as they come: nothing to resume, same columns."""

    def __init__(self, stream):
        self.stream = stream
        self.path = None
        self._writer = csv.DictWriter(stream, fieldnames=list(RESULT_FIELDS), lineterminator="\n")
        self._writer.writeheader()
        stream.flush()

    def plan(self, paths: Sequence[str]) -> ResumePlan:
        """Everything is to do."""
        return ResumePlan(todo=list(paths))

    def append(self, rows: Iterable[dict]) -> int:
        """Write the rows and flush; returns how many."""
        rows = [_clean(row) for row in rows]
        self._writer.writerows(rows)
        self.stream.flush()
        return len(rows)

    def finish(self) -> None:
        """Nothing to close: the stream belongs to the caller."""
