"""The model store: one folder per model with ``model.keras``, ``card.json`` and ``profile.json``.

A model whose card has a ``subtype`` section also holds ``subtype.keras``, the
bacterial-or-viral model (P(bacterial | pneumonia)), loaded by :func:`load_subtype`.

``model_store/DEFAULT`` names the model used when none is asked for. Loading
verifies the file's sha256 against the card and loads Keras in safe mode, so a
model file can never run code of its own.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import tempfile
from dataclasses import dataclass
from pathlib import Path

MODEL_FILE = "model.keras"
CARD_FILE = "card.json"
PROFILE_FILE = "profile.json"
DEFAULT_FILE = "DEFAULT"
SUBTYPE_FILE = "subtype.keras"
BACTERIAL, VIRAL = "bacterial", "viral"
"""The patterns the subtype model tells apart: P(bacterial) at or above its threshold reads bacterial."""

REPO_STORE = Path(__file__).resolve().parent.parent / "model_store"


class ModelStoreError(RuntimeError):
    """A model that cannot be used; the message says what to do, in one sentence."""


@dataclass(frozen=True)
class LoadedModel:
    """A verified model with its card. Shared between sessions: never mutate ``model``."""

    name: str
    path: Path
    model: object  # keras.Model; None when loaded for ONNX Runtime scoring only (store.load(keras_model=False))
    card: dict

    @property
    def input_size(self) -> int:
        return int(self.card["input"]["size"])

    @property
    def threshold(self) -> float:
        return float(self.card["threshold"])

    @property
    def classes(self) -> list[str]:
        return list(self.card["classes"])

    @property
    def explain_layer(self) -> str:
        return str(self.card["explain_layer"])

    @property
    def version(self) -> str:
        return self.card["sha256"][:12]


@dataclass(frozen=True)
class SubtypeModel:
    """A verified bacterial-or-viral model and its card section. Shared: never mutate ``model``.

    Its output is P(bacterial | pneumonia), calibrated (its temperature is inside the file);
    its input is the main model's (``input_size`` x ``input_size`` x 1, in 0-255).
    """

    path: Path
    model: object  # keras.Model
    section: dict  # the card's "subtype" section
    input_size: int

    @property
    def threshold(self) -> float:
        return float(self.section["threshold"])

    @property
    def temperature(self) -> float:
        return float(self.section["temperature"])

    @property
    def classes(self) -> list[str]:
        return list(self.section.get("classes", [VIRAL, BACTERIAL]))

    @property
    def explain_layer(self) -> str:
        return str(self.section.get("explain_layer", "last_conv"))

    @property
    def version(self) -> str:
        return self.section["sha256"][:12]

    def pattern_for(self, p_bacterial: float) -> str:
        """``"bacterial"`` when ``p_bacterial`` is at or above the threshold, else ``"viral"``."""
        return BACTERIAL if p_bacterial >= self.threshold else VIRAL


def store_dir(store: str | Path | None = None) -> Path:
    """The store folder: the argument, else ``$PNEUMO_MODEL_STORE``, else the repository's."""
    return Path(store or os.environ.get("PNEUMO_MODEL_STORE") or REPO_STORE)


def list_models(store: str | Path | None = None) -> list[str]:
    """Names of the models in the store (folders holding a card and a model file)."""
    root = store_dir(store)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / CARD_FILE).is_file() and (p / MODEL_FILE).is_file())


def default_model_name(store: str | Path | None = None) -> str:
    """The name written in ``DEFAULT``, or the only model when there is one.

    Raises:
        ModelStoreError: the store holds no model, or several and no ``DEFAULT``.
    """
    root = store_dir(store)
    names = list_models(root)
    default_file = root / DEFAULT_FILE
    if default_file.is_file():
        name = default_file.read_text().strip()
        if name:
            return name
    if len(names) == 1:
        return names[0]
    if not names:
        raise ModelStoreError(
            f"The model store {root} holds no model: train one with "
            "'python -m pneumo train --data DIR --out model_store/NAME'."
        )
    raise ModelStoreError(f"The model store {root} holds several models and no DEFAULT file; "
                          f"name one of {names}.")


def file_sha256(path: str | Path) -> str:
    """sha256 of a file, as hex; read in blocks, so a large model need not fit in memory."""
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def read_card(name: str | None = None, store: str | Path | None = None) -> dict:
    """A model's card, without loading the model.

    Raises:
        ModelStoreError: unknown model name, or a card that is not valid JSON.
    """
    folder = _model_folder(name, store)
    try:
        return json.loads((folder / CARD_FILE).read_text())
    except (OSError, json.JSONDecodeError) as err:
        raise ModelStoreError(f"The card of model {folder.name!r} cannot be read ({err}); "
                              "restore it from the repository or retrain the model.") from err


def read_profile(name: str | None = None, store: str | Path | None = None) -> dict | None:
    """The training-data profile stored beside a model, or None when there is none."""
    path = _model_folder(name, store) / PROFILE_FILE
    if not path.is_file():
        return None
    try:
        return json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None


