"""Settings of the process that must be made before TensorFlow is first imported.

The entry points (``python -m pneumo``, ``app.py``, ``scripts/load_check.py``) call
:func:`quiet_tensorflow` first; nothing here runs at import, and nothing here imports
TensorFlow: it is still loaded where the code first needs it.
"""

from __future__ import annotations

import contextlib
import os
import re
import sys
import tempfile
from importlib.abc import MetaPathFinder

TF_LOG_LEVEL = "2"
"""TensorFlow's C++ logging: 2 keeps errors and drops its info and warning lines."""

SEVERITIES = "IWEF"
"""The C++ log's severities, in the order of ``TF_CPP_MIN_LOG_LEVEL`` (0 info ... 3 fatal)."""

_LOG_LINE = re.compile(
    rb"(?:(?P<absl>[IWEF])\d{4} [\d:.]+\s+\d+ "             # absl: I0000 00:00:1796596453.92 5843
    rb"|\d{4}-\d\d-\d\d [\d:.]+: (?P<tsl>[IWEF]) )"          # TSL: 2025-09-17 14:44:05.15: I
    rb"\S+:\d+\] ")                                          # port.cc:153]
_ABSL_BANNER = b"WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"


def quiet_tensorflow(verbose: bool = False) -> None:
    """Keep TensorFlow's start-up chatter off the terminal, unless ``verbose`` or the user set a level.

    ``TF_CPP_MIN_LOG_LEVEL`` (2 unless the user set it) filters TensorFlow's own C++ log, but
    not all of it: in TensorFlow 2.21 the ``port.cc:153] oneDNN custom operations are on`` line
    and absl's ``WARNING: All log messages before absl::InitializeLog() ...`` banner (each twice)
    are written from C++ while ``import tensorflow`` loads its libraries, through absl's log
    before anything has initialised it, so it writes them to stderr whatever the variable says
    (even 3). Hence the first ``import tensorflow``, wherever it happens, runs with file
    descriptor 2 pointed at a file in memory; when the import ends, fd 2 is restored and what
    was written is passed on, less the log lines below the level. Nothing later is filtered:
    TensorFlow's errors reach stderr as they happen.

    Args:
        verbose: hide nothing (neither the variable is set nor the import filtered).
    """
    if verbose:
        return
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", TF_LOG_LEVEL)
    quiet_import("tensorflow")


def quiet_import(name: str) -> None:
    """Run the first import of module ``name`` inside :func:`filtered_stderr` (nothing if imported already)."""
    if name not in sys.modules and not any(isinstance(f, _FilteredImport) and f.name == name
                                           for f in sys.meta_path):
        sys.meta_path.insert(0, _FilteredImport(name))


def min_log_level() -> int:
    """The level in ``TF_CPP_MIN_LOG_LEVEL``, 0 when unset or not a number."""
    try:
        return int(os.environ.get("TF_CPP_MIN_LOG_LEVEL", "0"))
    except ValueError:
        return 0


def drop_log_lines(text: bytes, level: int) -> bytes:
    """``text`` less the C++ log lines of a severity below ``level`` (and absl's banner, from level 1)."""
    kept = []
    for line in text.splitlines(keepends=True):
        found = _LOG_LINE.match(line)
        if found:
            severity = SEVERITIES.index((found["absl"] or found["tsl"]).decode())
        elif line.rstrip(b"\r\n") == _ABSL_BANNER:
            severity = 0  # it heralds absl's first line, an info line here
        else:
            severity = len(SEVERITIES)
        if severity >= level:
            kept.append(line)
    return b"".join(kept)


@contextlib.contextmanager
def filtered_stderr():
    """File descriptor 2 into a file in memory for the block; then what it got, filtered, goes to fd 2."""
    _flush(sys.stderr)
    try:
        saved = os.dup(2)
    except OSError:  # no stderr to redirect
        yield
        return
    with _capture_file() as capture:
        os.dup2(capture.fileno(), 2)
        try:
            yield
        finally:
            _flush(sys.stderr)
            os.dup2(saved, 2)
            os.close(saved)
            capture.seek(0)
            passed_on = drop_log_lines(capture.read(), min_log_level())
            if passed_on:
                os.write(2, passed_on)


def _capture_file():
    """A file in memory (Linux memfd) for the captured lines, else an unnamed temporary file.

    Nothing of a run is written to disk that the operator did not ask for; a memfd does not
    even touch the temporary folder.
    """
    if hasattr(os, "memfd_create"):
        return os.fdopen(os.memfd_create("pneumo-stderr"), "w+b")
    return tempfile.TemporaryFile()


def _flush(stream) -> None:
    if stream is not None:
        stream.flush()


class _FilteredImport(MetaPathFinder):
    """Finds ``name`` as the other finders do, and runs its import inside :func:`filtered_stderr` once."""

    def __init__(self, name: str):
        self.name = name

    def find_spec(self, fullname, path, target=None):
        if fullname != self.name:
            return None
        spec = next((s for s in (f.find_spec(fullname, path, target) for f in sys.meta_path
                                 if f is not self and hasattr(f, "find_spec")) if s), None)
        if spec is not None and spec.loader is not None:
            spec.loader = _FilteredLoader(spec.loader, self)
        return spec


class _FilteredLoader:
    """``loader``, whose ``exec_module`` runs inside :func:`filtered_stderr`; leaves no trace after."""

    def __init__(self, loader, finder: _FilteredImport):
        self.loader, self.finder = loader, finder

    def __getattr__(self, name):
        return getattr(self.loader, name)

    def create_module(self, spec):
        return self.loader.create_module(spec)

    def exec_module(self, module):
        try:
            with filtered_stderr():
                self.loader.exec_module(module)
        finally:
            with contextlib.suppress(ValueError):
                sys.meta_path.remove(self.finder)
            module.__loader__ = module.__spec__.loader = self.loader
