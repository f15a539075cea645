"""Folds: patient-grouped random folds, leave-block-out, and held-out films recovered from a card."""

from collections import Counter

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
