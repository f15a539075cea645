"""The example films shipped with the app (``docs/examples/``): what each one is and where it came from.

A dozen small JPEGs for demonstrations, listed in ``docs/examples/examples.json``. The chest
films are byte-for-byte copies of training films (so each has an out-of-fold probability in
the model's card); the rotated film is made from a training film and the non-film is
generated, and their entries say so. ``scripts/make_examples.py`` writes the folder.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

EXAMPLES_DIR = Path(__file__).resolve().parent.parent / "docs" / "examples"
MANIFEST = "examples.json"
REFUSED = "refused"
"""The ``expected`` outcome of an example the guard should refuse (rotated, not a film)."""
LICENCE = "CC BY 4.0"
CITATION = ('Kermany D.S. et al., "Identifying Medical Diagnoses and Treatable Diseases by Image-Based '
            'Deep Learning", Cell 172(5):1122-1131, 2018; data: Mendeley Data, doi:10.17632/rscbjbr9sj.2')


class ExamplesError(Exception):
    """The examples folder is missing, or its list or a file in it is broken: one sentence."""


@dataclass(frozen=True)
class Example:
    """One example film as its manifest entry describes it.

    ``label`` is the folder label of the training film it is or was made from (``None`` for the
    generated non-film); ``expected`` is what a correct reading gives: that label, or
    :data:`REFUSED` for a film the out-of-scope guard should refuse. ``source`` is the training
    film's path relative to the data root (``train/NORMAL/IM-0117-0001.jpeg``), ``made`` says how
    a derived file was made ("" for a byte-for-byte copy).
    """

    name: str
    title: str
    kind: str
    label: str | None
    subtype: str | None
    expected: str
    source: str | None
    made: str
    sha256: str
    why: str
    folder: Path = EXAMPLES_DIR

    @property
    def path(self) -> Path:
        return self.folder / self.name

    @property
    def file_id(self) -> str:
        """A stable key for per-session memory, apart from any upload's."""
        return f"example:{self.sha256[:16]}"

    @property
    def is_copy(self) -> bool:
        """Whether the file is a training film byte for byte (then it has an out-of-fold probability)."""
        return bool(self.source) and not self.made

    def getvalue(self) -> bytes:
        """The file's bytes, checked against the manifest's sha256.

        Raises:
            ExamplesError: the file is missing or not the one the manifest lists.
        """
        try:
            data = self.path.read_bytes()
        except OSError as err:
            raise ExamplesError(f"The example film {self.path} cannot be read ({err.strerror or err}).") from err
        if hashlib.sha256(data).hexdigest() != self.sha256:
            raise ExamplesError(f"The example film {self.path} is not the file its list names (sha256 differs); "
                                "run 'python -m scripts.make_examples' again.")
        return data


def load_examples(folder: str | Path = EXAMPLES_DIR) -> list[Example]:
    """The examples listed in ``folder``'s manifest, in its order.

    Raises:
        ExamplesError: no manifest, or one that is not a list of example entries.
    """
    folder = Path(folder)
    try:
        entries = json.loads((folder / MANIFEST).read_text())["films"]
        return [Example(**{key: entry[key] for key in FIELDS}, folder=folder) for entry in entries]
    except FileNotFoundError as err:
        raise ExamplesError(f"There are no example films in {folder} (no {MANIFEST}).") from err
    except (OSError, ValueError, KeyError, TypeError) as err:
        raise ExamplesError(f"The list of example films {folder / MANIFEST} is broken ({err}).") from err


FIELDS = ("name", "title", "kind", "label", "subtype", "expected", "source", "made", "sha256", "why")
"""A manifest entry's keys, in order."""
