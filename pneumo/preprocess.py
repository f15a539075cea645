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
        float32 array (size, size, 1) of whole grey levels in [0, 255]: the values
        training stores as bytes, so a film gets the same input in both.

    Raises:
        ValueError: the pixels are not a non-empty 2-D array of finite values in
            [0, 1], or the size is not a positive whole number.
    """
    if isinstance(size, bool) or not isinstance(size, (int, np.integer)) or size < 1:
        raise ValueError(f"size must be a positive whole number of pixels, got {size!r}")
    values = film.pixels if isinstance(film, Film) else np.asarray(film)
    if values.ndim != 2 or values.size == 0:
        raise ValueError(
            f"film pixels must be a non-empty 2-D array (height, width), got shape {values.shape}"
        )
    if not (values.dtype == bool or np.issubdtype(values.dtype, np.integer)
            or np.issubdtype(values.dtype, np.floating)):
        raise ValueError(f"film pixels must be numbers, got dtype {values.dtype}")
    # Checked before the cast to float32, which would turn 1e300 into inf.
    finite = np.isfinite(values)
    if not finite.all():
        row, column = np.argwhere(~finite)[0]
        raise ValueError(
            f"film pixels must be finite numbers in [0, 1], got {values[row, column]} "
            f"at row {row}, column {column}"
        )
    low, high = float(np.min(values)), float(np.max(values))
    if low < -1e-6 or high > 1 + 1e-6:
        worst = low if low < -1e-6 else high
        raise ValueError(
            f"film pixels must lie in [0, 1], got {worst:g} (values from {low:g} to {high:g})"
        )
    pixels = values.astype(np.float32, copy=False)
    if pixels.shape != (size, size):
        # Pillow's bilinear filter widens its support when shrinking, so large
        # originals are averaged down rather than aliased.
        pixels = np.asarray(
            Image.fromarray(pixels).resize((size, size), Image.Resampling.BILINEAR),
            dtype=np.float32,
        )
    return np.round(np.clip(pixels, 0.0, 1.0) * 255.0)[..., np.newaxis]


def to_display(film: Film | np.ndarray, size: int) -> np.ndarray:
    """The film as the model saw it: uint8 (size, size) for showing and overlays.

    Args:
        film: a :class:`Film`, or its float pixels (H, W) in [0, 1].
        size: the model's square input side in pixels.

    Returns:
        uint8 array (size, size), the model input rounded to whole grey levels.

    Raises:
        ValueError: as :func:`to_model_input`.
    """
    return to_model_input(film, size)[..., 0].astype(np.uint8)
