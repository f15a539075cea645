"""Seeded copies of Keras models: fresh weights that depend on a seed alone, with no global reseeding."""

from __future__ import annotations

import random


def seeded_copy(model, seeds: random.Random):
    """A copy of a Keras model with fresh weights whose random initialisers take seeds from ``seeds``.

    The copy is made with ``keras.models.clone_model`` (nested models too), so it has the
    layers of ``model`` and new weights. Each layer, in the clone's order, draws
    ``seeds.randint(1, 10**9)`` for every unseeded random initialiser and for its own
    ``seed`` (dropout): the draws Keras makes from Python's global ``random`` for an
    unseeded layer. So for a model whose layers were made in graph order (the compact
    CNN and its ensemble), the copy's weights are those of building it after
    ``keras.utils.set_random_seed(s)`` with ``seeds = random.Random(s)``; nothing global
    is read or reseeded.

    Args:
        model: a built ``keras.Model``.
        seeds: the stream the layers' seeds are drawn from, consumed in layer order.

    Returns:
        A new ``keras.Model`` of the same layers.
    """
    import keras

    def seeded_layer(layer):
        config = layer.get_config()
        for key, value in config.items():
            if (key.endswith("_initializer") and isinstance(value, dict)
                    and value.get("config", {}).get("seed", 0) is None):
                value["config"]["seed"] = seeds.randint(1, 10**9)
        if "seed" in config and config["seed"] is None:
            config["seed"] = seeds.randint(1, 10**9)
        return layer.__class__.from_config(config)

    return keras.models.clone_model(model, clone_function=seeded_layer, recursive=True)
