"""pneumo.render.demo: the gallery's verdict beside the folder label, and a training film's caveat.

The view-model functions run on hand-built Assessments; the out-of-fold probabilities are
recomputed from the shipped card with NumPy; one test scores the twelve shipped examples with
the shipped classifier and checks every reading through the gallery rows.
"""

from __future__ import annotations

import numpy as np
import pytest

from pneumo import store
from pneumo.examples import REFUSED, load_examples
from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, STATUS_REJECTED, Assessment
from pneumo.render.demo import (
    MARKS,
    SORTS,
    GalleryFilm,
    example_films,
    folder_films,
    gallery_rows,
    is_correct,
    label_words,
    out_of_fold_probabilities,
    sort_rows,
    status_words,
    tally,
    training_film_note,
    training_share,
)
from pneumo.render.wording import format_percent, verdict_for

THRESHOLD = 0.34
CLASSES = ("NORMAL", "PNEUMONIA")
N_TRAIN = 5216


@pytest.fixture(scope="module")
def card() -> dict:
    return store.read_card()


def ok(p: float, source: str = "x.jpeg") -> Assessment:
    """A film read at p, labelled at :data:`THRESHOLD`."""
    return Assessment(source, STATUS_OK, p_pneumonia=p, label="PNEUMONIA" if p >= THRESHOLD else "NORMAL")


def rejected(source: str = "x.jpeg", p: float | None = 0.8) -> Assessment:
    """A film the guard refused (its p still computed, as the image guard leaves it)."""
    return Assessment(source, STATUS_REJECTED, p_pneumonia=p, message="The film appears to be rotated.")


def error(source: str = "x.jpeg") -> Assessment:
    return Assessment(source, STATUS_ERROR, message="The file is empty.")


def film(name: str, label: str | None, expected: str | None = None, training_name: str | None = None) -> GalleryFilm:
    return GalleryFilm(name, name.upper(), label, expected or label, training_name)


def sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


# ---------------------------------------------------------------------------------------
# Out-of-fold probabilities from the card.
# ---------------------------------------------------------------------------------------


def test_out_of_fold_probabilities_are_the_random_scheme_logits_calibrated(card):
    assert card["ensemble"]["scheme"] == "random"
    probs = out_of_fold_probabilities(card)
    records = card["out_of_fold"]
    assert len(probs) == N_TRAIN == len(records["films"])
    assert list(probs) == records["films"]
    for index in (0, 1, 2, 1000, 2500, N_TRAIN - 1):
        name = records["films"][index]
        expected = sigmoid(np.float64(records["random_logit"][index]) / card["temperature"])
        assert probs[name] == pytest.approx(expected, rel=1e-12, abs=1e-15), name
        # Not the block scheme's logit, nor the uncalibrated one.
        assert probs[name] != pytest.approx(sigmoid(np.float64(records["random_logit"][index])), abs=1e-6)
    assert probs["train/NORMAL/IM-0115-0001.jpeg"] == pytest.approx(sigmoid(-3.72525 / card["temperature"]))
    assert probs["train/NORMAL/IM-0115-0001.jpeg"] < 0.01
    assert all(0.0 < p < 1.0 for p in probs.values())


def test_out_of_fold_probabilities_follow_the_card_scheme(card):
    block = {**card, "ensemble": {**card["ensemble"], "scheme": "block"}}
    probs = out_of_fold_probabilities(block)
    name = card["out_of_fold"]["films"][7]
    assert probs[name] == pytest.approx(sigmoid(np.float64(card["out_of_fold"]["block_logit"][7])
                                                / card["temperature"]))


@pytest.mark.parametrize("changes", [
    {"out_of_fold": None}, {"out_of_fold": {}}, {"out_of_fold": {"films": [], "random_logit": []}},
    {"out_of_fold": {"films": ["train/NORMAL/a.jpeg"]}},  # no logits for the scheme
    {"temperature": None},
], ids=["none", "empty", "no-films", "no-logits", "no-temperature"])
def test_a_card_without_out_of_fold_records_gives_none(changes):
    card = {"temperature": 0.64, "ensemble": {"scheme": "random"},
            "out_of_fold": {"films": ["train/NORMAL/a.jpeg"], "random_logit": [0.0]}}
    assert out_of_fold_probabilities(card) == {"train/NORMAL/a.jpeg": 0.5}
    assert out_of_fold_probabilities({**card, **changes}) == {}


def test_a_card_without_a_scheme_reads_the_random_logits():
    card = {"temperature": 2.0, "out_of_fold": {"films": ["train/NORMAL/a.jpeg"], "random_logit": [2.0],
                                                "block_logit": [-2.0]}}
    assert out_of_fold_probabilities(card) == {"train/NORMAL/a.jpeg": pytest.approx(sigmoid(1.0))}


