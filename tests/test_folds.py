"""Folds: patient-grouped random folds, leave-block-out, held-out films recovered from a card, films to measure."""

from collections import Counter
from pathlib import Path

import numpy as np
import pytest

from pneumo import data, folds


@pytest.fixture(scope="module")
def records(train_dir):
    return data.find_films(train_dir.parent, splits=("train", "val"))


def test_patient_series_reads_the_number_of_each_name_series():
    assert folds.patient_series("person1000") == ("person", 1000)
    assert folds.patient_series("NORMAL2-IM-1427") == ("NORMAL2-IM-", 1427)
    assert folds.patient_series("IM-0115") == ("IM-", 115)
    assert folds.patient_series("scan") == ("scan", 0)


@pytest.mark.parametrize("scheme", folds.SCHEMES)
def test_no_patient_is_in_two_folds_and_every_film_has_one(records, scheme):
    assigned = folds.assign_folds(records, scheme, 5)
    assert sorted(set(assigned.tolist())) == [0, 1, 2, 3, 4]
    fold_of_patient = {}
    for record, fold in zip(records, assigned):
        assert fold_of_patient.setdefault(record.patient, fold) == fold, record.patient


def test_random_folds_keep_class_and_subtype_shares(records):
    assigned = folds.random_folds(records, 5, seed=0)
    overall = Counter(folds.stratum(r) for r in records)
    for fold in range(5):
        held = [r for r, f in zip(records, assigned) if f == fold]
        counts = Counter(folds.stratum(r) for r in held)
        for name, total in overall.items():
            assert counts[name] / len(held) == pytest.approx(total / len(records), abs=0.02), (fold, name)
    assert np.array_equal(assigned, folds.random_folds(list(reversed(records))[::-1], 5, seed=0))
    assert not np.array_equal(assigned, folds.random_folds(records, 5, seed=1))


def test_blocks_hold_consecutive_patient_numbers_of_each_series(records):
    assigned = folds.block_folds(records, 5)
    spans = {}
    for record, block in zip(records, assigned):
        series, number = folds.patient_series(record.patient)
        low, high = spans.get((series, block), (number, number))
        spans[(series, block)] = (min(low, number), max(high, number))
    for series in {s for s, _ in spans}:
        ordered = [spans[(series, b)] for b in range(5) if (series, b) in spans]
        assert len(ordered) == 5, series
        for (_, high), (low, _) in zip(ordered, ordered[1:]):
            assert high < low, series  # block b ends before block b + 1 starts
    # Both classes in every block, so each can be scored on its own.
    for block in range(5):
        assert {r.label for r, b in zip(records, assigned) if b == block} == {0, 1}


def test_an_unknown_scheme_or_too_many_folds_is_refused(records):
    with pytest.raises(ValueError, match="unknown fold scheme 'time'"):
        folds.assign_folds(records, "time")
    with pytest.raises(ValueError, match="cannot fill 5 folds"):
        folds.assign_folds(records[:3], "random")


def test_held_out_records_come_back_from_an_ensemble_card_and_only_from_its_data(records, train_dir, tmp_path):
    assigned = folds.random_folds(records, 5, seed=0)
    card = {"name": "m", "training": {"cross_validation": {
        "scheme": "random", "k": 5, "seed": 0, "folds_sha256": folds.folds_sha256(records, assigned)}}}
    held, again = folds.held_out_records(card, train_dir.parent)
    assert [r.path for r in held] == [r.path for r in records] and np.array_equal(again, assigned)
    train, first = folds.training_records(card, train_dir.parent)
    assert {r.patient for r in train}.isdisjoint({r.patient for r in first})
    assert len(train) + len(first) == len(records)
    other = tmp_path / "other" / "NORMAL"
    other.mkdir(parents=True)
    for record in records[:12]:
        (other / record.path.name).symlink_to(record.path)
    (tmp_path / "other" / "PNEUMONIA").mkdir()
    for record in records[-12:]:
        (tmp_path / "other" / "PNEUMONIA" / record.path.name).symlink_to(record.path)
    with pytest.raises(ValueError, match="does not give the films model 'm' was cross-validated on"):
        folds.held_out_records(card, tmp_path / "other")


