"""Privacy: an upload is processed in memory, never written to disk or logs, and a DICOM's
identifiers (name, ID, birth date, accession number) are never shown, logged or written.

Uploads go through the real app (AppTest, in this process) and the real command line (a
child process). Each check is a net, and ``test_the_nets_catch_a_planted_leak`` plants a
leak in every one of them, so a net that sees nothing cannot pass for a clean result:

* logs: every log record made in this process, whatever its logger's level, handlers or
  ``propagate`` flag (Streamlit's loggers do not propagate to the root logger, where
  ``caplog`` listens, and a DEBUG record is dropped before any handler sees it), every
  warning, and file descriptors 1 and 2 (``capfd``, which also sees what C++ code prints);
* files: an audit hook lists every file this process opens for writing while an upload is
  handled, in any folder, even one deleted straight after; snapshots of the repository,
  HOME and the temporary folders find files created or changed, which are searched for the
  identifiers, the upload's name and a run of its bytes; the temporary folder the upload
  sees (``TMPDIR``) is a fresh one that must stay empty. The command line is also traced
  with strace, when the machine has it, for every file it opens for writing;
* the page: every element the app sent (AppTest's protobufs), searched for the identifiers.
  The page does show the upload's name (in the verdict): that is the user's own file name,
  shown back to the user, never logged.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import os
import re
import shutil
import subprocess
import sys
import tempfile
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from streamlit.testing.v1 import AppTest

from pneumo import store
from tests.support.data import real_films
from tests.support.dicom_films import IDENTIFIERS, SAFE_FIELDS, make_dicom

ROOT = Path(__file__).resolve().parent.parent
APP = str(ROOT / "app.py")
DIAGNOSE = "app_pages/diagnose.py"
TIMEOUT_S = 90

IDENTIFIER_PATTERNS = (*(re.escape(value) for value in IDENTIFIERS.values()),
                       r"\bDoe\b", r"\bJane\b", r"2020-01-01")
"""The identifiers as written in the header, and the ways code would reformat them."""

UPLOAD_STEM = "privacy-probe-7c1e"
"""Every upload's file name starts with this, distinctive enough to search for."""

MARKER_BYTES = 64
KINDS = ("dicom", "jpeg", "dicom-without-pixels")
READ_CHUNK = 1 << 22

FileState = tuple[int, int, int, int]  # size, mtime_ns, ctime_ns, inode


# -- what is uploaded ---------------------------------------------------------------------------

@dataclass(frozen=True)
class Upload:
    """One file as a browser sends it: name, bytes, MIME type."""

    name: str
    data: bytes
    mime: str

    @property
    def marker(self) -> bytes:
        """A run of bytes from the file's middle (pixel or entropy-coded data), to search for."""
        middle = len(self.data) // 2
        return self.data[middle:middle + MARKER_BYTES]

    def as_tuple(self) -> tuple[str, bytes, str]:
        """The (name, data, type) AppTest's uploader takes."""
        return self.name, self.data, self.mime


@functools.cache
def make_upload(kind: str) -> Upload:
    """The upload of one kind: a 12-bit DICOM of a real film, the film's JPEG, or a DICOM without pixels."""
    path = real_films("NORMAL")[0]
    if kind == "jpeg":
        return Upload(f"{UPLOAD_STEM}.jpeg", path.read_bytes(), "image/jpeg")
    pixels = np.asarray(Image.open(path).convert("L"), dtype=np.uint16) * 16  # 12-bit
    if kind == "dicom":
        return Upload(f"{UPLOAD_STEM}.dcm", make_dicom(pixels), "application/dicom")
    if kind == "dicom-without-pixels":
        return Upload(f"{UPLOAD_STEM}-empty.dcm", make_dicom(None), "application/dicom")
    raise ValueError(f"unknown upload kind {kind!r}; choose from {KINDS}")


def file_needles(uploads: Iterable[Upload]) -> dict[str, bytes]:
    """What no file may hold: the identifiers, the uploads' name and a run of each upload's bytes."""
    needles = {f"identifier {key}": value.encode() for key, value in IDENTIFIERS.items()}
    needles["upload name"] = UPLOAD_STEM.encode()
    for upload in uploads:
        assert len(set(upload.marker)) > 8, "the marker must be distinctive, not a flat run"
        needles[f"bytes of {upload.name}"] = upload.marker
    return needles


