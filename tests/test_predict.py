import io

import numpy as np
import pytest
from PIL import Image

from pneumo.inference.predict import STATUS_ERROR, STATUS_OK, Classifier
from pneumo.io import read_film
from pneumo.preprocess import to_model_input


@pytest.fixture(scope="module")
def classifier(tiny_model):
    return Classifier(tiny_model)


def test_one_bad_file_never_stops_the_batch(classifier, normal_film, pneumonia_film):
    items = [("a.jpeg", normal_film), ("broken.png", b"\x89PNG\r\n\x1a\n broken"),
             ("b.jpeg", pneumonia_film), ("empty.jpeg", b""), ("c.jpeg", normal_film.read_bytes())]
    results = list(classifier.assess_many(items, batch_size=2))
    assert [r.source for r in results] == [name for name, _ in items]
    assert [r.status for r in results] == [STATUS_OK, STATUS_ERROR, STATUS_OK, STATUS_ERROR, STATUS_OK]
    assert results[3].message == "The file is empty."
    assert results[0].p_pneumonia == pytest.approx(results[4].p_pneumonia)  # path and bytes agree


def test_batches_give_the_same_numbers_as_single_films(classifier, normal_film, pneumonia_film):
    batch = [r.p_pneumonia for r in classifier.assess_many(
        [("n", normal_film), ("p", pneumonia_film)], batch_size=32)]
    single = [classifier.assess(normal_film).p_pneumonia, classifier.assess(pneumonia_film).p_pneumonia]
    np.testing.assert_allclose(batch, single, atol=1e-6)
    film = read_film(normal_film)
    assert classifier.predict_film(film) == pytest.approx(single[0], abs=1e-6)


def test_label_follows_the_card_threshold(classifier):
    assert classifier.label_for(classifier.threshold) == "PNEUMONIA"
    assert classifier.label_for(np.nextafter(classifier.threshold, 0)) == "NORMAL"


def test_csv_row_contract(classifier, normal_film):
    row = classifier.assess(normal_film, name="x.jpeg").row()
    assert list(row) == ["path", "status", "p_pneumonia", "label", "p_bacterial", "pattern", "message", "site"]
    assert row["path"] == "x.jpeg" and row["status"] == "ok"
    assert row["p_bacterial"] == row["pattern"] == ""  # the tiny model has no subtype model
    assert 0.0 <= float(row["p_pneumonia"]) <= 1.0 and row["label"] in ("NORMAL", "PNEUMONIA")
    assert row["site"] == ""


def test_uncertainty_interval_brackets_plausible_values(classifier, pneumonia_film):
    film = read_film(pneumonia_film)
    low, high = classifier.uncertainty(film)
    assert 0.0 <= low <= high <= 1.0
    assert (low, high) == classifier.uncertainty(film)  # reproducible


def test_wrong_input_shape_is_refused(classifier):
    with pytest.raises(ValueError, match="shape"):
        classifier.predict_inputs(np.zeros((1, 10, 10, 1)))


def test_a_large_grayscale_original_is_read_and_resized(classifier):
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (1400, 1100), dtype=np.uint8)).save(buffer, "PNG")
    result = classifier.assess(buffer.getvalue(), name="big.png")
    assert result.status == STATUS_OK and result.film.size == (1100, 1400)
    assert to_model_input(result.film, classifier.size).shape == (64, 64, 1)


@pytest.mark.parametrize(("p", "threshold", "label", "review"), [
    (0.2111, 0.2112, "NORMAL", False), (0.2112, 0.2112, "PNEUMONIA", True), (0.4999, 0.2112, "PNEUMONIA", True),
    (0.5, 0.2112, "PNEUMONIA", False), (0.49, 0.74, "NORMAL", False), (0.5, 0.74, "NORMAL", True),
    (0.74, 0.74, "PNEUMONIA", False), (0.4999, 0.5, "NORMAL", False), (0.5, 0.5, "PNEUMONIA", False),
])
def test_the_verdict_rule_at_the_threshold_and_the_review_band(p, threshold, label, review):
    from pneumo.inference.predict import in_review_band, label_at

    assert label_at(p, threshold) == label
    assert in_review_band(p, threshold) is review


def test_write_csv_writes_the_header_then_flushes_each_row():
    from pneumo.inference.predict import (
        CSV_FIELDS,
        STATUS_REJECTED,
        Assessment,
        write_csv,
    )

    flushed = []

    class Recorder(io.StringIO):
        def flush(self):
            flushed.append(self.getvalue())

    handle = Recorder()
    write_csv(handle, [Assessment("a.png", STATUS_OK, 0.91236, "PNEUMONIA", site="north",
                                  p_bacterial=0.81234, pattern="bacterial"),
                       Assessment("cat.jpg", STATUS_REJECTED, 0.3, message="Not a chest film.")])
    lines = handle.getvalue().splitlines()
    assert lines == [",".join(CSV_FIELDS), "a.png,ok,0.9124,PNEUMONIA,0.8123,bacterial,,north",
                     "cat.jpg,rejected,,,,,Not a chest film.,"]
    assert [len(text.splitlines()) for text in flushed] == [2, 3]


def test_the_classifier_is_complete_when_built_and_never_changes(tiny_model, pneumonia_film):
    """One Classifier is shared by every session: using it must not change it."""
    shared = Classifier(tiny_model)
    before = dict(vars(shared))
    film = read_film(pneumonia_film)
    shared.uncertainty(film)
    list(shared.assess_many([("p", pneumonia_film)]))
    shared.predict_film(film)
    after = vars(shared)
    assert after.keys() == before.keys() and all(after[key] is before[key] for key in before)


def test_a_flagged_film_in_scope_is_read_with_the_guards_warning(classifier, normal_film, monkeypatch):
    from pneumo.guard.detector import WARNING, ScopeVerdict

    plain = classifier.assess(normal_film)
    flagged = ScopeVerdict(True, "", "", -0.5, (), WARNING, ("features",))
    monkeypatch.setattr(classifier, "_judge", lambda inputs, films: (np.full(len(films), plain.p_pneumonia),
                                                                     [flagged] * len(films)))
    result = classifier.assess(normal_film)
    assert result.status == STATUS_OK and result.label == plain.label
    assert result.warnings == (WARNING,) and result.message.startswith(WARNING)
    assert result.row()["message"].startswith(WARNING)
    assert plain.warnings == ()