def test_held_out_records_of_a_single_model_are_its_validation_split(records, train_dir):
    _, val = data.split_by_patient(records, 0.2, 0)
    card = {"training": {"split": {"val_fraction": 0.2, "seed": 0,
                                   "validation_films_sha256": folds.names_sha256(val)}}}
    held, assigned = folds.held_out_records(card, train_dir.parent)
    assert [r.path for r in held] == [r.path for r in val] and not assigned.any()
    with pytest.raises(ValueError, match="records no training split"):
        folds.held_out_records({"name": "x", "training": {}}, train_dir.parent)


# --- the films a measurement runs on ---------------------------------------------------


def _records(n_normal: int, n_pneumonia: int) -> list[data.FilmRecord]:
    return ([data.FilmRecord(Path(f"n{i}.jpeg"), 0, "train", f"n{i}", None) for i in range(n_normal)]
            + [data.FilmRecord(Path(f"p{i}.jpeg"), 1, "train", f"p{i}", None) for i in range(n_pneumonia)])


@pytest.mark.parametrize("limit, expected", [(20, (5, 15)), (4, (1, 3)), (2, (1, 1)), (500, (25, 75))])
def test_stratified_sample_keeps_class_shares(limit, expected):
    records = _records(25, 75)
    chosen = folds.stratified_sample(records, limit, seed=1)
    counts = (sum(r.label == 0 for r in chosen), sum(r.label == 1 for r in chosen))
    assert counts == expected and len(set(chosen)) == len(chosen)
    assert chosen == folds.stratified_sample(records, limit, seed=1)
    assert chosen != folds.stratified_sample(records, limit, seed=2) or limit >= 100


def _dummy_kaggle_root(root: Path) -> Path:
    """Empty files with Kermany names: enough for finding and splitting, never decoded."""
    for split, per_class in (("train", 10), ("val", 2), ("test", 3)):
        for name in data.CLASSES:
            folder = root / split / name
            folder.mkdir(parents=True)
            for i in range(per_class):
                stem = f"person{i}_bacteria_{i}" if name == "PNEUMONIA" else f"IM-{i:04d}-0001"
                (folder / f"{stem}_{split}.jpeg").write_bytes(b"")
    return root


def test_records_to_measure_finds_the_models_validation_films(tmp_path, tiny_card):
    root = _dummy_kaggle_root(tmp_path / "chest_xray")
    records = data.find_films(root, splits=("train", "val"))
    train, validation = data.split_by_patient(records, 0.25, 7)
    card = {**tiny_card, "training": {"split": {"val_fraction": 0.25, "seed": 7,
                                                "validation_films_sha256": folds.names_sha256(validation)}}}
    chosen, films = folds.records_to_measure(card, root, None)
    assert films == "validation"
    assert {r.path.name for r in chosen} == {r.path.name for r in validation}
    assert not {r.path.name for r in chosen} & {r.path.name for r in train}
    inside, films = folds.records_to_measure(card, root / "train", "validation")
    assert films == "validation" and {r.path.name for r in inside} <= {r.path.name for r in validation}
    assert all(r.split == "train" for r in inside)


def test_records_to_measure_refuses_an_unknown_split(tmp_path, tiny_card):
    root = _dummy_kaggle_root(tmp_path / "chest_xray")
    with pytest.raises(ValueError, match="unknown split 'holdout'"):
        folds.records_to_measure(tiny_card, root, "holdout")
    with pytest.raises(FileNotFoundError, match="No such data folder"):
        folds.records_to_measure(tiny_card, tmp_path / "nowhere", None)


def test_records_to_measure_without_a_recorded_split(tmp_path, tiny_card):
    root = _dummy_kaggle_root(tmp_path / "chest_xray")
    chosen, films = folds.records_to_measure(tiny_card, root, None)
    assert films == "test" and {r.split for r in chosen} == {"test"}
    with pytest.raises(ValueError, match="does not hold this model's training data"):
        folds.records_to_measure(tiny_card, root, "validation")
    assert folds.records_to_measure(tiny_card, root, "all")[1] == "all"


def test_too_few_patients_say_why_in_words():
    from pneumo.data import FilmRecord

    def record(name, label, patient):
        return FilmRecord(Path(name), label, "train", patient, None)

    one = [record("a.jpeg", 0, "IM-1")] + [record(f"p{i}.jpeg", 1, f"person{i}") for i in range(5)]
    assert folds.too_few_patients(one, 5) == "it has 1 NORMAL patient and each of the 5 needs one"
    enough = [record(f"n{i}.jpeg", 0, f"IM-{i}") for i in range(5)] + one[1:]
    assert folds.too_few_patients(enough, 5, ("random", "block")) is None