def identifiers_in(text: str) -> list[str]:
    """The identifier patterns found in a text."""
    return [pattern for pattern in IDENTIFIER_PATTERNS if re.search(pattern, text)]


# -- the nets -----------------------------------------------------------------------------------

def _formatted(formatter: logging.Formatter, record: logging.LogRecord) -> str:
    try:
        return formatter.format(record)
    except (TypeError, ValueError):  # a malformed logging call elsewhere: keep its raw parts
        return f"{record.name} {record.levelname} {record.msg!r} {record.args!r}"


@contextlib.contextmanager
def everything_logged() -> Iterator[list[str]]:
    """Every log record and warning made in this process while inside, as text lines.

    ``Logger.isEnabledFor`` says yes to every level, so every logging call builds its record,
    and ``Logger.handle`` keeps a copy before passing it on as it would have been (records
    below their logger's level still go nowhere else). Lines from warnings are added on exit.
    """
    lines: list[str] = []
    formatter = logging.Formatter("%(name)s %(levelname)s %(message)s")
    original_handle, original_enabled = logging.Logger.handle, logging.Logger.isEnabledFor

    def keep_and_handle(logger: logging.Logger, record: logging.LogRecord) -> None:
        lines.append(_formatted(formatter, record))
        if original_enabled(logger, record.levelno):
            original_handle(logger, record)

    with pytest.MonkeyPatch.context() as patch, warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        patch.setattr(logging.Logger, "isEnabledFor", lambda logger, level: True)
        patch.setattr(logging.Logger, "handle", keep_and_handle)
        yield lines
    lines.extend(f"warning {w.category.__name__}: {w.message}" for w in caught)


class WriteWatch:
    """Files this process opens for writing (or creates, renames, links) while watching.

    A ``sys.addaudithook`` hook: it sees every thread, every folder, and files deleted
    right after. Hooks cannot be removed, so one is installed per process and stays idle
    outside :meth:`watching`.
    """

    WRITE_FLAGS = os.O_WRONLY | os.O_RDWR | os.O_CREAT | os.O_APPEND | os.O_TRUNC
    PATH_EVENTS = {"os.mkdir": 0, "os.truncate": 0, "os.rename": 1, "os.link": 1, "os.symlink": 1}

    def __init__(self) -> None:
        self.active = False
        self.paths: list[str] = []

    def __call__(self, event: str, args: tuple) -> None:
        if not self.active:
            return
        if event == "open":
            path, mode, flags = args
            if (isinstance(mode, str) and set(mode) & set("wax+")) or (flags or 0) & self.WRITE_FLAGS:
                self.paths.append(f"open {path}")
        elif event in self.PATH_EVENTS:
            self.paths.append(f"{event} {args[self.PATH_EVENTS[event]]}")

    @contextlib.contextmanager
    def watching(self) -> Iterator[list[str]]:
        """Record while inside; yields the list the records go to."""
        self.paths = []
        self.active = True
        try:
            yield self.paths
        finally:
            self.active = False


@functools.cache
def write_watch() -> WriteWatch:
    """The process's write watch, installed on first use."""
    watch = WriteWatch()
    sys.addaudithook(watch)
    return watch


def _outermost(roots: Iterable[Path]) -> list[Path]:
    resolved = sorted({root.resolve() for root in roots if root.is_dir()}, key=lambda p: len(p.parts))
    kept: list[Path] = []
    for root in resolved:
        if not any(root.is_relative_to(outer) for outer in kept):
            kept.append(root)
    return kept


def snapshot(roots: Iterable[Path]) -> dict[Path, FileState]:
    """Size, mtime, ctime and inode of every regular file under the roots (symlinks not followed)."""
    states: dict[Path, FileState] = {}
    folders = _outermost(roots)
    while folders:
        try:
            entries = list(os.scandir(folders.pop()))
        except OSError:  # vanished or unreadable: nothing of ours can be there
            continue
        for entry in entries:
            try:
                if entry.is_dir(follow_symlinks=False):
                    folders.append(Path(entry.path))
                elif entry.is_file(follow_symlinks=False):
                    stat = entry.stat(follow_symlinks=False)
                    states[Path(entry.path)] = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns, stat.st_ino)
            except OSError:
                continue
    return states


