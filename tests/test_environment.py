"""pneumo.environment: TensorFlow's start-up lines stay off the terminal unless ``--verbose``."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from pneumo import environment

ROOT = Path(__file__).resolve().parents[1]

BANNER = "WARNING: All log messages before absl::InitializeLog() is called are written to STDERR"
INFO = "I0000 00:00:1796596453.923883    5843 port.cc:153] oneDNN custom operations are on."
WARNING = "2025-09-17 14:44:05.157831: W external/local_xla/xla/tsl/cuda/cudart_stub.cc:32] no GPU"
ERROR = "E0000 00:00:1796596453.923883    5843 cuda_dnn.cc:8579] a real error"


@pytest.mark.parametrize("level, kept", [
    (0, [BANNER, INFO, WARNING, ERROR, "plain words"]),
    (1, [WARNING, ERROR, "plain words"]),
    (2, [ERROR, "plain words"]),
    (3, ["plain words"]),
])
def test_log_lines_below_the_level_are_dropped_and_everything_else_kept(level, kept):
    text = "\n".join([BANNER, INFO, WARNING, ERROR, "plain words"]) + "\n"
    assert environment.drop_log_lines(text.encode(), level).decode().splitlines() == kept


@pytest.fixture
def noisy_module(tmp_path, monkeypatch):
    """A module that writes C++-style log lines and a plain line straight to file descriptor 2 as it loads."""
    lines = "".join(f"os.write(2, {(line + chr(10)).encode()!r})\n" for line in (BANNER, INFO, ERROR))
    (tmp_path / "noisy_library.py").write_text("import os\n" + lines + "os.write(2, b'plain words\\n')\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    monkeypatch.setenv("TF_CPP_MIN_LOG_LEVEL", "2")
    yield "noisy_library"
    sys.modules.pop("noisy_library", None)


def test_the_first_import_is_filtered_and_then_nothing_is(noisy_module, capfd):
    environment.quiet_import(noisy_module)
    module = __import__(noisy_module)
    err = capfd.readouterr().err
    assert err.splitlines() == [ERROR, "plain words"]  # the error comes through, the info lines do not
    assert type(module.__loader__).__name__ == "SourceFileLoader"  # no trace of the filter is left
    assert not [f for f in sys.meta_path if getattr(f, "name", None) == noisy_module]
    os.write(2, (INFO + "\n").encode())  # later lines reach stderr untouched
    assert capfd.readouterr().err == INFO + "\n"


def test_verbose_hides_nothing(monkeypatch):
    monkeypatch.delenv("TF_CPP_MIN_LOG_LEVEL", raising=False)
    finders = list(sys.meta_path)
    environment.quiet_tensorflow(verbose=True)
    assert "TF_CPP_MIN_LOG_LEVEL" not in os.environ and sys.meta_path == finders


@pytest.mark.slow
@pytest.mark.parametrize("verbose", [False, True])
def test_predict_shows_tensorflows_start_up_lines_only_with_verbose(tiny_store, normal_film, verbose):
    env = {k: v for k, v in os.environ.items() if k not in ("TF_CPP_MIN_LOG_LEVEL", "TF_ENABLE_ONEDNN_OPTS")}
    env["PNEUMO_MODEL_STORE"] = str(tiny_store)
    done = subprocess.run([sys.executable, "-m", "pneumo", "predict", str(normal_film),
                           *(["--verbose"] if verbose else [])],
                          capture_output=True, text=True, timeout=300, env=env, cwd=ROOT)
    assert done.returncode == 0, done.stderr
    assert ",ok," in done.stdout
    # Which start-up lines TensorFlow prints depends on the CPU (oneDNN's only where it enables it)
    shown = [word for word in ("oneDNN", "absl", "cpu_feature_guard") if word in done.stderr]
    assert bool(shown) == verbose, done.stderr
