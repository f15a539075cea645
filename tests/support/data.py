"""The real films beside the repository: where they are, and what a test does without them.

The folder is :func:`pneumo.data.default_data_dir` (``$PNEUMO_DATA_DIR``, else
``../shared/data/chest_xray`` beside the repository), so the tests read the films the app and
the CLI read. Without them a test skips, except in CI (``CI=true``): there it fails, so a CI
run cannot pass by skipping most of the suite. tests/conftest.py also stops a CI run at its
start when the folder is missing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from pneumo.data import CLASSES, default_data_dir

CI_VALUES = ("true", "1", "yes")
"""Values of ``$CI`` (any case) that mean a CI run."""


def train_folder() -> Path:
    """The training split of the real films: ``<data dir>/train``."""
    return default_data_dir() / "train"


def in_ci() -> bool:
    """True when ``$CI`` says this is a CI run."""
    return os.environ.get("CI", "").strip().lower() in CI_VALUES


def missing_data_message() -> str:
    """One sentence saying where the films were looked for and how to point the tests at them."""
    return (f"the real films are not at {train_folder()} "
            f"(put ../shared/data beside the repository or set PNEUMO_DATA_DIR)")


def skip_or_fail(reason: str) -> None:
    """Skip the test, or fail it in CI, where a skip would hide that the data is missing."""
    __tracebackhide__ = True  # report the test that asked, not this helper
    if in_ci():
        pytest.fail(f"CI=true, so this does not skip: {reason}", pytrace=False)
    pytest.skip(reason)


def require_train_folder() -> Path:
    """The training split; skip (fail in CI) when it is not there."""
    __tracebackhide__ = True  # report the test that asked, not this helper
    folder = train_folder()
    if not folder.is_dir():
        skip_or_fail(missing_data_message())
    return folder


def real_films(class_name: str, count: int = 1) -> list[Path]:
    """The first ``count`` films of a class in the training split, by name; skip (fail in CI) if fewer."""
    __tracebackhide__ = True  # report the test that asked, not this helper
    folder = require_train_folder() / class_name
    films = sorted(folder.glob("*.jpeg"))[:count]
    if len(films) < count:
        skip_or_fail(f"needs {count} films in {folder}, found {len(films)}")
    return films


def film_sequence(count: int, train_dir: Path | None = None) -> list[Path]:
    """``count`` different real films, NORMAL and PNEUMONIA in turn (sorted names).

    Raises:
        FileNotFoundError: the data set holds fewer films.
    """
    root = train_dir or train_folder()
    normal, pneumonia = (sorted((root / name).glob("*.jpeg")) for name in CLASSES)
    films = [film for pair in zip(normal, pneumonia) for film in pair][:count]
    if len(films) < count:
        raise FileNotFoundError(f"needs {count} films under {root}, found {len(films)}")
    return films
