"""What the film-reading tests share: a real film's exact grey levels, and the rule for errors."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from PIL import Image


def grey_levels(path: Path) -> np.ndarray:
    """A training film as uint8 (H, W): the reference every encoding of it must reproduce."""
    with Image.open(path) as image:
        rgb = np.asarray(image.convert("RGB"))
    # The training films are grey stored as RGB: the three channels are equal.
    assert (rgb[..., 0] == rgb[..., 1]).all() and (rgb[..., 0] == rgb[..., 2]).all()
    return rgb[..., 0].copy()


def assert_one_sentence(message: str) -> None:
    """A read error speaks to the user in one sentence: one line, a capital, a full stop."""
    assert "\n" not in message and message[:1].isupper() and message.endswith("."), message
