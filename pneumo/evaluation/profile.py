"""Dataset profiling: what a folder of films holds, for data staff and the model card.

The profile is plain JSON-ready data: counts per split and class, patients and
films per patient, pneumonia subtypes, image sizes, intensity histograms per
class, a patient-leakage check between splits and groups of near-identical films.
"""

from __future__ import annotations

import hashlib
import io
import zipfile
import zlib
from collections import Counter, defaultdict
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image

from pneumo.data import CLASSES, FilmRecord, find_films, find_films_in_names, iter_films
from pneumo.io import Film, FilmReadError, read_film
from pneumo.preprocess import to_display

HISTOGRAM_BINS = 32
HASH_SIDE = 16


def average_hash(pixels: np.ndarray) -> int:
    """A 256-bit perceptual hash: 16 x 16 thumbnail thresholded at its mean."""
    thumb = np.asarray(Image.fromarray(pixels.astype(np.float32)).resize(
        (HASH_SIDE, HASH_SIDE), Image.Resampling.BOX), dtype=np.float32)
    bits = (thumb > thumb.mean()).ravel()
    return int(sum(1 << i for i, bit in enumerate(bits) if bit))


class ProfileBuilder:
    """Accumulates a profile film by film; ``add`` can watch a training decode pass."""

    def __init__(self, root: str | Path | None = None):
        self.root = Path(root) if root else None
        self.records: list[FilmRecord] = []
        self.sizes: list[tuple[int, int]] = []
        self.hashes: list[int] = []
        self.histograms = {name: np.zeros(HISTOGRAM_BINS) for name in CLASSES}
        self.means = {name: [] for name in CLASSES}
        self.errors: list[tuple[str, str]] = []

    def add(self, record: FilmRecord, film: Film) -> None:
        """Take one decoded film into the profile."""
        pixels = film.pixels
        self.records.append(record)
        self.sizes.append(film.size)
        self.hashes.append(average_hash(pixels))
        counts, _ = np.histogram(pixels, bins=HISTOGRAM_BINS, range=(0.0, 1.0))
        self.histograms[record.class_name] += counts / max(pixels.size, 1)
        self.means[record.class_name].append(float(pixels.mean()))

    def add_error(self, record: FilmRecord, message: str) -> None:
        """Note a film that could not be read."""
        self.errors.append((self._name(record), message))

    def _name(self, record: FilmRecord) -> str:
        if self.root is not None:
            try:
                return record.path.relative_to(self.root).as_posix()
            except ValueError:
                pass
        return record.path.name

    def result(self) -> dict:
        """The profile as JSON-ready data."""
        records = self.records
        by_split = defaultdict(Counter)
        for r in records:
            by_split[r.split][r.class_name] += 1
        patients = defaultdict(set)
        films_per_patient = Counter()
        for r in records:
            patients[r.class_name].add(r.patient)
            films_per_patient[(r.class_name, r.patient)] += 1
        per_patient_hist = {
            name: dict(sorted(Counter(n for (c, _), n in films_per_patient.items() if c == name).items()))
            for name in CLASSES
        }
        splits_of = defaultdict(set)
        for r in records:
            splits_of[r.patient].add(r.split)
        leaked = sorted(p for p, s in splits_of.items() if len(s) > 1)
        return {
            "n_films": len(records),
            "films": {split: {name: counts.get(name, 0) for name in CLASSES}
                      for split, counts in sorted(by_split.items())},
            "patients": {name: len(patients[name]) for name in CLASSES},
            "films_per_patient": {k: {str(n): c for n, c in v.items()} for k, v in per_patient_hist.items()},
            "subtypes": dict(Counter(r.subtype or "unknown" for r in records if r.label == 1)),
            "image_sizes": {
                "width": [w for w, _ in self.sizes], "height": [h for _, h in self.sizes],
                "class": [r.class_name for r in records],
            },
            "intensity": {
                "bins": np.linspace(0, 1, HISTOGRAM_BINS + 1).round(4).tolist(),
                "histogram": {name: (h / max(len(self.means[name]), 1)).round(6).tolist()
                              for name, h in self.histograms.items()},
                "mean": {name: _summary(v) for name, v in self.means.items()},
            },
            "leakage": {"patients_in_several_splits": len(leaked), "examples": leaked[:20]},
            "near_duplicates": self._near_duplicates(),
            "unreadable": [{"film": n, "message": m} for n, m in self.errors],
        }

    def _near_duplicates(self, max_groups: int = 50) -> dict:
        groups = defaultdict(list)
        for record, h in zip(self.records, self.hashes):
            groups[h].append(record)
        dupes = [g for g in groups.values() if len(g) > 1]
        dupes.sort(key=lambda g: (-len(g), str(g[0].path)))
        return {
            "groups": len(dupes),
            "films": sum(len(g) for g in dupes),
            "cross_patient_groups": sum(1 for g in dupes if len({r.patient for r in g}) > 1),
            "examples": [[self._name(r) for r in g] for g in dupes[:max_groups]],
        }


