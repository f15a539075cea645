"""Cross-validation folds over the training films, the films a model's card says it held out,
and which films a measurement of the model runs on.

Two schemes, both grouped by patient so that no patient is on both sides of a fold:

- ``random``: scikit-learn's ``StratifiedGroupKFold``, stratified by class and
  pneumonia subtype (normal, bacterial, viral), shuffled with a seed.
- ``block``: leave-block-out. Each series of file names (``personNNN`` for pneumonia,
  ``IM-NNNN`` and ``NORMAL2-IM-NNNN`` for normal films) is numbered, most likely in
  acquisition order; each series' patients are cut by number into ``k`` consecutive
  runs, and block ``b`` holds run ``b`` of every series. Holding a block out imitates
  films from another period: a harder, shift-aware check than random folds.

:func:`held_out_records` is the one place that recovers, from a model's card, the
films it was validated on (one split) or each film's out-of-fold member (an ensemble);
:func:`records_to_measure` takes them, or a Kaggle split, for a measurement such as
``explain-eval``, and :func:`stratified_sample` a seeded share of them.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from pneumo.data import CLASSES, FilmRecord, find_films, split_by_patient

SCHEMES = ("random", "block")

MEASURE_SPLITS = ("validation", "train", "val", "test", "all")
"""The films :func:`records_to_measure` can take: the model's held-out films, a Kaggle split, or all."""

_SERIES_NUMBER = re.compile(r"^(.*?)(\d+)$")


def stratum(record: FilmRecord) -> str:
    """The stratum a fold keeps in proportion: NORMAL, or the pneumonia subtype."""
    return record.class_name if record.label == 0 else f"PNEUMONIA_{record.subtype or 'unknown'}"


def patient_series(patient: str) -> tuple[str, int]:
    """A patient id's numbered series and number: ``person1000`` -> ("person", 1000).

    An id without a trailing number is a series of its own, numbered 0.
    """
    match = _SERIES_NUMBER.match(patient)
    if not match:
        return patient, 0
    return match.group(1), int(match.group(2))