def verify(name: str | None = None, store: str | Path | None = None) -> str:
    """Check the model file's sha256 against its card; returns the digest.

    Raises:
        ModelStoreError: the file is missing or does not match its card.
    """
    folder = _model_folder(name, store)
    card = read_card(folder.name, folder.parent)
    actual = file_sha256(folder / MODEL_FILE)
    if actual != card.get("sha256"):
        raise ModelStoreError(
            f"Model {folder.name!r} failed its integrity check: {MODEL_FILE} has sha256 "
            f"{actual[:12]}..., its card expects {str(card.get('sha256'))[:12]}...; restore the "
            "file from the repository (git checkout model_store) or retrain it."
        )
    return actual


def load(name: str | None = None, store: str | Path | None = None, keras_model: bool = True) -> LoadedModel:
    """Verify and load a model from the store (the default one when ``name`` is None).

    ``keras_model=False`` verifies the file but leaves ``model`` None: enough for scoring under
    ONNX Runtime (``Classifier(..., runtime="onnx")``), which never runs the Keras network, and
    a batch worker starts without loading it. Grad-CAM and the Keras runtime need the network.

    Raises:
        ModelStoreError: unknown name, failed checksum, or a file Keras cannot load.
    """
    folder = _model_folder(name, store)
    verify(folder.name, folder.parent)
    card = read_card(folder.name, folder.parent)
    if not keras_model:
        return LoadedModel(name=folder.name, path=folder, model=None, card=card)
    import keras

    try:
        model = keras.saving.load_model(folder / MODEL_FILE, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many kinds for a damaged archive
        raise ModelStoreError(f"Model {folder.name!r} cannot be loaded ({type(err).__name__}: "
                              f"{err}); restore it from the repository or retrain it.") from err
    return LoadedModel(name=folder.name, path=folder, model=model, card=card)


def load_subtype(loaded: LoadedModel) -> SubtypeModel | None:
    """Verify and load the subtype model beside ``loaded``; None when its card has no ``subtype`` section.

    Raises:
        ModelStoreError: the card names a subtype file that is missing, fails its sha256, cannot
            be loaded, or takes another input than the main model.
    """
    import keras

    section = loaded.card.get("subtype")
    if not section:
        return None
    path = loaded.path / section.get("file", SUBTYPE_FILE)
    restore = "restore it (git checkout model_store) or run train-subtype again"
    if not path.is_file():
        raise ModelStoreError(f"Model {loaded.name!r}'s card names a subtype model {path.name} that is "
                              f"not in its folder; {restore}.")
    actual = file_sha256(path)
    if actual != section.get("sha256"):
        raise ModelStoreError(
            f"Model {loaded.name!r}'s subtype model failed its integrity check: {path.name} has sha256 "
            f"{actual[:12]}..., its card expects {str(section.get('sha256'))[:12]}...; {restore}.")
    try:
        model = keras.saving.load_model(path, compile=False, safe_mode=True)
    except Exception as err:  # Keras raises many kinds for a damaged archive
        raise ModelStoreError(f"Model {loaded.name!r}'s subtype model cannot be loaded "
                              f"({type(err).__name__}: {err}); {restore}.") from err
    size = loaded.input_size
    if tuple(model.input_shape[1:]) != (size, size, 1):
        raise ModelStoreError(f"Model {loaded.name!r}'s subtype model takes inputs of shape "
                              f"{tuple(model.input_shape[1:])}, not the main model's {(size, size, 1)}; {restore}.")
    return SubtypeModel(path=path, model=model, section=section, input_size=size)


def save(model, card: dict, out_dir: str | Path, profile: dict | None = None) -> Path:
    """Write ``model.keras``, ``card.json`` (with the model's sha256) and ``profile.json``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save(out_dir / MODEL_FILE)
    card = {**card, "name": out_dir.name, "sha256": file_sha256(out_dir / MODEL_FILE)}
    write_card(out_dir.name, card, out_dir.parent)
    if profile is not None:
        (out_dir / PROFILE_FILE).write_text(json.dumps(profile, indent=1) + "\n")
    return out_dir


def write_card(name: str, card: dict, store: str | Path | None = None) -> Path:
    """Write a model's ``card.json`` atomically (the model file and its checksum are not touched)."""
    path = store_dir(store) / name / CARD_FILE
    write_atomically(path, (json.dumps(card, indent=2) + "\n").encode())
    return path


def write_atomically(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to a temporary file beside ``path``, then rename it into place.

    A reader (or a crash) sees the old file or the new one, never half of one. The file keeps
    the mode of the one it replaces (a new one is readable by all, as ``open`` would make it).
    """
    path = Path(path)
    mode = stat.S_IMODE(path.stat().st_mode) if path.exists() else 0o644
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "wb") as out:
            out.write(data)
        os.chmod(temporary, mode)  # mkstemp makes it private to the owner
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    return path


def _model_folder(name: str | None, store: str | Path | None) -> Path:
    root = store_dir(store)
    name = name or default_model_name(root)
    folder = root / name
    if not (folder / CARD_FILE).is_file() or not (folder / MODEL_FILE).is_file():
        names = list_models(root)
        raise ModelStoreError(f"Unknown model {name!r}; choose from {names}." if names else
                              f"Unknown model {name!r}: the store {root} holds no model.")
    return folder
