import io

import numpy as np
import pytest
from PIL import Image

from pneumo.predict import STATUS_ERROR, STATUS_OK, Classifier
from pneumo.preprocess import to_model_input
from pneumo.io import read_film


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
    assert list(row) == ["path", "status", "p_pneumonia", "label", "message", "site"]
    assert row["path"] == "x.jpeg" and row["status"] == "ok"
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