def changed_files(before: dict[Path, FileState], after: dict[Path, FileState]) -> list[Path]:
    """Files that are new, or whose size, times or inode changed."""
    return sorted(path for path, state in after.items() if before.get(path) != state)


def needles_in(path: Path, needles: dict[str, bytes]) -> list[str]:
    """Which needles a file holds (read in chunks that overlap by the longest needle)."""
    overlap = max(len(needle) for needle in needles.values()) - 1
    found: set[str] = set()
    tail = b""
    try:
        with path.open("rb") as handle:
            while chunk := handle.read(READ_CHUNK):
                window = tail + chunk
                found.update(label for label, needle in needles.items() if needle in window)
                tail = window[-overlap:]
    except (FileNotFoundError, IsADirectoryError):  # gone again before it could be read
        return []
    return sorted(found)


def leaks_in_files(paths: Iterable[Path], needles: dict[str, bytes]) -> dict[str, list[str]]:
    """For each file holding a needle, the needles it holds."""
    return {str(path): found for path in paths if (found := needles_in(path, needles))}


# -- the app ------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def model_name() -> str:
    """The store's default model (the tests never depend on which it is)."""
    try:
        return store.default_model_name()
    except store.ModelStoreError as err:
        pytest.skip(f"no model in the store in effect: {err}")


def open_diagnose() -> AppTest:
    """The app at /diagnose, rendered once (model loaded and warmed up)."""
    at = AppTest.from_file(APP, default_timeout=TIMEOUT_S).run()
    at.switch_page(DIAGNOSE).run()
    assert not at.exception
    return at


def send(at: AppTest, upload: Upload) -> AppTest:
    """Upload one file and let the page run."""
    at.file_uploader(key="uploader").set_value(upload.as_tuple()).run()
    assert not at.exception
    return at


def page_text(at: AppTest) -> str:
    """Every element the app sent (main area and sidebar), as protobuf text."""
    def walk(node) -> Iterator[str]:
        proto = getattr(node, "proto", None)
        if proto is not None:
            yield str(proto)
        for child in getattr(node, "children", {}).values():
            yield from walk(child)

    return "\n".join([*walk(at.main), *walk(at.sidebar)])


def assert_page_shows_the_result(at: AppTest, kind: str) -> None:
    """The upload went all the way through: a probability (and DICOM fields), or the no-image warning."""
    text = page_text(at)
    if kind == "dicom-without-pixels":
        assert any("holds no image" in w.value for w in at.warning)
        return
    assert "P(pneumonia) = **" in text
    if kind == "dicom":
        assert "DICOM header" in text and SAFE_FIELDS["StudyDate"] in text


# -- tests --------------------------------------------------------------------------------------

def test_the_nets_catch_a_planted_leak(capfd: pytest.CaptureFixture, tmp_path: Path) -> None:
    from streamlit.logger import get_logger

    secret = IDENTIFIERS["PatientID"]
    before = snapshot([tmp_path])
    with everything_logged() as logged, write_watch().watching() as writes:
        get_logger("ui.privacy_canary").debug("streamlit logger %s", secret)  # does not propagate
        logging.getLogger("pneumo.privacy_canary").debug("python logger %s", secret)
        warnings.warn(f"warning {secret}", UserWarning, stacklevel=1)
        print(f"stdout {secret}")
        os.write(2, f"file descriptor 2 {secret}\n".encode())
        planted = tmp_path / "planted.bin"
        planted.write_bytes(b"\0" * 10 + secret.encode())
    out, err = capfd.readouterr()
    for channel in ("streamlit logger", "python logger", "warning"):
        assert any(channel in line and secret in line for line in logged), channel
    assert identifiers_in(out) and identifiers_in(err)
    assert writes == [f"open {planted}"]
    changed = changed_files(before, snapshot([tmp_path]))
    assert leaks_in_files(changed, file_needles([])) == {str(planted.resolve()): ["identifier PatientID"]}


