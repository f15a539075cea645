"""pneumo.render.terminal: the figures as the command line prints them."""

import numpy as np

from pneumo.render.terminal import format_evaluation
from pneumo.stats import metrics


def _printed(labels, probs, subtypes):
    figures = metrics.evaluate(np.array(labels), np.array(probs), 0.5, subtypes=subtypes)
    return format_evaluation({**figures, "model": "m", "data": "films", "threshold": 0.5, "unreadable": []})


def test_a_folder_of_pneumonia_films_only_prints_normal_recall_as_undefined_and_subtypes_spaced():
    text = _printed([1, 1, 1, 1], [0.9, 0.8, 0.3, 0.7], ["bacteria", "bacteria", "virus", "virus"])
    normal = next(line for line in text.splitlines() if line.startswith("NORMAL"))
    assert normal.split()[2:4] == ["n/a", "n/a"] and normal.split()[-1] == "0"
    assert "recall bacteria 1.0000 (2 films)" in text and "recall virus 0.5000 (2 films)" in text


def test_both_classes_print_their_figures():
    text = _printed([0, 0, 1, 1], [0.1, 0.6, 0.9, 0.8], [None, None, "bacteria", "virus"])
    normal = next(line for line in text.splitlines() if line.startswith("NORMAL"))
    assert "n/a" not in normal and normal.split()[2] == "0.500"  # recall of NORMAL: 1 of 2
