"""The data: films found on disk, who they belong to, a patient-grouped split, and tf.data input.

Two layouts are understood: the Kaggle one, ``<root>/{train,val,test}/{NORMAL,PNEUMONIA}``,
and a single split folder, ``<split>/{NORMAL,PNEUMONIA}``. This module is their one
reader: :func:`find_films` for a folder on disk, :func:`find_films_in_names` for the
member names of an archive.
"""

from __future__ import annotations

import hashlib
import re
from collections import defaultdict
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from pneumo.io import FILM_SUFFIXES, Film, FilmReadError, read_film
from pneumo.preprocess import to_model_input
from pneumo.store import file_sha256

CLASSES = ("NORMAL", "PNEUMONIA")
"""Class names in label order: 0 = NORMAL, 1 = PNEUMONIA."""

SPLITS = ("train", "val", "test")

_PERSON = re.compile(r"^(person\d+)_(bacteria|virus)_", re.IGNORECASE)
_NORMAL_IM = re.compile(r"^((?:NORMAL\d*-)?IM-\d+)-", re.IGNORECASE)


@dataclass(frozen=True)
class FilmRecord:
    """One film on disk and what its place and name say about it."""

    path: Path
    label: int
    split: str
    patient: str
    subtype: str | None  # "bacteria" or "virus" for pneumonia films named so, else None

    @property
    def class_name(self) -> str:
        return CLASSES[self.label]


def parse_film_name(name: str) -> tuple[str, str | None]:
    """Patient id and pneumonia subtype from a Kermany file name.

    ``person1000_bacteria_2931.jpeg`` -> ("person1000", "bacteria");
    ``NORMAL2-IM-1427-0001.jpeg`` -> ("NORMAL2-IM-1427", None). A name in neither
    pattern is its own patient (its stem), so it can never join another's group.
    """
    match = _PERSON.match(name)
    if match:
        return match.group(1).lower(), match.group(2).lower()
    match = _NORMAL_IM.match(name)
    if match:
        return match.group(1).upper(), None
    return Path(name).stem, None


def is_split_folder(root: str | Path) -> bool:
    """Whether ``root`` is one split itself (it holds ``NORMAL`` or ``PNEUMONIA``), not a Kaggle-layout root."""
    return any((Path(root) / name).is_dir() for name in CLASSES)


def find_films(root: str | Path, splits: Sequence[str] = SPLITS) -> list[FilmRecord]:
    """All films under ``root``, in either layout, sorted by path.

    Args:
        root: a Kaggle-layout root or a single split folder.
        splits: which of the Kaggle splits to take (ignored for a single split folder).

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no ``NORMAL``/``PNEUMONIA`` folders with films were found.
    """
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No such data folder: {root}")
    if is_split_folder(root):
        split_dirs = [(root.name, root)]
    else:
        split_dirs = [(name, root / name) for name in splits if (root / name).is_dir()]
    records = []
    for split, folder in split_dirs:
        for label, class_name in enumerate(CLASSES):
            class_dir = folder / class_name
            if not class_dir.is_dir():
                continue
            for path in sorted(class_dir.iterdir()):
                record = _film_record(path, split) if path.is_file() else None
                if record is not None:
                    records.append(record)
    if not records:
        raise ValueError(
            f"No films found in {root}: expected {root}/<split>/NORMAL and "
            f"{root}/<split>/PNEUMONIA, or {root}/NORMAL and {root}/PNEUMONIA."
        )
    return sorted(records, key=lambda r: str(r.path))


