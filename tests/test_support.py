"""tests/support: without the real films a test skips, but in CI (``CI=true``) the run fails."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support import data as support_data

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def no_films(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The data folder pointed at a folder that does not exist; returns its train split."""
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(tmp_path / "missing"))
    return tmp_path / "missing" / "train"


@pytest.fixture
def one_normal_film(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A data folder holding a single NORMAL training film; returns the film."""
    film = tmp_path / "data" / "train" / "NORMAL" / "IM-0001-0001.jpeg"
    film.parent.mkdir(parents=True)
    film.write_bytes(b"not read")
    monkeypatch.setenv("PNEUMO_DATA_DIR", str(tmp_path / "data"))
    return film


@pytest.mark.parametrize("value", ["true", "TRUE", "1", "yes"])
def test_ci_is_recognised(monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("CI", value)
    assert support_data.in_ci()


@pytest.mark.parametrize("value", [None, "", "false", "0"])
def test_no_ci_is_recognised(monkeypatch: pytest.MonkeyPatch, value: str | None) -> None:
    if value is None:
        monkeypatch.delenv("CI", raising=False)
    else:
        monkeypatch.setenv("CI", value)
    assert not support_data.in_ci()


def test_the_data_folder_follows_pneumo_data_dir(no_films: Path) -> None:
    assert support_data.train_folder() == no_films


def test_missing_films_skip_outside_ci(no_films: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    with pytest.raises(pytest.skip.Exception, match=f"the real films are not at {no_films}"):
        support_data.require_train_folder()


def test_missing_films_fail_in_ci(no_films: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CI", "true")
    with pytest.raises(pytest.fail.Exception, match=f"CI=true.*the real films are not at {no_films}"):
        support_data.require_train_folder()


def test_too_few_films_skip_outside_ci_and_fail_in_ci(one_normal_film: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CI", raising=False)
    assert support_data.real_films("NORMAL") == [one_normal_film]
    with pytest.raises(pytest.skip.Exception, match="needs 2 films .* found 1"):
        support_data.real_films("NORMAL", 2)
    monkeypatch.setenv("CI", "true")
    assert support_data.real_films("NORMAL") == [one_normal_film]
    with pytest.raises(pytest.fail.Exception, match="CI=true.*needs 2 films .* found 1"):
        support_data.real_films("NORMAL", 2)


def collect_this_file(**env: str | None) -> subprocess.CompletedProcess:
    """``pytest --collect-only`` on this file in a fresh process, with environment variables changed."""
    changed = {**os.environ, **{key: value for key, value in env.items() if value is not None}}
    for key in (key for key, value in env.items() if value is None):
        changed.pop(key, None)
    return subprocess.run([sys.executable, "-m", "pytest", "--collect-only", "-q", "-p", "no:cacheprovider",
                           str(Path(__file__).relative_to(ROOT))],
                          cwd=ROOT, env=changed, capture_output=True, text=True, timeout=120, check=False)


def test_a_ci_run_without_the_films_stops_at_its_start(tmp_path: Path) -> None:
    run = collect_this_file(CI="true", PNEUMO_DATA_DIR=str(tmp_path / "missing"))
    output = run.stdout + run.stderr
    assert run.returncode == pytest.ExitCode.USAGE_ERROR, output
    assert f"CI=true and the real films are not at {tmp_path / 'missing' / 'train'}" in output
    assert "test_support.py::" not in output  # stopped before collecting anything


def test_a_run_outside_ci_without_the_films_goes_on(tmp_path: Path) -> None:
    run = collect_this_file(CI=None, PNEUMO_DATA_DIR=str(tmp_path / "missing"))
    assert run.returncode == pytest.ExitCode.OK, run.stdout + run.stderr
    assert "test_support.py::test_a_ci_run_without_the_films_stops_at_its_start" in run.stdout


def test_a_ci_run_with_the_films_goes_on(one_normal_film: Path) -> None:
    run = collect_this_file(CI="true", PNEUMO_DATA_DIR=str(one_normal_film.parents[2]))
    assert run.returncode == pytest.ExitCode.OK, run.stdout + run.stderr