def test_a_card_with_no_out_of_fold_key_gives_none():
    assert out_of_fold_probabilities({"temperature": 1.0, "threshold": 0.5}) == {}


# ---------------------------------------------------------------------------------------
# Correct, incorrect or no verdict.
# ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("item", "expected", "correct"), [
    (ok(0.9), "PNEUMONIA", True),
    (ok(0.1), "NORMAL", True),
    (ok(0.1), "PNEUMONIA", False),
    (ok(0.9), "NORMAL", False),
    (ok(THRESHOLD), "PNEUMONIA", True),  # at the threshold: pneumonia (review band)
    (rejected(), "PNEUMONIA", None),  # a chest film refused: no verdict to judge
    (rejected(p=None), "NORMAL", None),
    (error(), "NORMAL", None),
    (error(), REFUSED, None),  # unreadable is not a refusal
    (rejected(), REFUSED, True),
    (ok(0.9), REFUSED, False),  # should have been refused, was read
    (ok(0.1), REFUSED, False),
    (Assessment("x.jpeg", STATUS_OK, p_pneumonia=0.5, label=None), "PNEUMONIA", None),
], ids=["pneumonia-right", "normal-right", "normal-wrong", "pneumonia-wrong", "at-threshold",
        "chest-refused", "chest-refused-no-p", "error", "error-expected-refusal", "refusal-right",
        "read-not-refused", "read-normal-not-refused", "no-label"])
def test_is_correct(item, expected, correct):
    assert is_correct(item, expected) is correct


def test_gallery_rows_keep_order_index_and_marks():
    films = [film("a", "NORMAL"), film("b", "NORMAL"), film("c", "PNEUMONIA"), film("d", "NORMAL"),
             film("e", "PNEUMONIA", REFUSED), film("f", None, REFUSED)]
    items = [ok(0.05), ok(0.9), rejected(p=0.7), error(), rejected(p=0.95), ok(0.2)]
    rows = gallery_rows(films, items, THRESHOLD, CLASSES, {})
    assert [r["index"] for r in rows] == list(range(6))
    assert [r["name"] for r in rows] == list("abcdef")
    assert [r["title"] for r in rows] == list("ABCDEF")
    assert [r["correct"] for r in rows] == [True, False, None, None, True, False]
    assert [r["mark"] for r in rows] == ["correct", "incorrect", "no verdict", "no verdict", "correct",
                                         "incorrect"]
    assert [r["p_pneumonia"] for r in rows] == [0.05, 0.9, None, None, None, 0.2]
    assert rows[0]["verdict"] == verdict_for(0.05, THRESHOLD, CLASSES).text == "No pneumonia detected, 5%"
    assert rows[1]["verdict"] == "Pneumonia likely, 90%"
    assert rows[2]["verdict"] == rows[4]["verdict"] == "Refused: out of scope"
    assert rows[3]["verdict"] == "Could not be read"
    assert [r["label"] for r in rows] == ["NORMAL", "NORMAL", "PNEUMONIA", "NORMAL",
                                          "PNEUMONIA film, should be refused", "not a chest film, should be refused"]
    assert all(r["p_out_of_fold"] is None for r in rows)
    assert set(MARKS.values()) == {"correct", "incorrect", "no verdict"}


def test_rows_carry_an_out_of_fold_probability_only_for_a_known_training_name():
    films = [film("a", "NORMAL", training_name="train/NORMAL/a.jpeg"),
             film("b", "NORMAL", training_name="train/NORMAL/unknown.jpeg"),
             film("c", "NORMAL"),  # no training name: a new patient
             film("d", "PNEUMONIA", REFUSED, training_name="train/PNEUMONIA/d.jpeg")]
    oof = {"train/NORMAL/a.jpeg": 0.03, "train/PNEUMONIA/d.jpeg": 0.97, "c": 0.5}
    rows = gallery_rows(films, [ok(0.01), ok(0.02), ok(0.03), rejected()], THRESHOLD, CLASSES, oof)
    assert [r["p_out_of_fold"] for r in rows] == [0.03, None, None, 0.97]
    # a copy of the training folders elsewhere (or the train folder itself as the root) is still known
    copies = [film("a", "NORMAL", training_name="demo-set/NORMAL/a.jpeg"),
              film("d", "PNEUMONIA", training_name="PNEUMONIA/d.jpeg"),
              film("e", "PNEUMONIA", training_name="demo-set/NORMAL/d.jpeg")]  # another class: another film
    rows = gallery_rows(copies, [ok(0.01), ok(0.9), ok(0.9)], THRESHOLD, CLASSES, oof)
    assert [r["p_out_of_fold"] for r in rows] == [0.03, 0.97, None]


