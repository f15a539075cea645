"""Shared fixtures: the real films beside the repository and a tiny model store.

Where the films are, and skipping or failing without them, is :mod:`tests.support.data`.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pneumo import data
from tests.support.data import (
    in_ci,
    missing_data_message,
    require_train_folder,
    train_folder,
)


def pytest_sessionstart(session: pytest.Session) -> None:
    """In CI (``CI=true``), stop the run at once when the real films are missing, rather than skip."""
    if in_ci() and not train_folder().is_dir():
        pytest.exit(f"CI=true and {missing_data_message()}; the tests that need them would only skip.",
                    returncode=pytest.ExitCode.USAGE_ERROR)


@pytest.fixture(scope="session")
def train_dir() -> Path:
    """``<data dir>/train``: the real training films (skip without them, fail in CI)."""
    return require_train_folder()


@pytest.fixture(scope="session")
def normal_film(train_dir) -> Path:
    return min((train_dir / "NORMAL").iterdir())


@pytest.fixture(scope="session")
def pneumonia_film(train_dir) -> Path:
    return min((train_dir / "PNEUMONIA").iterdir())


TINY_SIZE = 64


def make_tiny_card(threshold: float = 0.5) -> dict:
    """The fields of a card that loading and predicting rely on."""
    from pneumo.modeling import models

    return {"architecture": "cnn", "input": {"size": TINY_SIZE, "channels": 1},
            "classes": list(data.CLASSES), "threshold": threshold, "temperature": 1.0,
            "explain_layer": models.explain_layer("cnn"), "validation": {}}


@pytest.fixture
def tiny_card() -> dict:
    """A fresh minimal card for a 64-px CNN."""
    return make_tiny_card()


@pytest.fixture(scope="session")
def tiny_store(tmp_path_factory) -> Path:
    """A model store holding one untrained, seeded 64-px CNN named ``tiny`` (the default)."""
    import keras

    from pneumo import store
    from pneumo.modeling import models

    keras.utils.set_random_seed(1)
    root = tmp_path_factory.mktemp("store")
    store.save(models.build("cnn", TINY_SIZE, width=8), make_tiny_card(), root / "tiny")
    (root / store.DEFAULT_FILE).write_text("tiny\n")
    return root


@pytest.fixture(scope="session")
def tiny_model(tiny_store):
    from pneumo import store

    return store.load("tiny", tiny_store)


@pytest.fixture
def tampered_copy(tmp_path):
    """``tamper(store, name, file)``: a copy of a model store with one byte appended to a model's file."""

    def tamper(source: Path, name: str, file: str) -> Path:
        copy = tmp_path / "tampered_store"
        shutil.copytree(source, copy)
        path = copy / name / file
        path.write_bytes(path.read_bytes() + b"\0")
        return copy

    return tamper