def find_films_in_names(names: Sequence[str]) -> list[tuple[int, FilmRecord]]:
    """The films among an archive's member names (POSIX paths), in either layout.

    Where the names hold several data roots (the Kaggle archive nests one ``chest_xray``
    in another), the shallowest one is taken. macOS resource folders (``__MACOSX``) and
    hidden files and folders are skipped.

    Args:
        names: the members' paths, files only.

    Returns:
        (position in ``names``, record) of each film of that root, sorted by the record's
        path, which is relative to the data root; empty when no name is a film in either layout.
    """
    by_root: dict[tuple[str, ...], list[tuple[int, FilmRecord]]] = defaultdict(list)
    for index, name in enumerate(names):
        parts = PurePosixPath(name).parts
        if any(part.startswith(".") or part == "__MACOSX" for part in parts):
            continue
        place = _place_in_layout(parts)
        if place is None:
            continue
        root, split = place
        record = _film_record(Path(*parts[len(root):]), split)
        if record is not None:
            by_root[root].append((index, record))
    if not by_root:
        return []
    films = by_root[min(by_root, key=lambda root: (len(root), root))]
    return sorted(films, key=lambda item: str(item[1].path))


def _place_in_layout(parts: Sequence[str]) -> tuple[tuple[str, ...], str] | None:
    """(the data root's parts, the split) of a path ``[...]/[<split>/]<CLASS>/<name>``.

    The folder holding the class folders is the split: a Kaggle split name puts the data
    root above it; any other folder is itself a single-split root, its split named after
    it (``data`` when the class folders are at the top). None outside a class folder.
    """
    if len(parts) < 2 or parts[-2] not in CLASSES:
        return None
    class_at = len(parts) - 2
    if class_at >= 1 and parts[class_at - 1] in SPLITS:
        return tuple(parts[:class_at - 1]), parts[class_at - 1]
    return tuple(parts[:class_at]), (parts[class_at - 1] if class_at >= 1 else "data")


def _film_record(path: Path, split: str) -> FilmRecord | None:
    """The record of a film at ``.../<CLASS>/<name>``, or None for a file without a film ending."""
    if path.parent.name not in CLASSES or path.suffix.lower() not in FILM_SUFFIXES:
        return None
    patient, subtype = parse_film_name(path.name)
    return FilmRecord(path, CLASSES.index(path.parent.name), split, patient, subtype)


def validation_parts(val_fraction: float) -> int:
    """How many patient-grouped parts :func:`split_by_patient` cuts the films into (one is held out)."""
    return max(2, round(1 / val_fraction))


def split_by_patient(
    records: Sequence[FilmRecord], val_fraction: float = 0.2, seed: int = 0
) -> tuple[list[FilmRecord], list[FilmRecord]]:
    """A patient-grouped, class-stratified split into (train, validation).

    Uses scikit-learn's ``StratifiedGroupKFold`` with ``round(1 / val_fraction)``
    folds, shuffled with ``seed``, and keeps its first fold for validation. The
    same records, fraction and seed always give the same split.
    """
    from sklearn.model_selection import StratifiedGroupKFold

    if not 0 < val_fraction < 1:
        raise ValueError(f"val_fraction must be between 0 and 1, got {val_fraction}")
    records = sorted(records, key=lambda r: str(r.path))
    folds = StratifiedGroupKFold(n_splits=validation_parts(val_fraction), shuffle=True,
                                 random_state=seed)
    labels = [r.label for r in records]
    groups = [r.patient for r in records]
    train_idx, val_idx = next(folds.split(np.zeros(len(records)), labels, groups))
    return [records[i] for i in train_idx], [records[i] for i in val_idx]


def iter_films(
    records: Sequence[FilmRecord], workers: int = 4
) -> Iterator[tuple[FilmRecord, Film | None, str | None]]:
    """Read films in order with a small thread pool: yields (record, film, error)."""

    def read(record: FilmRecord) -> tuple[FilmRecord, Film | None, str | None]:
        try:
            return record, read_film(record.path), None
        except FilmReadError as err:
            return record, None, str(err)

    with ThreadPoolExecutor(max_workers=workers) as pool:
        yield from pool.map(read, records)


