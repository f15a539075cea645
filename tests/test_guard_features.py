"""What the guard reads from a film: real films stay clear of the cheap named checks, and the
mirror asymmetry tells frontal films from one-sided crops of them."""

import numpy as np

from pneumo import data
from pneumo.guard import features
from pneumo.guard.thresholds import FLOORS
from pneumo.io import read_film
from pneumo.preprocess import to_model_input


def test_real_films_stay_clear_of_the_cheap_checks(train_dir):
    records = data.find_films(train_dir)
    films = [read_film(r.path) for r in records[:: len(records) // 40]]
    for film in films:
        scores = features.cheap_scores(features.film_view(film))
        statistics = features.film_statistics(to_model_input(film, 192)[..., 0] / 255.0)
        assert film.colourfulness < FLOORS["colour"] / 10
        assert scores["noise"] < FLOORS["noise"] / 5
        assert scores["blank"] < FLOORS["blank"] - 0.1  # spread above 0.3
        assert scores["document"] < FLOORS["document"]
        assert statistics.shape == (49,) and np.isfinite(statistics).all()


def test_mirror_asymmetry_is_low_for_frontal_films_and_high_for_one_lung_field(train_dir):
    records = data.find_films(train_dir)
    chosen = records[:: len(records) // 30][:30]
    images = [to_model_input(read_film(r.path), 160)[..., 0] / 255.0 for r in chosen]
    frontal = np.array([features.mirror_asymmetry(image) for image in images])
    # A proxy for a lateral view, not one: one side of the film (a lung field, the spine at an edge).
    one_side = np.array([features.mirror_asymmetry(to_model_input(image[:, :80], 160)[..., 0] / 255.0)
                         for image in images])
    assert np.median(frontal) < 0.25 and np.median(one_side) > 0.6
    assert np.mean(one_side > frontal) >= 0.9
    mirrored = [features.mirror_asymmetry(image[:, ::-1]) for image in images[:5]]
    np.testing.assert_allclose(mirrored, frontal[:5], atol=1e-6)  # left and right count the same
    symmetric = np.hstack([images[0][:, :80], images[0][:, :80][:, ::-1]])
    assert features.mirror_asymmetry(symmetric) < 1e-3
