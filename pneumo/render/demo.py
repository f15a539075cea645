"""The demo gallery's view-model: each film's verdict beside its folder label, and the caveat of a training film.

The demo page (/demo) and the diagnose page's "try an example" draw what these functions
return. A film whose name is in the card's out-of-fold list is a training film: the shipped
ensemble learned from it, so its result flatters the model. Its out-of-fold probability (from
the one member that never saw the patient) is shown beside it.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from pneumo.examples import REFUSED, Example
from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, STATUS_REJECTED, Assessment
from pneumo.render.palette import NEUTRAL_COLOUR
from pneumo.render.wording import format_percent, verdict_for
from pneumo.stats.calibration import sigmoid

MARKS = {True: "correct", False: "incorrect", None: "no verdict"}
SORTS = {
    "order": "As listed",
    "p_desc": "Probability, highest first",
    "p_asc": "Probability, lowest first",
    "incorrect_first": "Incorrect first",
}


def out_of_fold_probabilities(card: dict) -> dict[str, float]:
    """Each training film's out-of-fold P(pneumonia), by its path under the data root (``train/NORMAL/x.jpeg``).

    The probability is the shipped ensemble's scheme's held-out logit divided by the shipped
    temperature: what the one member that never saw the film's patient said, calibrated as
    the shipped model is. Empty for a card without out-of-fold records.
    """
    records = card.get("out_of_fold") or {}
    scheme = (card.get("ensemble") or {}).get("scheme", "random")
    logits = records.get(f"{scheme}_logit")
    if not records.get("films") or logits is None or not card.get("temperature"):
        return {}
    probs = sigmoid([logit / float(card["temperature"]) for logit in logits])
    return dict(zip(records["films"], (float(p) for p in probs)))


@dataclass(frozen=True)
class GalleryFilm:
    """What the demo knows about one film before it is scored: its name, title and folder label."""

    name: str
    title: str
    label: str | None  # the class its folder names; None when it has none
    expected: str  # the right reading: the label, or pneumo.examples.REFUSED
    training_name: str | None = None  # its path under the data root, when it carries a training film's name
    note: str = ""  # what the film is (an example's "why" and "made"), "" for a folder's film


def example_films(examples: Sequence[Example]) -> list[GalleryFilm]:
    """The shipped examples as gallery films (only byte-for-byte copies carry a training name)."""
    return [GalleryFilm(e.name, e.title, e.label, e.expected, e.source if e.is_copy else None,
                        " ".join(part for part in (e.why, e.made) if part)) for e in examples]


def folder_films(names: Sequence[str], labels: Sequence[str]) -> list[GalleryFilm]:
    """Films of a Kaggle-layout folder or ZIP: ``names`` relative to the data root (``train/NORMAL/x.jpeg``)."""
    return [GalleryFilm(name, name.rsplit("/", 1)[-1], label, label, name) for name, label in zip(names, labels)]


def is_correct(item: Assessment, expected: str) -> bool | None:
    """Whether the reading is right: the label at the threshold, or a refusal when one is expected.

    None when there is no verdict to judge: an unreadable file, or a chest film the guard
    refused (shown as refused, neither right nor wrong).
    """
    if item.status == STATUS_ERROR:
        return None
    if expected == REFUSED:
        return item.status == STATUS_REJECTED
    if item.status != STATUS_OK or item.label is None:
        return None
    return item.label == expected


def gallery_rows(films: Sequence[GalleryFilm], assessments: Sequence[Assessment], threshold: float,
                 classes: Sequence[str], out_of_fold: dict[str, float]) -> list[dict]:
    """One row per film, in the films' order: verdict and probability beside label, correct or not.

    Keys: ``index`` (position in ``films``), ``name``, ``title``, ``label`` (words), ``verdict``
    (words), ``colour`` (the verdict's), ``p_pneumonia`` (None unless read), ``mark`` (:data:`MARKS`), ``correct`` (bool or
    None), ``p_out_of_fold`` (None unless it carries a training film's class and name, in any folder),
    ``training_name``, ``note``.
    """
    by_class_and_name = {class_and_name(key): p for key, p in out_of_fold.items()}
    rows = []
    for index, (film, item) in enumerate(zip(films, assessments)):
        read = item.status == STATUS_OK and item.p_pneumonia is not None
        verdict = verdict_for(item.p_pneumonia, threshold, classes) if read else None
        correct = is_correct(item, film.expected)
        rows.append({
            "index": index, "name": film.name, "title": film.title,
            "label": label_words(film),
            "verdict": verdict.text if verdict else status_words(item),
            "colour": verdict.colour if verdict else NEUTRAL_COLOUR,
            "p_pneumonia": item.p_pneumonia if read else None,
            "mark": MARKS[correct], "correct": correct,
            "p_out_of_fold": _out_of_fold_of(film, out_of_fold, by_class_and_name),
            "training_name": film.training_name, "note": film.note,
        })
    return rows


def _out_of_fold_of(film: GalleryFilm, out_of_fold: dict[str, float], by_class_and_name: dict[str, float]):
    if not film.training_name:
        return None
    return out_of_fold.get(film.training_name, by_class_and_name.get(class_and_name(film.training_name)))


def class_and_name(path: str) -> str:
    """``NORMAL/x.jpeg`` of ``train/NORMAL/x.jpeg``: a training film is known by its class and file name
    wherever its folder is (the Kermany names carry patient numbers, and patients do not cross splits)."""
    return "/".join(path.split("/")[-2:])


def label_words(film: GalleryFilm) -> str:
    """The folder label, and what a correct reading is when it is a refusal."""
    if film.expected == REFUSED:
        return (f"{film.label} film, should be refused" if film.label else "not a chest film, should be refused")
    return film.label or "no label"


def status_words(item: Assessment) -> str:
    """The verdict column of a film that was not read: refused or unreadable."""
    return "Refused: out of scope" if item.status == STATUS_REJECTED else "Could not be read"


def sort_rows(rows: Sequence[dict], key: str) -> list[dict]:
    """The rows in one of :data:`SORTS`' orders (films without a probability last, in their order).

    Raises:
        ValueError: an unknown sort key.
    """
    if key not in SORTS:
        raise ValueError(f"unknown sort {key!r}; choose from {list(SORTS)}")
    if key == "order":
        return list(rows)
    if key == "incorrect_first":
        rank = {False: 0, None: 1, True: 2}
        return sorted(rows, key=lambda r: (rank[r["correct"]], r["index"]))
    scored = [r for r in rows if r["p_pneumonia"] is not None]
    unscored = [r for r in rows if r["p_pneumonia"] is None]
    return sorted(scored, key=lambda r: r["p_pneumonia"], reverse=key == "p_desc") + unscored


def tally(rows: Sequence[dict]) -> str:
    """``9 of 11 correct, 1 incorrect, 1 with no verdict`` for the gallery's caption."""
    right = sum(r["correct"] is True for r in rows)
    wrong = sum(r["correct"] is False for r in rows)
    none = sum(r["correct"] is None for r in rows)
    text = f"{right} of {len(rows)} correct, {wrong} incorrect"
    return text + (f", {none} with no verdict" if none else "")


def training_share(rows: Sequence[dict]) -> str | None:
    """The warning for a gallery that holds training films (by name), or None when it holds none."""
    known = sum(r["p_out_of_fold"] is not None for r in rows)
    if not known:
        return None
    return (f"{known} of {len(rows)} films carry the names of the model's training films: it learned from them, "
            "so its verdicts on them flatter it. Their out-of-fold probabilities are shown beside them.")


def example_caption(row: dict) -> str:
    """What an example film is, for the line above its result: title, folder label, what it shows, the caveat."""
    where = f"training film `{row['training_name']}`, " if row.get("training_name") else ""
    parts = [f"**Example: {row['title']}** ({where}folder label: {row['label']}). {row['note']}"]
    note = training_film_note(row)
    if note:
        parts.append(note)
    return " ".join(parts)


def training_film_note(row: dict) -> str | None:
    """The caveat of a training film: the shipped model learned from it; its out-of-fold probability.

    None for a film that is not a training film.
    """
    if row.get("p_out_of_fold") is None:
        return None
    shown = (f"; the shipped model, which learned from it, gives {format_percent(row['p_pneumonia'])}"
             if row.get("p_pneumonia") is not None else "")
    return (f"A training film, not a new patient: the model learned from it, so its result here flatters "
            f"the model. Out of fold (the ensemble member that never saw this patient: random patient folds, "
            f"in-distribution) it scored "
            f"{format_percent(row['p_out_of_fold'])}{shown}.")