def load_inputs(
    records: Sequence[FilmRecord],
    size: int,
    observers: Iterable[Callable[[FilmRecord, Film], None]] = (),
    progress: Callable[[int, int], None] | None = None,
) -> np.ndarray:
    """Decode every film once into model inputs.

    Args:
        records: the films.
        size: the model's input side.
        observers: called with each decoded film (a profile can be built in the same pass).
        progress: called with (done, total) as films are read.

    Returns:
        uint8 array (n, size, size, 1); kept as bytes so 5,000 films fit in 260 MB.

    Raises:
        FilmReadError: a film of the data set cannot be read (a data set must be clean).
    """
    inputs = np.empty((len(records), size, size, 1), dtype=np.uint8)
    for index, (record, film, error) in enumerate(iter_films(records)):
        if film is None:
            raise FilmReadError(f"{record.path}: {error}")
        inputs[index] = to_model_input(film, size).astype(np.uint8)  # whole grey levels already
        for observe in observers:
            observe(record, film)
        if progress is not None:
            progress(index + 1, len(records))
    return inputs


def labels_of(records: Sequence[FilmRecord]) -> np.ndarray:
    """float32 labels (n,), 1.0 for pneumonia."""
    return np.array([r.label for r in records], dtype=np.float32)


def manifest_sha256(records: Sequence[FilmRecord], root: str | Path) -> str:
    """sha256 over the sorted lines ``<path relative to root> <sha256 of file>``."""
    root = Path(root)
    lines = []
    for record in sorted(records, key=lambda r: str(r.path)):
        lines.append(f"{record.path.relative_to(root).as_posix()} {file_sha256(record.path)}\n")
    return hashlib.sha256("".join(lines).encode()).hexdigest()


def make_dataset(
    inputs: np.ndarray,
    labels: np.ndarray,
    batch_size: int,
    *,
    training: bool,
    augment: Callable | None = None,
    sample_weights: np.ndarray | None = None,
    seed: int = 0,
):
    """A ``tf.data`` pipeline over decoded inputs.

    Training pipelines shuffle every epoch and apply ``augment(images, seed)`` per
    batch with a fresh stateless seed; evaluation pipelines keep the order.
    """
    import tensorflow as tf

    tensors = (inputs, labels) if sample_weights is None else (inputs, labels, sample_weights)
    dataset = tf.data.Dataset.from_tensor_slices(tensors)
    if training:
        dataset = dataset.shuffle(len(inputs), seed=seed, reshuffle_each_iteration=True)
    dataset = dataset.batch(batch_size)

    def to_float(images, *rest):
        return (tf.cast(images, tf.float32), *rest)

    dataset = dataset.map(to_float, num_parallel_calls=tf.data.AUTOTUNE)
    if training and augment is not None:
        seeds = tf.data.Dataset.random(seed=seed, rerandomize_each_iteration=True).batch(2)
        dataset = tf.data.Dataset.zip(dataset, seeds).map(
            lambda batch, pair: (augment(batch[0], pair), *batch[1:]),
            num_parallel_calls=tf.data.AUTOTUNE,
        )
    return dataset.prefetch(tf.data.AUTOTUNE)


def default_data_dir() -> Path:
    """``$PNEUMO_DATA_DIR``, else ``../shared/data/chest_xray`` beside the repository."""
    import os

    configured = os.environ.get("PNEUMO_DATA_DIR")
    if configured:
        return Path(configured)
    return Path(__file__).resolve().parent.parent.parent / "shared" / "data" / "chest_xray"


def synthetic_film(size: int = 1024, seed: int = 0) -> Film:
    """A smooth random grey image of film size, for timing when no real film is at hand."""
    rng = np.random.default_rng(seed)
    coarse = rng.random((16, 16)).astype(np.float32)
    from PIL import Image

    pixels = np.asarray(Image.fromarray(coarse).resize((size, size), Image.Resampling.BICUBIC))
    return Film(pixels=np.clip(pixels, 0, 1).astype(np.float32), format="synthetic", source_mode="F")
