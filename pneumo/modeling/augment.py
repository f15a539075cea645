"""Training-time augmentation of batches of films, reproducible from a seed.

Geometry (rotation, shear, zoom, shift, optional horizontal flip) is one
projective warp per film; intensity (brightness, contrast, gamma, noise) imitates
the spread of exposure and processing between X-ray machines. A Gaussian blur of
random strength imitates soft films (a child who moved, a low-resolution scan), so
that sharpness itself cannot pass for evidence: a model trained without it reads
a blurred normal film as pneumonia. A random patch near the border is blanked so
that markers and text printed on films cannot be relied on.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass


@dataclass(frozen=True)
class AugmentConfig:
    """Ranges of the random changes; each is drawn uniformly per film."""

    rotation_deg: float = 10.0
    shear: float = 0.1  # tangent of the shear angle
    zoom: float = 0.12  # scale in [1 - zoom, 1 + zoom]
    shift: float = 0.08  # fraction of the side
    horizontal_flip: bool = False  # off: the heart sits on the left
    brightness: float = 0.12  # fraction of full scale, added
    contrast: float = 0.3  # factor in [1 - contrast, 1 + contrast]
    gamma: float = 0.3  # exponent in [1 / (1 + gamma), 1 + gamma]
    noise: float = 0.02  # largest noise std, fraction of full scale
    blur: float = 0.016  # largest blur sigma, fraction of the side (3 px at 192 px)
    blur_chance: float = 0.35  # chance of blurring a film
    border_erase: float = 0.5  # chance of blanking one patch at the border

    def to_dict(self) -> dict:
        return asdict(self)


def make_augment(config: AugmentConfig = AugmentConfig()):
    """Return ``augment(images, seed)`` for float batches (n, h, w, 1) in [0, 255].

    ``seed`` is a pair of int64 scalars; the same seed gives the same batch.
    """
    import tensorflow as tf

    def uniform(shape, seed, low, high, salt):
        return tf.random.stateless_uniform(shape, seed=seed + salt, minval=low, maxval=high)

    def augment(images, seed):
        seed = tf.cast(tf.reshape(seed, [2]), tf.int64)
        side = images.shape[2]  # static, read before the warp loses it
        n = tf.shape(images)[0]
        height = tf.cast(tf.shape(images)[1], tf.float32)
        width = tf.cast(tf.shape(images)[2], tf.float32)

        angle = uniform([n], seed, -1.0, 1.0, 1) * (config.rotation_deg * math.pi / 180)
        shear = uniform([n], seed, -config.shear, config.shear, 2)
        scale = uniform([n], seed, 1 - config.zoom, 1 + config.zoom, 3)
        shift_x = uniform([n], seed, -config.shift, config.shift, 4) * width
        shift_y = uniform([n], seed, -config.shift, config.shift, 5) * height
        flip = tf.ones([n])
        if config.horizontal_flip:
            flip = tf.where(uniform([n], seed, 0.0, 1.0, 6) < 0.5, -1.0, 1.0)
        # Output pixel (x, y) samples input M @ (x - c, y - c) + c + shift.
        cos, sin = tf.cos(angle), tf.sin(angle)
        m00 = (cos * flip) / scale
        m01 = (cos * shear - sin) / scale
        m10 = (sin * flip) / scale
        m11 = (sin * shear + cos) / scale
        cx, cy = (width - 1) / 2, (height - 1) / 2
        a2 = cx - m00 * cx - m01 * cy + shift_x
        b2 = cy - m10 * cx - m11 * cy + shift_y
        zeros = tf.zeros([n])
        transforms = tf.stack([m00, m01, a2, m10, m11, b2, zeros, zeros], axis=1)
        images = tf.raw_ops.ImageProjectiveTransformV3(
            images=images, transforms=transforms, output_shape=tf.shape(images)[1:3],
            fill_value=0.0, interpolation="BILINEAR", fill_mode="NEAREST",
        )

        x = _blur(images, uniform([n], seed, 0.0, config.blur, 13),
                  uniform([n], seed, 0.0, 1.0, 14) < config.blur_chance, config.blur, side) / 255.0
        gamma = tf.exp(uniform([n, 1, 1, 1], seed, -1.0, 1.0, 7) * math.log(1 + config.gamma))
        x = tf.pow(tf.clip_by_value(x, 1e-6, 1.0), gamma)
        mean = tf.reduce_mean(x, axis=[1, 2, 3], keepdims=True)
        contrast = uniform([n, 1, 1, 1], seed, 1 - config.contrast, 1 + config.contrast, 8)
        brightness = uniform([n, 1, 1, 1], seed, -config.brightness, config.brightness, 9)
        x = (x - mean) * contrast + mean + brightness
        noise_std = uniform([n, 1, 1, 1], seed, 0.0, config.noise, 10)
        x = x + tf.random.stateless_normal(tf.shape(x), seed=seed + 11) * noise_std
        x = x * _border_patch_keep(tf.shape(x), seed + 12, config.border_erase)
        return tf.clip_by_value(x, 0.0, 1.0) * 255.0

    return augment


def _blur(images, sigmas, active, max_sigma: float, side: int | None):
    """Each film blurred with its own Gaussian where ``active``.

    ``sigmas`` (n,) and ``max_sigma`` are fractions of ``side``, the films' side in
    pixels, which must be known when the graph is built (it sets the kernel's reach).
    The films are moved to the channel axis so that one depthwise convolution applies
    a different kernel to each; edges are reflected, so borders keep their brightness.
    """
    import tensorflow as tf

    if max_sigma <= 0:
        return images
    if side is None:
        raise ValueError("blur needs films of a known size")
    max_sigma = max_sigma * side
    radius = int(math.ceil(3 * max_sigma))
    sigmas = tf.clip_by_value(sigmas * side, 1e-3, max_sigma)
    offsets = tf.cast(tf.range(-radius, radius + 1), tf.float32)
    kernel = tf.exp(-0.5 * (offsets[tf.newaxis, :] / sigmas[:, tf.newaxis]) ** 2)  # (n, k)
    kernel = kernel / tf.reduce_sum(kernel, axis=1, keepdims=True)
    identity = tf.cast(tf.equal(offsets, 0.0), tf.float32)[tf.newaxis, :]
    kernel = tf.where(active[:, tf.newaxis], kernel, identity)
    k = 2 * radius + 1
    films = tf.transpose(images, [3, 1, 2, 0])  # (1, h, w, n)
    films = tf.pad(films, [[0, 0], [radius, radius], [radius, radius], [0, 0]], mode="REFLECT")
    columns = tf.reshape(tf.transpose(kernel), [k, 1, -1, 1])
    rows = tf.reshape(tf.transpose(kernel), [1, k, -1, 1])
    films = tf.nn.depthwise_conv2d(films, columns, strides=[1, 1, 1, 1], padding="VALID")
    films = tf.nn.depthwise_conv2d(films, rows, strides=[1, 1, 1, 1], padding="VALID")
    return tf.transpose(films, [3, 1, 2, 0])


def _border_patch_keep(shape, seed, chance):
    """A 0/1 mask (n, h, w, 1) that blanks, with ``chance``, one patch touching the border."""
    import tensorflow as tf

    n, height, width = shape[0], shape[1], shape[2]
    h, w = tf.cast(height, tf.float32), tf.cast(width, tf.float32)
    draws = tf.random.stateless_uniform([n, 5], seed=seed)
    patch_h = (0.08 + 0.12 * draws[:, 0]) * h
    patch_w = (0.08 + 0.12 * draws[:, 1]) * w
    # Corner or edge: the patch's top-left corner sits at either end of each axis or between.
    top = tf.where(draws[:, 2] < 0.5, 0.0, h - patch_h)
    left = draws[:, 3] * (w - patch_w)
    swap = draws[:, 4] < 0.5  # half the time the patch hugs a side edge instead
    top, left = tf.where(swap, draws[:, 3] * (h - patch_h), top), tf.where(
        swap, tf.where(draws[:, 2] < 0.5, 0.0, w - patch_w), left)
    rows = tf.cast(tf.range(height), tf.float32)[tf.newaxis, :, tf.newaxis]
    cols = tf.cast(tf.range(width), tf.float32)[tf.newaxis, tf.newaxis, :]
    inside = ((rows >= top[:, None, None]) & (rows < (top + patch_h)[:, None, None])
              & (cols >= left[:, None, None]) & (cols < (left + patch_w)[:, None, None]))
    active = tf.random.stateless_uniform([n], seed=seed + 1) < chance
    blank = inside & active[:, None, None]
    return tf.cast(~blank, tf.float32)[..., tf.newaxis]
