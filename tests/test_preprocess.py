"""pneumo.preprocess: the one path from a film's [0, 1] pixels to the model's 0-255 input."""

from __future__ import annotations

import numpy as np
import pytest

from pneumo.io import Film, read_film
from pneumo.preprocess import to_display, to_model_input


@pytest.fixture(scope="module")
def film(normal_film) -> Film:
    return read_film(normal_film)


@pytest.mark.parametrize("size", [64, 150, 192, 224, 320])
def test_model_input_shape_type_and_range(film, size):
    tensor = to_model_input(film, size)
    assert tensor.shape == (size, size, 1)
    assert tensor.dtype == np.float32
    assert 0.0 <= tensor.min() and tensor.max() <= 255.0
    # Still the film: its mean grey level survives resizing to within a level.
    assert abs(tensor.mean() - film.pixels.mean() * 255) < 1.0


def test_a_film_already_at_size_is_only_scaled(film):
    side = film.pixels.shape[0]
    assert film.pixels.shape == (side, side)  # the training films are square
    np.testing.assert_array_equal(to_model_input(film, side)[..., 0], film.pixels * np.float32(255))


def test_a_film_and_its_pixels_give_the_same_input(film):
    np.testing.assert_array_equal(to_model_input(film, 192), to_model_input(film.pixels, 192))


def test_a_large_non_square_original_is_resized():
    # 1500 rows x 1200 columns: black left half, white right half, a 1-pixel
    # checkerboard in the bottom third (which must average to mid grey, not alias).
    pixels = np.zeros((1500, 1200), np.float32)
    pixels[:, 600:] = 1.0
    checker = (np.indices((500, 1200)).sum(axis=0) % 2).astype(np.float32)
    pixels[1000:] = checker

    tensor = to_model_input(pixels, 192)[..., 0]

    assert tensor.shape == (192, 192)
    assert tensor[:120, :90].max() == 0.0  # black stays black away from the edge
    assert tensor[:120, 102:].min() == 255.0  # white stays white
    assert np.abs(tensor[140:, :] - 127.5).max() < 2.0  # the checkerboard is averaged


@pytest.mark.parametrize(
    ("bad", "shown"),
    [
        (1.5, "1.5"),
        (-0.25, "-0.25"),
        (255.0, "255"),  # 0-255 pixels passed where 0-1 were expected
        (np.nan, "nan"),
        (np.inf, "inf"),
        (-np.inf, "-inf"),
        (1e300, "1e+300"),  # would become inf in float32: named as itself
    ],
)
def test_values_outside_0_1_or_not_finite_are_named(bad, shown):
    pixels = np.full((100, 80), 0.5)
    pixels[7, 9] = bad
    with pytest.raises(ValueError) as raised:
        to_model_input(pixels, 64)
    message = str(raised.value)
    assert shown in message, message
    assert "[0, 1]" in message
    if not np.isfinite(bad):
        assert "row 7, column 9" in message


def test_a_rounding_error_just_outside_0_1_is_accepted():
    pixels = np.full((64, 64), 1.0 + 1e-7, np.float32)
    pixels[0, 0] = -1e-7
    tensor = to_model_input(pixels, 64)
    assert tensor.min() == 0.0 and tensor.max() == 255.0


@pytest.mark.parametrize(
    "pixels",
    [np.zeros((10, 10, 3)), np.zeros(100), np.zeros((0, 0)), np.zeros((5, 0))],
    ids=["rgb", "flat", "empty", "no-columns"],
)
def test_arrays_that_are_not_one_grey_image_are_refused(pixels):
    with pytest.raises(ValueError, match=r"2-D .*got shape \("):
        to_model_input(pixels, 64)


def test_non_numbers_are_refused():
    with pytest.raises(ValueError, match=r"must be numbers, got dtype"):
        to_model_input(np.full((64, 64), "0.5"), 64)


@pytest.mark.parametrize("size", [0, -5, 192.0, True, "192"])
def test_a_bad_size_is_refused(size):
    with pytest.raises(ValueError, match=r"size must be a positive whole number"):
        to_model_input(np.zeros((64, 64)), size)


def test_the_film_is_not_changed(film):
    before = film.pixels.copy()
    to_model_input(film, 100)
    to_model_input(film, film.pixels.shape[0])
    np.testing.assert_array_equal(film.pixels, before)


@pytest.mark.parametrize("size", [64, 192])
def test_to_display_is_the_model_input_as_uint8(film, size):
    shown = to_display(film, size)
    assert shown.shape == (size, size)
    assert shown.dtype == np.uint8
    tensor = to_model_input(film, size)[..., 0]
    assert np.abs(shown.astype(np.float32) - tensor).max() <= 0.5
    assert shown.max() > 200 and shown.min() < 30  # a real film, not a blank


def test_to_display_of_the_extremes():
    pixels = np.zeros((64, 64))
    pixels[:, 32:] = 1.0
    shown = to_display(pixels, 64)
    assert set(np.unique(shown)) == {0, 255}
