"""The guard beside its model: ``guard.npz`` (fitted arrays, no pickle) and the card's ``guard``
section (thresholds, figures and the file's sha256)."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from pneumo.guard.detector import Guard
from pneumo.store import LoadedModel, ModelStoreError, file_sha256, read_card, write_card

GUARD_FILE = "guard.npz"


def save_guard(folder: str | Path, guard: Guard, extra: dict | None = None) -> dict:
    """Write ``guard.npz`` and the card's ``guard`` section (with the file's sha256).

    Args:
        folder: the model's folder in the store.
        guard: the fitted guard (:func:`pneumo.guard.fit.fit_guard`).
        extra: more entries for the card's section (the out-of-scope figures).

    Returns:
        The section written to the card.
    """
    folder = Path(folder)
    arrays = {key: np.asarray(value, dtype=np.float64) for key, value in guard.arrays.items()}
    np.savez(folder / GUARD_FILE, **arrays)
    section = {**guard.settings, **(extra or {}), "file": GUARD_FILE,
               "sha256": file_sha256(folder / GUARD_FILE)}
    card = read_card(folder.name, folder.parent)
    write_card(folder.name, {**card, "guard": section}, folder.parent)
    return section


def load_guard(loaded: LoadedModel) -> Guard | None:
    """The model's guard, or None when it has none (its card has no ``guard`` section).

    Raises:
        ModelStoreError: the card names a guard whose file is missing, altered, unreadable
            or made for another input size.
    """
    section = loaded.card.get("guard")
    if not section:
        return None
    path = Path(loaded.path) / section.get("file", GUARD_FILE)
    if not path.is_file():
        raise ModelStoreError(f"Model {loaded.name!r} lists an out-of-scope guard but {path.name} is "
                              "missing; restore it or run 'python -m pneumo fit-guard'.")
    if file_sha256(path) != section.get("sha256"):
        raise ModelStoreError(f"The out-of-scope guard of model {loaded.name!r} failed its integrity "
                              f"check ({path.name} does not match its card); restore it or run "
                              "'python -m pneumo fit-guard'.")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as err:
        raise ModelStoreError(f"The out-of-scope guard of model {loaded.name!r} cannot be read "
                              f"({err}); run 'python -m pneumo fit-guard'.") from err
    if int(section.get("input_size", -1)) != loaded.input_size:
        raise ModelStoreError(f"The out-of-scope guard of model {loaded.name!r} was fitted for "
                              f"{section.get('input_size')}-pixel inputs, the model takes "
                              f"{loaded.input_size}; run 'python -m pneumo fit-guard'.")
    return Guard(arrays, section)
