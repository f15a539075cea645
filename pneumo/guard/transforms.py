"""Films turned, inverted and put in collages: the layouts the guard's classifier tells apart.

The layout classifier learns from these transforms of upright training films; the guard undoes
them (or cuts a collage into tiles) before it names a layout as the reason for a refusal.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image

from pneumo.guard.features import layout_vector

LAYOUTS = ("upright", "rotated", "upside_down", "inverted", "collage")
"""The layout classifier's classes, in the order of its outputs."""


def collage(tiles: Sequence[np.ndarray], rows: int, cols: int, gutter: float | None = None) -> np.ndarray:
    """Several (S, S) films in a rows x cols grid, resized back to (S, S).

    Args:
        tiles: at least rows * cols images of the same square size.
        rows, cols: the grid.
        gutter: when given, a light band (this grey level) of S/32 pixels between tiles.
    """
    size = tiles[0].shape[0]
    parts = [np.asarray(t, dtype=np.float32) for t in tiles[:rows * cols]]
    if gutter is not None:
        band = max(1, size // 32)
        parts = [np.pad(t, band, constant_values=gutter) for t in parts]
    grid = np.concatenate([np.concatenate(parts[r * cols:(r + 1) * cols], axis=1)
                           for r in range(rows)], axis=0)
    resized = Image.fromarray(grid).resize((size, size), Image.Resampling.BILINEAR)
    return np.clip(np.asarray(resized, dtype=np.float32), 0.0, 1.0)


def tiles_of(image: np.ndarray, rows: int, cols: int) -> list[np.ndarray]:
    """Cut an image into a rows x cols grid of tiles."""
    height, width = image.shape
    return [image[r * height // rows:(r + 1) * height // rows, c * width // cols:(c + 1) * width // cols]
            for r in range(rows) for c in range(cols)]


def undo(image: np.ndarray, layout: str) -> list[np.ndarray]:
    """The film as it would look if the named layout's transform were undone (every way it could be)."""
    if layout == "rotated":
        return [np.rot90(image, 1), np.rot90(image, 3)]
    if layout == "upside_down":
        return [np.rot90(image, 2), image[::-1]]
    if layout == "inverted":
        return [1.0 - image]
    return [image]


def layout_examples(films: np.ndarray, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
    """Training examples for the layout classifier, made from upright films only.

    Each film gives an upright example (mirrored half the time), one turned by 90 or
    270 degrees, one upside down (rotated or flipped) and one inverted; a third as many
    collages (2 x 2, side by side, 3 x 3) are drawn from random films.

    Args:
        films: (n, S, S) float in [0, 1].
        rng: the random generator.

    Returns:
        (features (m, 1024) float32, labels (m,) int indexing :data:`LAYOUTS`).
    """
    images, labels = [], []
    for film in films:
        upright = film if rng.random() < 0.5 else film[:, ::-1]
        upside_down = np.rot90(upright, 2) if rng.random() < 0.5 else upright[::-1]
        images += [upright, np.rot90(upright, rng.choice([1, 3])), upside_down, 1.0 - upright]
        labels += [0, 1, 2, 3]
    for _ in range(max(1, len(films) // 3)):
        for rows, cols in ((2, 2), (1, 2), (3, 3)):
            chosen = films[rng.choice(len(films), rows * cols)]
            images.append(collage(chosen, rows, cols))
            labels.append(4)
    return np.stack([layout_vector(image) for image in images]), np.asarray(labels)