def _summary(values: Sequence[float]) -> dict:
    if not values:
        return {"n": 0}
    array = np.asarray(values)
    return {"n": int(array.size), "mean": round(float(array.mean()), 4), "std": round(float(array.std()), 4),
            "p5": round(float(np.percentile(array, 5)), 4), "p95": round(float(np.percentile(array, 95)), 4)}


def profile_records(records: Sequence[FilmRecord], root: str | Path | None = None,
                    progress: Callable[[int, int], None] | None = None) -> dict:
    """Read every film once and profile them; unreadable films are listed, not fatal."""
    return _profile_stream(ProfileBuilder(root), iter_films(records), len(records), progress)


def _profile_stream(builder: ProfileBuilder, films, total: int,
                    progress: Callable[[int, int], None] | None) -> dict:
    """Feed (record, film, error) triples to ``builder``, reporting progress; returns the profile."""
    for index, (record, film, error) in enumerate(films):
        if film is None:
            builder.add_error(record, error or "unreadable")
        else:
            builder.add(record, film)
        if progress is not None:
            progress(index + 1, total)
    return builder.result()


MAX_ZIP_FILMS = 50_000
"""Most films a ZIP upload may hold."""

MAX_ZIP_FILM_BYTES = 64 * 1024 * 1024
"""Largest single film (uncompressed) read from a ZIP upload."""


def profile_folder(root: str | Path, progress: Callable[[int, int], None] | None = None) -> dict:
    """Profile a data folder in either layout :func:`pneumo.data.find_films` understands.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: it holds no ``NORMAL``/``PNEUMONIA`` films.
    """
    return profile_records(find_films(root), root=root, progress=progress)


