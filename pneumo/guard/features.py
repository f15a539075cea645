"""What the guard reads from an image: cheap named scores, film statistics, the 32 x 32 layout
vector, the mirror asymmetry, and the model's own pooled features.

The cheap named checks (noise, blank, document) look at the film itself at 256 x 256,
whatever the model's input size, so their reason describes the file that was given.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pneumo.io import Film
from pneumo.preprocess import to_model_input

POOL_LAYER = "pool"
"""The model layer whose output the ``features`` check reads."""
VIEW_SIDE = 256
"""The side at which the cheap named checks look at a film."""
LAYOUT_SIDE = 32
PROFILE_BINS = 16
LIGHT_PAGE = 0.6  # median intensity above which an image is a light page (document check)
EDGE_STEP = 0.1  # a step between neighbouring pixels counted as an edge (0-1 scale)
MIRROR_SIDE = 40
MIRROR_SHIFTS = range(-5, 6)  # in MIRROR_SIDE pixels: a spine up to an eighth of the width off centre
MIRROR_TILTS = (-6.0, -3.0, 0.0, 3.0, 6.0)  # degrees: patients are seldom square to the plate
MIRROR_ROWS = (4, 36)  # leave out the top and bottom tenth (labels, neck, abdomen)

_QUANTILES = np.linspace(0.02, 0.98, 13)


# ---------------------------------------------------------------- features of one image


def shrink(image: np.ndarray, side: int) -> np.ndarray:
    """Box-average a 2-D float image to (side, side)."""
    resized = Image.fromarray(np.asarray(image, dtype=np.float32)).resize(
        (side, side), Image.Resampling.BOX)
    return np.asarray(resized, dtype=np.float32)


def layout_vector(image: np.ndarray) -> np.ndarray:
    """The film at 32 x 32, standardised to mean 0 and sd 1; returns (1024,) float32."""
    small = shrink(image, LAYOUT_SIDE)
    return ((small - small.mean()) / (small.std() + 1e-3)).ravel()


def _high_frequency(step_x: np.ndarray, step_y: np.ndarray, variance: float) -> float:
    """1 - lag-one correlation of neighbouring pixels: near 0 for films, 1 for white noise."""
    if variance <= 1e-8:
        return 0.0
    return float(0.25 * ((step_x ** 2).mean() + (step_y ** 2).mean()) / variance)


def cheap_scores(view: np.ndarray) -> dict[str, float]:
    """The cheap named checks' scores (higher is further out of scope).

    Args:
        view: the film at (256, 256), float in [0, 1] (see :func:`film_view`).

    Returns:
        {"blank": minus the 1st-to-99th percentile spread, "noise": the high-frequency
        share, "document": the share of edge pixels when the image is a light page, else 0}.
    """
    x = np.asarray(view, dtype=np.float64)
    low, median, high = np.quantile(x, [0.01, 0.5, 0.99])
    step_x, step_y = np.abs(np.diff(x, axis=1)), np.abs(np.diff(x, axis=0))
    edges = float((np.maximum(step_x[:-1], step_y[:, :-1]) > EDGE_STEP).mean())
    return {"blank": float(low - high), "noise": _high_frequency(step_x, step_y, x.var()),
            "document": edges if median >= LIGHT_PAGE else 0.0}


def film_statistics(image: np.ndarray) -> np.ndarray:
    """The 49 film statistics of one model input.

    Args:
        image: (S, S) float in [0, 1], the model input divided by 255.

    Returns:
        (49,): 13 intensity quantiles, log edge strength at three quantiles, log
        high-frequency share, and 16-bin column and row profiles.
    """
    x = np.asarray(image, dtype=np.float64)
    step_x, step_y = np.abs(np.diff(x, axis=1)), np.abs(np.diff(x, axis=0))
    gradient = np.quantile(np.hypot(step_x[:-1], step_y[:, :-1]), [0.5, 0.9, 0.99])
    small = shrink(x, PROFILE_BINS)
    return np.r_[np.quantile(x, _QUANTILES), np.log(gradient + 1e-4),
                 np.log(_high_frequency(step_x, step_y, x.var()) + 1e-4),
                 small.mean(axis=0), small.mean(axis=1)]


def mirror_asymmetry(image: np.ndarray) -> float:
    """1 - the best correlation of a film with its left-right mirror image.

    A frontal film mirrors itself about the spine (a lung field either side); a lateral view,
    with the spine at one side and one lung field, does not. The film is compared at 40 x 40,
    its mirror shifted by up to 5 pixels and the film tilted by up to 6 degrees, so a patient
    off centre or slightly turned still counts as symmetric.

    Args:
        image: (S, S) float in [0, 1].

    Returns:
        From 0 (a perfect mirror image) to 2; about 0.14 for a typical training film.
    """
    small = shrink(image, MIRROR_SIDE).astype(np.float64)
    top, bottom = MIRROR_ROWS
    best = -1.0
    for tilt in MIRROR_TILTS:
        turned = small if tilt == 0 else np.asarray(Image.fromarray(small.astype(np.float32)).rotate(
            tilt, Image.Resampling.BILINEAR, fillcolor=float(small.mean())), dtype=np.float64)
        rows = turned[top:bottom]
        mirrored = rows[:, ::-1]
        for shift in MIRROR_SHIFTS:
            if shift >= 0:
                a, b = rows[:, shift:], mirrored[:, :MIRROR_SIDE - shift]
            else:
                a, b = rows[:, :MIRROR_SIDE + shift], mirrored[:, -shift:]
            a, b = a - a.mean(), b - b.mean()
            best = max(best, float((a * b).sum() / np.sqrt((a * a).sum() * (b * b).sum() + 1e-12)))
    return 1.0 - best


def film_view(film: Film) -> np.ndarray:
    """The film at (256, 256), float in [0, 1], for the cheap named checks."""
    return to_model_input(film, VIEW_SIDE)[..., 0] / 255.0


def films_of(inputs: np.ndarray) -> list[Film]:
    """Model inputs (n, S, S, 1) in 0-255 as grey films (for fitting and measuring)."""
    return [Film(pixels=np.asarray(x[..., 0], dtype=np.float32) / 255.0, format="input", source_mode="L")
            for x in inputs]


# ---------------------------------------------------------------- the model's features


def feature_model(model):
    """A Keras model sharing ``model``'s layers: inputs -> [P(pneumonia), pooled features]."""
    import keras

    return keras.Model(model.input, [model.output, model.get_layer(POOL_LAYER).output])


def model_outputs(two_headed, inputs: np.ndarray, batch_size: int = 64) -> tuple[np.ndarray, np.ndarray]:
    """Run a :func:`feature_model` in batches.

    Args:
        two_headed: the model from :func:`feature_model`.
        inputs: (n, S, S, 1) in 0-255.
        batch_size: films per call.

    Returns:
        (P(pneumonia) (n,) float64, pooled features (n, D) float64).
    """
    probs, pooled = [], []
    for start in range(0, len(inputs), batch_size):
        batch = np.asarray(inputs[start:start + batch_size], dtype=np.float32)
        p, features = two_headed(batch, training=False)
        probs.append(np.asarray(p)[:, 0])
        pooled.append(np.asarray(features))
    if not probs:
        return np.zeros(0), np.zeros((0, 0))
    return np.concatenate(probs).astype(np.float64), np.concatenate(pooled).astype(np.float64)
