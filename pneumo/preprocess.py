"""The one preprocessing path, shared by training, evaluation, the CLI and the app.

A film's grayscale pixels in [0, 1] are resized to the model's square input and
expressed in the 0-255 range the model expects; the division by 255 is the
model's own first layer, so whoever loads the ``.keras`` file cannot forget it.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from pneumo.io import Film


def to_model_input(film: Film | np.ndarray, size: int) -> np.ndarray:
    """Turn a film into one model input.

    Args:
        film: a :class:`Film`, or its float pixels (H, W) in [0, 1].
        size: the model's square input side in pixels.

    Returns:
        float32 array (size, size, 1) with values in [0, 255].

    Raises:
        ValueError: the pixels are not a 2-D array of finite values in [0, 1].
    """
    pixels = film.pixels if isinstance(film, Film) else np.asarray(film)
    if pixels.ndim != 2:
        raise ValueError(f"film pixels must be 2-D (height, width), got shape {pixels.shape}")
    pixels = pixels.astype(np.float32, copy=False)
    low, high = float(np.min(pixels)), float(np.max(pixels))
    if not (np.isfinite(low) and np.isfinite(high)) or low < -1e-6 or high > 1 + 1e-6:
        raise ValueError(f"film pixels must lie in [0, 1], got values from {low} to {high}")
    if pixels.shape != (size, size):
        # Pillow's bilinear filter widens its support when shrinking, so large
        # originals are averaged down rather than aliased.
        pixels = np.asarray(
            Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
    return (np.clip(pixels, 0.0, 1.0) * 255.0)[..., np.newaxis]


def to_display(film: Film | np.ndarray, size: int) -> np.ndarray:
    """The film as the model saw it: uint8 (size, size) for showing and overlays."""
    return np.round(to_model_input(film, size)[..., 0]).astype(np.uint8)