def folder_signature(root: str | Path) -> str:
    """A short digest of a data folder's films (relative path, size, modification time).

    It changes when a film is added, removed or replaced, so a cached profile of the
    folder can be keyed on it.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: it holds no films.
    """
    root = Path(root)
    digest = hashlib.sha256()
    for record in find_films(root):
        stat = record.path.stat()
        digest.update(f"{record.path.relative_to(root).as_posix()} {stat.st_size} "
                      f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def profile_zip(data: bytes, progress: Callable[[int, int], None] | None = None) -> dict:
    """Profile a ZIP archive in the Kaggle layout without writing anything to disk.

    The archive may hold ``[<folder>/]{train,val,test}/{NORMAL,PNEUMONIA}/*`` or a single
    split folder ``[<folder>/]{NORMAL,PNEUMONIA}/*``; when it holds several copies (the
    Kaggle archive nests one ``chest_xray`` in another), the shallowest one is profiled.
    macOS resource folders and hidden files are skipped. Films are decoded from memory.

    Args:
        data: the archive's bytes.
        progress: called with (done, total) as films are read.

    Returns:
        The profile, as :meth:`ProfileBuilder.result` makes it; film names are relative to
        the data root inside the archive.

    Raises:
        ValueError: not a ZIP archive, too many films, or no films in either layout.
    """
    archive = open_zip(data)
    with archive:
        members = zip_film_members(archive)
        builder = ProfileBuilder(Path("."))

        def read(item: tuple[FilmRecord, zipfile.ZipInfo]) -> tuple[FilmRecord, Film | None, str | None]:
            record, info = item
            if info.file_size > MAX_ZIP_FILM_BYTES:
                return record, None, f"larger than {MAX_ZIP_FILM_BYTES // 2**20} MB uncompressed"
            try:
                return record, read_film(archive.read(info)), None
            except (FilmReadError, zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError,
                    EOFError, zlib.error) as err:  # damaged, encrypted or oddly compressed member
                return record, None, str(err)

        with ThreadPoolExecutor(max_workers=4) as pool:
            return _profile_stream(builder, pool.map(read, members), len(members), progress)


def open_zip(data: bytes) -> zipfile.ZipFile:
    """An uploaded archive opened in memory.

    Raises:
        ValueError: the bytes are not a ZIP archive.
    """
    try:
        return zipfile.ZipFile(io.BytesIO(data))
    except zipfile.BadZipFile as err:
        raise ValueError(f"The upload is not a readable ZIP archive ({err}).") from err


def zip_film_members(archive: zipfile.ZipFile) -> list[tuple[FilmRecord, zipfile.ZipInfo]]:
    """The films of a Kaggle-layout archive, each with its record (path relative to the data root).

    The layout is read by :func:`pneumo.data.find_films_in_names`.

    Raises:
        ValueError: too many films, or none in either layout.
    """
    files = [info for info in archive.infolist() if not info.is_dir()]
    films = find_films_in_names([info.filename for info in files])
    if not films:
        raise ValueError("The archive holds no films in the Kaggle layout: expected "
                         "[folder/]{train,val,test}/{NORMAL,PNEUMONIA}/ or [folder/]{NORMAL,PNEUMONIA}/.")
    if len(films) > MAX_ZIP_FILMS:
        raise ValueError(f"The archive holds {len(films)} films, more than the {MAX_ZIP_FILMS} "
                         "this page profiles; profile it as a folder on the server instead.")
    return [(record, files[index]) for index, record in films]


def sample_records(records: Sequence[FilmRecord], per_class: int = 6,
                   seed: int = 0) -> dict[str, list[FilmRecord]]:
    """A fixed random sample of films per class (the same seed gives the same films)."""
    rng = np.random.default_rng(seed)
    sample = {}
    for name in CLASSES:
        of_class = [r for r in records if r.class_name == name]
        count = min(per_class, len(of_class))
        picked = rng.choice(len(of_class), size=count, replace=False) if count else []
        sample[name] = [of_class[i] for i in sorted(picked)]
    return sample


def thumbnails(records: Sequence[FilmRecord], size: int = 160) -> list[tuple[str, np.ndarray]]:
    """(file name, uint8 (size, size) film as a model would see it) for each readable film."""
    shown = []
    for record, film, _ in iter_films(records):
        if film is not None:
            shown.append((record.path.name, to_display(film, size)))
    return shown


def sample_folder_films(root: str | Path, per_class: int = 6, seed: int = 0) -> list[tuple[str, str, Path]]:
    """(name under the data root, folder label, path) of a fixed sample per class of a Kaggle-layout folder.

    The name is ``<split>/<CLASS>/<file>`` (``train/NORMAL/IM-0117-0001.jpeg``), as the model's
    card names its training films.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: no ``NORMAL``/``PNEUMONIA`` folders with films were found.
    """
    sample = sample_records(find_films(root), per_class, seed)
    return [(f"{r.split}/{r.class_name}/{r.path.name}", r.class_name, r.path)
            for name in CLASSES for r in sample[name]]


def sample_zip_films(data: bytes, per_class: int = 6, seed: int = 0) -> tuple[list[tuple[str, str, bytes]], list[str]]:
    """A fixed sample per class of a Kaggle-layout ZIP, read in memory: ((name, label, bytes) ..., problems).

    Names are relative to the archive's data root (``train/NORMAL/x.jpeg``); a member that
    cannot be extracted is left out, with one sentence in ``problems``.

    Raises:
        ValueError: not a ZIP archive, too many films, or no films in either layout.
    """
    archive = open_zip(data)
    with archive:
        members = dict(zip_film_members(archive))
        sample = sample_records(list(members), per_class, seed)
        films, problems = [], []
        for record in (r for name in CLASSES for r in sample[name]):
            info, name = members[record], str(PurePosixPath(record.path))
            if info.file_size > MAX_ZIP_FILM_BYTES:
                problems.append(f"{name} is larger than {MAX_ZIP_FILM_BYTES // 2**20} MB uncompressed.")
                continue
            try:
                films.append((name, record.class_name, archive.read(info)))
            except (zipfile.BadZipFile, OSError, RuntimeError, NotImplementedError, EOFError, zlib.error) as err:
                problems.append(f"{name} cannot be extracted ({err}).")
    return films, problems
