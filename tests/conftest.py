"""Shared fixtures: the real films beside the repository and a tiny model store."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from pneumo import data

DATA_ROOT = data.default_data_dir()
TRAIN_DIR = DATA_ROOT / "train"


def require_data() -> Path:
    """The training split, or skip when ../shared/data is not beside the repository."""
    if not TRAIN_DIR.is_dir():
        pytest.skip(f"the real films are not at {TRAIN_DIR}")
    return TRAIN_DIR


@pytest.fixture(scope="session")
def train_dir() -> Path:
    """``../shared/data/chest_xray/train``: the real training films."""
    return require_data()


@pytest.fixture(scope="session")
def normal_film(train_dir) -> Path:
    return sorted((train_dir / "NORMAL").iterdir())[0]


@pytest.fixture(scope="session")
def pneumonia_film(train_dir) -> Path:
    return sorted((train_dir / "PNEUMONIA").iterdir())[0]


TINY_SIZE = 64


def make_tiny_card(threshold: float = 0.5) -> dict:
    """The fields of a card that loading and predicting rely on."""
    from pneumo import models

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

    from pneumo import models, store

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
