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


PROJECT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="session", autouse=True)
def in_project_folder():
    """Run every test from the project folder, wherever pytest was started: Streamlit reads
    ``.streamlit/config.toml`` (``server.address``, which the sign-in gate checks) from there."""
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(PROJECT)
        yield


@pytest.fixture(scope="session")
def shipped_classifier():
    """A :class:`~pneumo.inference.predict.Classifier` of the repository's shipped model, loaded once."""
    from pneumo import store
    from pneumo.inference.predict import Classifier

    return Classifier(store.load(store.default_model_name(store.REPO_STORE), store.REPO_STORE))


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


SUBTYPE_THRESHOLD = 0.5


def make_subtype_section(sha256: str, threshold: float = SUBTYPE_THRESHOLD, n: int = 40) -> dict:
    """A card's ``subtype`` section as ``train-subtype`` writes it, its validation from made-up logits.

    The figures are computed by the same functions as the real section's, on ``n`` synthetic
    out-of-fold logits (seeded), so pages and charts have every field to draw.
    """
    import numpy as np

    from pneumo.stats import calibration, metrics, operating

    rng = np.random.default_rng(16)
    labels = (np.arange(n) % 3 != 0).astype(np.float32)  # two bacterial to one viral, as in the data
    logits = rng.normal(0.0, 1.0, n) + 1.5 * (2 * labels - 1)
    temperature = 1.2
    probs = calibration.sigmoid(logits / temperature)
    patients = [f"person{i // 2}" for i in range(n)]
    folds = [i % 5 for i in range(n)]
    return {
        "output": "P(bacterial | pneumonia)", "file": "subtype.keras", "sha256": sha256,
        "classes": ["viral", "bacterial"], "temperature": temperature, "threshold": threshold,
        "threshold_rule": "fixed for the tests",
        "validation": {
            "kind": "out-of-fold (synthetic, for the tests)", "n": n, "positives": int(labels.sum()),
            "negatives": int(n - labels.sum()),
            "figures": operating.figures_with_intervals(labels, probs, threshold, patients, resamples=50),
            "ece_uncalibrated": metrics.expected_calibration_error(labels, calibration.sigmoid(logits)),
            "reliability": metrics.reliability_curve(labels, probs), "curves": metrics.curves(labels, probs),
            "per_fold": [{"fold": k, "n_held_out": folds.count(k)} for k in range(5)],
            "label": labels.astype(int).tolist(), "fold": folds, "logit": logits.tolist(),
        },
        "shipped_fold": 0, "trained_on": "nothing (an untrained model for the tests)", "recipe": {},
    }


@pytest.fixture(scope="session")
def tiny_subtype_store(tiny_store, tmp_path_factory) -> Path:
    """A copy of :func:`tiny_store` whose ``tiny`` model also holds an untrained 64-px subtype model.

    ``subtype.keras`` is ``models.build("cnn", 64, width=8)`` (seeded), and the card gains a
    ``subtype`` section (:func:`make_subtype_section`, threshold 0.5) with its sha256.
    """
    import json

    import keras

    from pneumo import store
    from pneumo.modeling import models

    root = tmp_path_factory.mktemp("subtype_store")
    shutil.copytree(tiny_store, root, dirs_exist_ok=True)
    folder = root / "tiny"
    keras.utils.set_random_seed(2)
    models.build("cnn", TINY_SIZE, width=8).save(folder / store.SUBTYPE_FILE)
    card = json.loads((folder / store.CARD_FILE).read_text())
    card["subtype"] = make_subtype_section(store.file_sha256(folder / store.SUBTYPE_FILE))
    store.write_card("tiny", card, root)
    return root


@pytest.fixture(scope="session")
def tiny_subtype_model(tiny_subtype_store):
    """The ``tiny`` model of :func:`tiny_subtype_store` (main model; its subtype via ``store.load_subtype``)."""
    from pneumo import store

    return store.load("tiny", tiny_subtype_store)


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