def test_rows_stop_at_the_shorter_list():
    rows = gallery_rows([film("a", "NORMAL"), film("b", "NORMAL")], [ok(0.1)], THRESHOLD, CLASSES, {})
    assert [r["name"] for r in rows] == ["a"]


def test_a_review_band_reading_is_shown_as_review():
    (row,) = gallery_rows([film("a", "PNEUMONIA")], [ok(0.4)], THRESHOLD, CLASSES, {})
    assert row["correct"] is True and row["verdict"] == verdict_for(0.4, THRESHOLD, CLASSES).text
    assert row["verdict"].endswith("40%") and "Pneumonia likely" not in row["verdict"]


def test_label_and_status_words():
    assert label_words(film("a", "NORMAL")) == "NORMAL"
    assert label_words(film("a", None, "NORMAL")) == "no label"
    assert label_words(film("a", "PNEUMONIA", REFUSED)) == "PNEUMONIA film, should be refused"
    assert label_words(film("a", None, REFUSED)) == "not a chest film, should be refused"
    assert status_words(rejected()) == "Refused: out of scope"
    assert status_words(error()) == "Could not be read"


def test_example_films_give_a_training_name_only_to_copies():
    examples = load_examples()
    films = example_films(examples)
    assert [f.name for f in films] == [e.name for e in examples]
    for example, item in zip(examples, films):
        assert (item.title, item.label, item.expected) == (example.title, example.label, example.expected)
        assert item.training_name == (example.source if example.kind not in ("rotated", "non-film") else None)
        assert example.why in item.note and (example.made in item.note)
    rotated = next(f for f, e in zip(films, examples) if e.kind == "rotated")
    assert "counter-clockwise" in rotated.note and rotated.expected == REFUSED


def test_folder_films_are_named_under_the_data_root():
    films = folder_films(["train/NORMAL/a.jpeg", "train/PNEUMONIA/person1_virus_1.jpeg"], ["NORMAL", "PNEUMONIA"])
    assert films == [GalleryFilm("train/NORMAL/a.jpeg", "a.jpeg", "NORMAL", "NORMAL", "train/NORMAL/a.jpeg"),
                     GalleryFilm("train/PNEUMONIA/person1_virus_1.jpeg", "person1_virus_1.jpeg", "PNEUMONIA",
                                 "PNEUMONIA", "train/PNEUMONIA/person1_virus_1.jpeg")]


# ---------------------------------------------------------------------------------------
# Sorting, the tally and the training-film note.
# ---------------------------------------------------------------------------------------


@pytest.fixture
def mixed_rows() -> list[dict]:
    films = [film("a", "NORMAL"), film("b", "PNEUMONIA"), film("c", "NORMAL"), film("d", "PNEUMONIA"),
             film("e", "NORMAL"), film("f", "PNEUMONIA"), film("g", None, REFUSED)]
    items = [ok(0.2), error(), ok(0.9), ok(0.05), rejected(), ok(0.6), rejected()]
    return gallery_rows(films, items, THRESHOLD, CLASSES, {})


def names(rows) -> str:
    return "".join(r["name"] for r in rows)


def test_sort_by_probability_puts_unscored_rows_last_in_their_order(mixed_rows):
    assert names(sort_rows(mixed_rows, "p_desc")) == "cfadbeg"
    assert names(sort_rows(mixed_rows, "p_asc")) == "dafcbeg"


def test_sort_incorrect_first(mixed_rows):
    assert [r["correct"] for r in mixed_rows] == [True, None, False, False, None, True, True]
    ordered = sort_rows(mixed_rows, "incorrect_first")
    assert names(ordered) == "cdbeafg"
    assert [r["correct"] for r in ordered] == [False, False, None, None, True, True, True]


def test_sort_as_listed_is_a_new_list_in_order(mixed_rows):
    ordered = sort_rows(mixed_rows, "order")
    assert ordered == mixed_rows and ordered is not mixed_rows


def test_sorting_leaves_the_rows_alone(mixed_rows):
    before = [dict(r) for r in mixed_rows]
    for key in SORTS:
        assert sorted(names(sort_rows(mixed_rows, key))) == list("abcdefg")
    assert mixed_rows == before


def test_an_unknown_sort_is_refused(mixed_rows):
    with pytest.raises(ValueError, match=r"unknown sort 'p'; choose from") as caught:
        sort_rows(mixed_rows, "p")
    assert all(key in str(caught.value) for key in SORTS)