@pytest.mark.parametrize("kind", KINDS)
def test_upload_is_neither_shown_nor_logged_nor_written(kind: str, model_name: str,
                                                        capfd: pytest.CaptureFixture) -> None:
    upload = make_upload(kind)
    at = open_diagnose()
    capfd.readouterr()  # what opening the page printed is not about the upload
    with everything_logged() as logged, write_watch().watching() as writes:
        send(at, upload)
    out, err = capfd.readouterr()
    assert_page_shows_the_result(at, kind)
    assert identifiers_in(page_text(at)) == []
    logs = "\n".join([*logged, out, err])
    assert identifiers_in(logs) == []
    assert UPLOAD_STEM not in logs
    assert writes == []


def test_uploads_leave_no_file_behind(model_name: str, tmp_path: Path,
                                      monkeypatch: pytest.MonkeyPatch) -> None:
    system_tmp = Path(tempfile.gettempdir())
    fresh_tmp = tmp_path / "tmp"
    fresh_tmp.mkdir()
    monkeypatch.setenv("TMPDIR", str(fresh_tmp))
    monkeypatch.setattr(tempfile, "tempdir", str(fresh_tmp))
    uploads = [make_upload(kind) for kind in KINDS]
    at = open_diagnose()
    roots = [ROOT, Path.home(), system_tmp, Path(tempfile.gettempdir())]
    before = snapshot(roots)
    with write_watch().watching() as writes:
        for kind, upload in zip(KINDS, uploads):
            assert_page_shows_the_result(send(at, upload), kind)
    changed = changed_files(before, snapshot(roots))
    assert writes == []
    assert list(fresh_tmp.iterdir()) == []
    assert leaks_in_files(changed, file_needles(uploads)) == {}


# -- the command line ---------------------------------------------------------------------------

WRITE_SYSCALLS = ("open", "openat", "openat2", "creat", "truncate", "mkdir", "mkdirat",
                  "rename", "renameat", "renameat2", "link", "linkat", "symlink", "symlinkat")
OPEN_SYSCALLS = ("open", "openat", "openat2")
WRITE_FLAG = re.compile(r"\bO_(WRONLY|RDWR|CREAT|TRUNC|APPEND|TMPFILE)\b")
SYSCALL_LINE = re.compile(r"^(\d+\.\d+) (\w+)\((.*)$")  # strace -ttt: time, call, arguments
QUOTED = re.compile(r'"((?:[^"\\]|\\.)*)"')
PSEUDO_FILES = ("/dev/", "/proc/", "/sys/")


@dataclass(frozen=True)
class FileCall:
    """One successful call of a traced process on a named file."""

    time: float
    path: Path
    writes: bool  # opened for writing, created, truncated, renamed or linked to


def strace_works() -> bool:
    """Whether strace is installed and may trace a child here."""
    if shutil.which("strace") is None:
        return False
    done = subprocess.run(["strace", "-qq", "-e", "trace=none", "true"], capture_output=True, timeout=30)
    return done.returncode == 0


def file_calls(trace_files: Iterable[Path], cwd: Path) -> list[FileCall]:
    """The successful file calls in ``strace -ff -ttt`` output, in time order (pseudo-files left out)."""
    calls: list[FileCall] = []
    for trace in trace_files:
        for line in trace.read_text(errors="replace").splitlines():
            match = SYSCALL_LINE.match(line)
            if not match or match[2] not in WRITE_SYSCALLS or "= -1 " in line:
                continue
            paths = QUOTED.findall(match[3])
            if not paths or paths[-1].startswith(PSEUDO_FILES):
                continue
            writes = match[2] not in OPEN_SYSCALLS or bool(WRITE_FLAG.search(line))
            calls.append(FileCall(float(match[1]), cwd / paths[-1], writes))  # absolute paths replace cwd
    return sorted(calls, key=lambda call: call.time)


