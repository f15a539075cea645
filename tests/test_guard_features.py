"""What the guard reads from a film: real films stay clear of the cheap named checks."""

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