def test_ties_keep_their_order():
    rows = gallery_rows([film(n, "NORMAL") for n in "abc"], [ok(0.1), ok(0.1), ok(0.1)], THRESHOLD, CLASSES, {})
    assert names(sort_rows(rows, "p_desc")) == names(sort_rows(rows, "p_asc")) == "abc"


def test_tally(mixed_rows):
    assert tally(mixed_rows) == "3 of 7 correct, 2 incorrect, 2 with no verdict"
    assert tally([r for r in mixed_rows if r["correct"] is not None]) == "3 of 5 correct, 2 incorrect"
    assert tally([]) == "0 of 0 correct, 0 incorrect"


def test_no_training_note_without_an_out_of_fold_probability():
    (row,) = gallery_rows([film("a", "NORMAL")], [ok(0.1)], THRESHOLD, CLASSES, {})
    assert training_film_note(row) is None
    assert training_film_note({"p_pneumonia": 0.1}) is None


def test_the_training_note_gives_both_probabilities():
    (row,) = gallery_rows([film("a", "NORMAL", training_name="train/NORMAL/a.jpeg")], [ok(0.0123)],
                          THRESHOLD, CLASSES, {"train/NORMAL/a.jpeg": 0.417})
    note = training_film_note(row)
    assert format_percent(0.417) == "42%" and format_percent(0.0123) == "1%"
    assert "scored 42%" in note and "gives 1%" in note
    assert note.index("42%") < note.index("1%")  # out of fold first, then the shipped model
    assert "training film" in note.lower() and note.endswith(".")


def test_the_training_note_of_a_refused_training_film_has_only_the_out_of_fold_figure():
    (row,) = gallery_rows([film("a", "NORMAL", training_name="train/NORMAL/a.jpeg")], [rejected(p=0.8)],
                          THRESHOLD, CLASSES, {"train/NORMAL/a.jpeg": 0.999})
    note = training_film_note(row)
    assert f"scored {format_percent(0.999)}." in note and ">99%" in note
    assert "gives" not in note and "80%" not in note


# ---------------------------------------------------------------------------------------
# The shipped examples through the shipped classifier.
# ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def shipped_rows():
    """The examples, the shipped classifier's assessments of them, their gallery rows and the card's OOF map."""
    from pneumo.inference.predict import Classifier

    loaded = store.load()
    classifier = Classifier(loaded)
    examples = load_examples()
    items = list(classifier.assess_many((e.name, e.getvalue()) for e in examples))
    oof = out_of_fold_probabilities(loaded.card)
    return examples, items, gallery_rows(example_films(examples), items, classifier.threshold,
                                         loaded.card["classes"], oof), oof


def test_every_shipped_example_is_read_correctly(shipped_rows):
    examples, items, rows, _ = shipped_rows
    assert [r["name"] for r in rows] == [e.name for e in examples]
    assert [r["correct"] for r in rows] == [True] * 12, [(r["name"], r["verdict"]) for r in rows]
    assert tally(rows) == "12 of 12 correct, 0 incorrect"
    for example, item, row in zip(examples, items, rows):
        if example.expected == REFUSED:
            assert item.status == STATUS_REJECTED and row["verdict"] == "Refused: out of scope"
            assert row["p_pneumonia"] is None and item.out_of_scope_reason
        else:
            assert item.status == STATUS_OK and item.label == example.label, example.name
            assert row["p_pneumonia"] == item.p_pneumonia
    rotated = next(item for e, item in zip(examples, items) if e.kind == "rotated")
    assert "turned by 90 degrees" in rotated.message


def test_the_training_copies_carry_their_out_of_fold_probability(shipped_rows, card):
    examples, _, rows, oof = shipped_rows
    threshold = card["threshold"]
    for example, row in zip(examples, rows):
        if not example.is_copy:
            assert row["p_out_of_fold"] is None and training_film_note(row) is None, example.name
            continue
        assert row["p_out_of_fold"] == oof[example.source], example.name
        assert format_percent(row["p_out_of_fold"]) in training_film_note(row)
        if example.kind == "normal":
            assert row["p_out_of_fold"] < 0.05
        elif example.kind in ("bacterial", "viral"):
            assert row["p_out_of_fold"] > 0.95
        else:  # the soft one: out of fold in the review band, between the threshold and 50%
            assert example.kind == "soft" and threshold <= row["p_out_of_fold"] < 0.5


def test_training_share_counts_the_films_with_an_out_of_fold_figure() -> None:
    rows = [{"p_out_of_fold": 0.2}, {"p_out_of_fold": None}, {"p_out_of_fold": 0.9}]
    assert training_share(rows).startswith("2 of 3 films carry the names of the model's training films")
    assert training_share([{"p_out_of_fold": None}]) is None
