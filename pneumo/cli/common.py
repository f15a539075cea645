"""What the commands share: the user's-mistake error, the up-front checks, defaults.

Every command checks what it can before the long work starts (and, where it can, before
TensorFlow is loaded): a mistake is one sentence and exit code 2, never minutes of work
followed by a traceback.
"""

from __future__ import annotations

import argparse
import dataclasses
import inspect
import tempfile
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path

EXIT_USAGE = 2

OWNER_DEFAULT = argparse.SUPPRESS
"""The default of an option that feeds a configuration or a function: left out, the option is
absent from ``args`` and the owner's own default applies, so each default is written once."""

PROGRESS_SECONDS = 5.0
"""Away from a terminal, a progress line is printed at most this often (and always for the last);
see :class:`pneumo.cli.progress.Progress`."""


class UserError(Exception):
    """A mistake the user can fix; printed as one sentence, no traceback."""


# -- defaults -----------------------------------------------------------------------------------

def given(args: argparse.Namespace, names: Iterable[str]) -> dict:
    """The options among ``names`` that the user gave (see :data:`OWNER_DEFAULT`)."""
    return {name: getattr(args, name) for name in names if hasattr(args, name)}


def field_names(config_class) -> list[str]:
    """The field names of a dataclass."""
    return [field.name for field in dataclasses.fields(config_class)]


def declared_defaults(owner: Callable) -> dict:
    """The defaults a dataclass or a function declares, by field or parameter name."""
    if dataclasses.is_dataclass(owner):
        return {f.name: f.default for f in dataclasses.fields(owner) if f.default is not dataclasses.MISSING}
    return {name: p.default for name, p in inspect.signature(owner).parameters.items()
            if p.default is not inspect.Parameter.empty}


# -- checks before the work ---------------------------------------------------------------------

def require_data_folder(path) -> Path:
    """``path`` as a folder, or the user's mistake."""
    if not Path(path).is_dir():
        raise UserError(f"No such data folder: {path}")
    return Path(path)


def require_fraction(option: str, value: float) -> None:
    """Reject a value of ``option`` outside (0, 1)."""
    if not 0 < value < 1:
        raise UserError(f"{option} must be between 0 and 1, got {value}.")


def require_at_least(option: str, value: int | None, least: int) -> None:
    """Reject a given value of ``option`` below ``least`` (None: not given)."""
    if value is not None and value < least:
        raise UserError(f"{option} must be at least {least}, got {value}.")


def require_counts(args, *counts: tuple[str, str, int]) -> None:
    """Reject any given count below its least, before any work: ``("--folds", "k", 2)`` is the
    option, its ``args`` name and the least it may be (an option not given is the owner's default)."""
    for option, name, least in counts:
        require_at_least(option, getattr(args, name, None), least)


def require_classes(records: Sequence, where, classes: Sequence[str] | None = None, why: str = "") -> None:
    """Reject a set of films that lacks one of ``classes`` (default: both) before any is decoded."""
    from pneumo.data import CLASSES

    classes = tuple(classes or CLASSES)
    held = {record.class_name for record in records}
    missing = [name for name in classes if name not in held]
    if missing:
        needs = why or f"this command needs {' and '.join(classes)} films"
        raise UserError(f"{where} holds no {' or '.join(missing)} films; {needs}.")


def require_enough_patients(records: Sequence, where, k: int, schemes: Sequence[str] = (), seed: int = 0,
                            what: str = "folds") -> None:
    """Reject films too few to hold out ``k`` patient-grouped parts that each hold both classes.

    ``schemes`` (of :data:`pneumo.folds.SCHEMES`) are assigned and each part checked too.
    """
    from pneumo import folds

    short = folds.too_few_patients(records, k, schemes, seed)
    if short:
        raise UserError(f"{where} holds too few films for {k} patient-grouped {what}: {short}; "
                        "give more films" + (" or fewer --folds." if what == "folds" else "."))


def require_writable_file(path: str | None, option: str) -> None:
    """Reject an output file that could not be written at the end (``None``: not asked for)."""
    if path is None:
        return
    target = Path(path)
    if target.is_dir():
        raise UserError(f"{option} {path} is a folder; name a file.")
    folder = target.parent
    if not folder.is_dir():
        raise UserError(f"{option} {path}: no such folder {folder}.")
    if not _can_create_in(folder):
        raise UserError(f"{option} {path}: the folder {folder} is not writable.")


def require_writable_folder(path: str | Path, option: str) -> None:
    """Reject an output folder that could not be created or written."""
    target = Path(path)
    if target.exists() and not target.is_dir():
        raise UserError(f"{option} {path} is a file; name a folder.")
    existing = next(p for p in (target, *target.parents) if p.exists())
    if not existing.is_dir() or not _can_create_in(existing):
        raise UserError(f"{option} {path}: {existing} is not a writable folder.")


def _can_create_in(folder: Path) -> bool:
    """Whether a file can be made in ``folder``: tried (and removed), since ``os.access`` says yes
    to root everywhere, /proc and read-only mounts included."""
    try:
        with tempfile.TemporaryFile(dir=folder):
            return True
    except OSError:
        return False


def stored_model(name: str | None):
    """The stored model's folder and card, checked without loading Keras (``model`` is None).

    Enough to check what needs only the card and the folder (the model's own films, its
    sites) before the model itself is loaded.

    Raises:
        ModelStoreError: an unknown model or an unreadable card.
    """
    from pneumo import store

    card = store.read_card(name)
    folder = store.store_dir() / (name or store.default_model_name())
    return store.LoadedModel(name=folder.name, path=folder, model=None, card=card)


def require_model(name: str | None, site: str | None = None):
    """Check that the model, and the site when named, exist; returns :func:`stored_model`."""
    on_file = stored_model(name)
    if site:
        from pneumo.inference import sites

        sites.load_site(on_file, site)
    return on_file


def model_split(card: dict, root) -> tuple[list, list]:
    """The model's own (training, held-out) records, checked against its card."""
    from pneumo import folds

    try:
        return folds.training_records(card, root)
    except ValueError as err:
        raise UserError(str(err)) from err


# -- the work -----------------------------------------------------------------------------------

def classifier_for(name: str | None, site: str | None = None, runtime: str = "keras"):
    """The stored model ``name`` (default: DEFAULT) ready to score, with ``site``'s calibration.

    ``runtime`` is ``"keras"`` or ``"onnx"`` (see :class:`~pneumo.inference.predict.Classifier`).
    """
    from pneumo import store
    from pneumo.inference.predict import Classifier

    return Classifier(store.load(name, keras_model=runtime == "keras"), site=site, runtime=runtime)


def thin(records, count: int):
    """Every n-th record, ``count`` at most: a spread-out subset for smoke runs."""
    step = max(1, len(records) // count)
    return list(records[::step][:count])
