"""The Makefile's promises: the app answers on this machine only unless the operator says otherwise."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def dry_run(*arguments: str) -> str:
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    return subprocess.run(["make", "-n", "-C", str(ROOT), *arguments], capture_output=True, text=True,
                          check=True).stdout


def test_make_run_binds_loopback_by_default():
    command = [line for line in dry_run("run").splitlines() if "streamlit run app.py" in line][-1]
    assert "--server.address 127.0.0.1" in command


def test_make_run_takes_another_address_when_asked():
    command = [line for line in dry_run("run", "ADDRESS=0.0.0.0").splitlines() if "streamlit run" in line][-1]
    assert "--server.address 0.0.0.0" in command and "127.0.0.1" not in command
