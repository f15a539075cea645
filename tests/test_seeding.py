"""Seeded copies of Keras models: the weights depend on the seed alone, and nothing global is reseeded."""

import random

import numpy as np

from pneumo.modeling import models
from pneumo.modeling.seeding import seeded_copy


def _weights(model) -> list[np.ndarray]:
    return [w.numpy() for w in model.weights]


def test_a_seeded_copy_has_the_weights_of_a_build_after_reseeding():
    import keras

    keras.utils.set_random_seed(5)
    expected = models.build("cnn", 64, width=8)
    random.seed(1)  # disturb every global generator: the copy must not read them
    np.random.seed(2)
    state = np.random.get_state()
    copy = seeded_copy(models.build("cnn", 64, width=8), random.Random(5))
    after = np.random.get_state()
    assert after[0] == state[0] and np.array_equal(after[1], state[1]) and after[2:] == state[2:]
    assert [w.path for w in copy.weights] == [w.path for w in expected.weights]
    assert all(np.array_equal(a, b) for a, b in zip(_weights(copy), _weights(expected)))


def test_seeded_copies_differ_by_seed_and_match_for_one_seed():
    template = models.build("cnn", 64, width=8)
    first, again, other = (seeded_copy(template, random.Random(seed)) for seed in (3, 3, 4))
    assert all(np.array_equal(a, b) for a, b in zip(_weights(first), _weights(again)))
    kernels = [(a, b) for a, b, w in zip(_weights(first), _weights(other), first.weights) if "kernel" in w.path]
    assert kernels and all(not np.array_equal(a, b) for a, b in kernels)