def run_predict(dicom: Path, csv_out: Path, cwd: Path, fresh_tmp: Path,
                trace_prefix: Path | None = None) -> subprocess.CompletedProcess:
    """``python -m pneumo predict DICOM --csv CSV`` in a child process, optionally under strace.

    The child runs in ``cwd`` (so a stray relative write lands in a watched folder) with
    ``TMPDIR`` at ``fresh_tmp``, the repository on ``PYTHONPATH``, no bytecode caches, and
    TensorFlow's C++ log at its most talkative (level 0), so nothing it might print is hidden.
    """
    command = [sys.executable, "-m", "pneumo", "predict", str(dicom), "--csv", str(csv_out)]
    if trace_prefix is not None:
        command = ["strace", "-f", "-ff", "-ttt", "-qq", "--seccomp-bpf", "-o", str(trace_prefix),
                   "-e", f"trace={','.join(WRITE_SYSCALLS)}", *command]
    env = {**os.environ, "TMPDIR": str(fresh_tmp), "PYTHONPATH": str(ROOT),
           "PYTHONDONTWRITEBYTECODE": "1", "TF_CPP_MIN_LOG_LEVEL": "0"}
    return subprocess.run(command, cwd=cwd, env=env, capture_output=True, text=True, timeout=300)


@pytest.fixture
def cli_setup(tmp_path: Path) -> dict[str, Path]:
    """The DICOM on disk (the CLI reads paths), an empty working folder and an empty TMPDIR."""
    folders = {name: tmp_path / name for name in ("input", "work", "tmp", "trace")}
    for folder in folders.values():
        folder.mkdir()
    upload = make_upload("dicom")
    folders["dicom"] = folders["input"] / upload.name
    folders["dicom"].write_bytes(upload.data)
    folders["csv"] = folders["work"] / "rows.csv"
    return folders


def assert_cli_answered(done: subprocess.CompletedProcess, csv_out: Path) -> None:
    """Exit 0, one ``ok`` row with a probability, and no identifier in anything it printed or wrote."""
    assert done.returncode == 0, done.stderr[-2000:]
    rows = csv_out.read_text().splitlines()
    assert len(rows) == 2 and ",ok," in rows[1]
    assert identifiers_in(done.stdout) == [] and identifiers_in(done.stderr) == []
    assert identifiers_in(csv_out.read_text()) == []


def test_cli_prints_no_identifier_and_writes_only_the_csv(model_name: str, cli_setup: dict[str, Path]) -> None:
    owned = [cli_setup["input"], cli_setup["work"], cli_setup["tmp"]]
    shared = [ROOT, Path.home(), Path(tempfile.gettempdir())]
    before_owned, before_shared = snapshot(owned), snapshot(shared)
    done = run_predict(cli_setup["dicom"], cli_setup["csv"], cli_setup["work"], cli_setup["tmp"])
    assert_cli_answered(done, cli_setup["csv"])
    assert changed_files(before_owned, snapshot(owned)) == [cli_setup["csv"].resolve()]
    changed = [p for p in changed_files(before_shared, snapshot(shared)) if p != cli_setup["csv"].resolve()]
    assert leaks_in_files(changed, file_needles([make_upload("dicom")])) == {}


def test_cli_writes_nothing_but_the_csv_once_it_has_read_the_film(model_name: str,
                                                                  cli_setup: dict[str, Path]) -> None:
    """strace sees every file the CLI's processes open for writing, create, rename or link.

    Python's ``tempfile`` checks that TMPDIR is writable with a scratch file it deletes at
    once; TensorFlow's import (absl) triggers that before any film is read. So: after the
    film is first opened nothing but the CSV may be written, and nothing but the CSV stays.
    """
    if not strace_works():
        pytest.skip("strace is not installed or may not trace here")
    prefix = cli_setup["trace"] / "trace"
    done = run_predict(cli_setup["dicom"], cli_setup["csv"], cli_setup["work"], cli_setup["tmp"], prefix)
    assert_cli_answered(done, cli_setup["csv"])
    calls = file_calls(sorted(cli_setup["trace"].glob("trace.*")), cli_setup["work"])
    film_opened = [call.time for call in calls if call.path == cli_setup["dicom"]]
    assert film_opened, "strace never saw the film opened: the trace is not working"
    film_read = film_opened[0]
    written = {call.path for call in calls if call.writes}
    assert cli_setup["csv"] in written
    assert {call.path for call in calls if call.writes and call.time >= film_read} <= {cli_setup["csv"]}
    assert [path for path in written - {cli_setup["csv"]} if path.exists()] == []