def random_folds(records: Sequence[FilmRecord], k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index (0..k-1) of each record: patient-grouped, stratified by class and subtype."""
    from sklearn.model_selection import StratifiedGroupKFold

    _check(records, k)
    splitter = StratifiedGroupKFold(n_splits=k, shuffle=True, random_state=seed)
    folds = np.full(len(records), -1, dtype=int)
    strata = [stratum(r) for r in records]
    groups = [r.patient for r in records]
    for index, (_, held) in enumerate(splitter.split(np.zeros(len(records)), strata, groups)):
        folds[held] = index
    return folds


def block_folds(records: Sequence[FilmRecord], k: int = 5) -> np.ndarray:
    """Block index (0..k-1) of each record: consecutive patient numbers of each series."""
    _check(records, k)
    by_series: dict[str, set[int]] = {}
    for record in records:
        series, number = patient_series(record.patient)
        by_series.setdefault(series, set()).add(number)
    block_of: dict[tuple[str, int], int] = {}
    for series, numbers in by_series.items():
        ordered = sorted(numbers)
        for rank, number in enumerate(ordered):
            block_of[(series, number)] = rank * k // len(ordered)
    return np.array([block_of[patient_series(r.patient)] for r in records], dtype=int)


def assign_folds(records: Sequence[FilmRecord], scheme: str, k: int = 5, seed: int = 0) -> np.ndarray:
    """Fold index of each record under ``scheme`` (one of :data:`SCHEMES`).

    Raises:
        ValueError: unknown scheme, or fewer patients than folds.
    """
    if scheme == "random":
        return random_folds(records, k, seed)
    if scheme == "block":
        return block_folds(records, k)
    raise ValueError(f"unknown fold scheme {scheme!r}; choose from {SCHEMES}")


def block_ranges(records: Sequence[FilmRecord], folds: np.ndarray) -> dict[int, str]:
    """A short description of each block's patient numbers, e.g. ``IM-115 to 420, person1 to 412``."""
    described = {}
    for block in sorted(set(int(f) for f in folds)):
        spans = {}
        for record, fold in zip(records, folds):
            if fold == block:
                series, number = patient_series(record.patient)
                low, high = spans.get(series, (number, number))
                spans[series] = (min(low, number), max(high, number))
        described[block] = ", ".join(f"{s}{lo} to {hi}" for s, (lo, hi) in sorted(spans.items()))
    return described


def names_sha256(records: Sequence[FilmRecord]) -> str:
    """sha256 of the sorted ``split/CLASS/name`` lines of ``records``."""
    names = sorted(f"{r.split}/{r.class_name}/{r.path.name}" for r in records)
    return hashlib.sha256("\n".join(names).encode()).hexdigest()


def folds_sha256(records: Sequence[FilmRecord], folds: np.ndarray) -> str:
    """sha256 of the sorted ``fold split/CLASS/name`` lines: the same films in the same folds."""
    lines = sorted(f"{int(f)} {r.split}/{r.class_name}/{r.path.name}" for r, f in zip(records, folds))
    return hashlib.sha256("\n".join(lines).encode()).hexdigest()


def trained_on_names(card: dict) -> set[str]:
    """``CLASS/file name`` of every film a cross-validated ensemble learned from (each member saw all
    but one fold), from its card's out-of-fold list; empty for a card without one."""
    films = (card.get("out_of_fold") or {}).get("films") or []
    return {name.split("/", 1)[-1] for name in films}


def held_out_records(card: dict, data_dir: str | Path) -> tuple[list[FilmRecord], np.ndarray]:
    """The films a model was checked on, recovered from its card and checked against it.

    For a single model (``training.split``): its validation films, each with fold 0.
    For an ensemble (``training.cross_validation``): every training film, each with the
    index of the member that never saw its patient.

    Returns:
        (records, fold index per record); the model's training films of fold ``f`` are
        the records whose fold is not ``f``.

    Raises:
        ValueError: the card records no split, or ``data_dir`` does not hold the films
            the card was made from.
    """
    training = card.get("training") or {}
    records = find_films(data_dir, splits=("train", "val"))
    name = card.get("name", "this model")
    if "cross_validation" in training:
        cv = training["cross_validation"]
        folds = assign_folds(records, cv["scheme"], cv["k"], cv.get("seed", 0))
        if folds_sha256(records, folds) != cv["folds_sha256"]:
            raise ValueError(f"{data_dir} does not give the films model {name!r} was cross-validated "
                             "on; name the data folder it was trained from.")
        return records, folds
    split = training.get("split")
    if not split:
        raise ValueError(f"Model {name!r} records no training split in its card, so its validation "
                         "films cannot be found; retrain it with 'python -m pneumo train'.")
    _, val_records = split_by_patient(records, split["val_fraction"], split["seed"])
    expected = split.get("validation_films_sha256")
    if expected and names_sha256(val_records) != expected:
        raise ValueError(f"{data_dir} does not give the validation films model {name!r} was "
                         "checked on; name the data folder it was trained from.")
    return val_records, np.zeros(len(val_records), dtype=int)


def training_records(card: dict, data_dir: str | Path) -> tuple[list[FilmRecord], list[FilmRecord]]:
    """(training films, held-out films) of a model: for an ensemble, member 0's two sides."""
    held, folds = held_out_records(card, data_dir)
    if "cross_validation" in (card.get("training") or {}):
        return [r for r, f in zip(held, folds) if f != 0], [r for r, f in zip(held, folds) if f == 0]
    names = {r.path for r in held}
    everything = find_films(data_dir, splits=("train", "val"))
    return [r for r in everything if r.path not in names], held


def held_out_records_in(card: dict, root: str | Path) -> list[FilmRecord] | None:
    """The model's own held-out films under ``root``, or None when ``root`` is not its data.

    They come from :func:`training_records` (for an ensemble, the films its first member
    never saw), on ``root`` or, for a split folder such as ``.../train``, on its parent;
    the card's checksum of those films must match, so these are never training films of
    that model.
    """
    root = Path(root).resolve()
    for candidate in (root, root.parent):
        try:
            _, validation = training_records(card, candidate)
        except (ValueError, FileNotFoundError):  # no films there, or not the films of the card
            continue
        return [r for r in validation if r.path.resolve().is_relative_to(root)]
    return None


def records_to_measure(card: dict, root: str | Path, split: str | None) -> tuple[list[FilmRecord], str]:
    """The films a measurement of the model runs on, and a name for them (one of :data:`MEASURE_SPLITS`).

    With no ``split``: the model's held-out films when ``root`` holds its training
    data, else the ``test`` split of a Kaggle root, else every film under ``root``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: an unknown split, ``"validation"`` when ``root`` is not the model's
            training data, or no films.
    """
    if split is not None and split not in MEASURE_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {MEASURE_SPLITS}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No such data folder: {root}")
    if split in (None, "validation"):
        validation = held_out_records_in(card, root)
        if validation:
            return validation, "validation"
        if split == "validation":
            raise ValueError(f"{root} does not hold this model's training data (its validation split "
                             "cannot be recomputed there); pick --split test, val, train or all.")
    if split in ("train", "val", "test"):
        return find_films(root, splits=(split,)), split
    if split is None and (root / "test").is_dir():
        return find_films(root, splits=("test",)), "test"
    return find_films(root), "all"


def stratified_sample(records: Sequence[FilmRecord], limit: int | None,
                      seed: int = 0) -> list[FilmRecord]:
    """A seeded sample of ``limit`` films keeping each class's share (at least one per class).

    Returns all records when ``limit`` is None or not smaller than their number.

    Raises:
        ValueError: ``limit`` below 1.
    """
    if limit is None or limit >= len(records):
        return list(records)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    rng = np.random.default_rng(seed)
    by_class = [[r for r in records if r.label == label] for label in range(len(CLASSES))]
    by_class = [group for group in by_class if group]
    quotas = [max(1, round(limit * len(group) / len(records))) for group in by_class]
    quotas[int(np.argmax(quotas))] -= sum(quotas) - limit  # the rounding goes to the largest class
    chosen = [group[i] for group, quota in zip(by_class, quotas)
              for i in rng.choice(len(group), size=max(quota, 0), replace=False)]
    return sorted(chosen, key=lambda r: str(r.path))


def too_few_patients(records: Sequence[FilmRecord], k: int, schemes: Sequence[str] = (),
                     seed: int = 0) -> str | None:
    """Why ``records`` cannot fill ``k`` patient-grouped folds that each hold both classes, or None.

    Each class needs at least ``k`` patients ("it has 3 NORMAL patients and each of the 5 needs
    one"); then each fold of each of ``schemes`` is assigned and checked ("block fold 5 would hold
    out no NORMAL film").
    """
    patients: dict[str, set[str]] = {name: set() for name in CLASSES}
    for record in records:
        patients.setdefault(record.class_name, set()).add(record.patient)
    for name, held in patients.items():
        if len(held) < k:
            noun = "patient" if len(held) == 1 else "patients"
            return f"it has {len(held)} {name} {noun} and each of the {k} needs one"
    for scheme in schemes:
        assigned = assign_folds(records, scheme, k, seed)
        for fold in range(k):
            held_classes = {r.class_name for r, f in zip(records, assigned) if f == fold}
            missing = [name for name in CLASSES if name not in held_classes]
            if missing:
                return f"{scheme} fold {fold + 1} would hold out no {missing[0]} film"
    return None


def _check(records: Sequence[FilmRecord], k: int) -> None:
    if k < 2:
        raise ValueError(f"at least 2 folds are needed, got {k}")
    patients = len({r.patient for r in records})
    if patients < k:
        raise ValueError(f"{patients} patients cannot fill {k} folds")
