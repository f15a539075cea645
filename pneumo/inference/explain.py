"""Where the model looked: class-activation maps through tf-keras-vis, and one overlay renderer.

Maps are float arrays of the model input's size, scaled per film to [0, 1]:
0 is the least and 1 the most weight the model gave any region of that film.
The overlay paints them with one fixed colour scale, :data:`COLOR_STOPS`, from
transparent dark blue (no weight) through green and yellow to red (most weight).
"""

from __future__ import annotations

import functools

import numpy as np

from pneumo.store import LoadedModel, SubtypeModel

METHODS = {"gradcam": "Grad-CAM", "gradcam_pp": "Grad-CAM++", "scorecam": "Score-CAM",
           "saliency": "Gradient saliency"}
"""Method key -> name shown to people."""

COLOR_STOPS = (
    (0.00, (48, 18, 130)),
    (0.25, (30, 110, 230)),
    (0.50, (40, 190, 120)),
    (0.75, (250, 210, 40)),
    (1.00, (215, 30, 30)),
)
"""The overlay's colour scale: (weight, RGB) stops, interpolated linearly between them."""

SCORECAM_MAX_CHANNELS = 32  # Faster-Score-CAM: only the strongest channels are scored


def colorize(heatmap: np.ndarray) -> np.ndarray:
    """Map weights in [0, 1] (h, w) to RGB uint8 (h, w, 3) with :data:`COLOR_STOPS`."""
    heat = np.clip(np.asarray(heatmap, dtype=np.float32), 0.0, 1.0)
    positions = np.array([s[0] for s in COLOR_STOPS], dtype=np.float32)
    colours = np.array([s[1] for s in COLOR_STOPS], dtype=np.float32)
    rgb = np.stack([np.interp(heat, positions, colours[:, c]) for c in range(3)], axis=-1)
    return np.round(rgb).astype(np.uint8)


def overlay(gray: np.ndarray, heatmap: np.ndarray, opacity: float = 0.5) -> np.ndarray:
    """Paint a map over a film.

    Each pixel's colour is mixed in proportion to its weight times ``opacity``, so
    regions the model ignored keep the film's own grey.

    Args:
        gray: the film as uint8 (h, w).
        heatmap: weights in [0, 1], (h, w).
        opacity: 0 shows the film only, 1 the strongest regions in full colour.

    Returns:
        RGB uint8 (h, w, 3).

    Raises:
        ValueError: shapes differ or opacity is outside [0, 1].
    """
    if gray.shape != heatmap.shape:
        raise ValueError(f"film {gray.shape} and map {heatmap.shape} must have the same shape")
    if not 0.0 <= opacity <= 1.0:
        raise ValueError(f"opacity must be between 0 and 1, got {opacity}")
    film = np.repeat(gray.astype(np.float32)[..., None], 3, axis=-1)
    alpha = (opacity * np.clip(heatmap, 0.0, 1.0))[..., None]
    mixed = (1 - alpha) * film + alpha * colorize(heatmap).astype(np.float32)
    return np.round(mixed).astype(np.uint8)


TARGETS = {"pneumonia": "pneumonia", "subtype": "a bacterial pattern"}
"""What a map can explain -> what its warm regions are evidence for, in words.

``"pneumonia"`` explains the model's P(pneumonia); ``"subtype"`` the subtype model's
P(bacterial | pneumonia), the card's ``subtype`` section (same input and explained layer).
"""


class Explainer:
    """Builds the tf-keras-vis explainers of one network once; call :meth:`heatmaps` per batch.

    One design for both targets: the pneumonia map explains ``loaded.model`` towards its
    classes (``NORMAL``, ``PNEUMONIA``), the subtype map the subtype model
    (:func:`pneumo.store.load_subtype`: the same compact CNN graph and input) towards its
    classes (``viral``, ``bacterial``).
    """

    def __init__(self, loaded: LoadedModel, target: str = "pneumonia", subtype: SubtypeModel | None = None):
        """
        Args:
            loaded: the verified model (its input size; its network and classes for ``"pneumonia"``).
            target: a key of :data:`TARGETS`.
            subtype: the loaded subtype model, for ``"subtype"`` only.

        Raises:
            ValueError: unknown target, a subtype target without its model, or a subtype model for pneumonia.
        """
        from tf_keras_vis.gradcam import Gradcam
        from tf_keras_vis.gradcam_plus_plus import GradcamPlusPlus
        from tf_keras_vis.saliency import Saliency
        from tf_keras_vis.scorecam import Scorecam
        from tf_keras_vis.utils.model_modifiers import ReplaceToLinear

        if target not in TARGETS:
            raise ValueError(f"unknown explanation target {target!r}; choose from {list(TARGETS)}")
        if (target == "subtype") != (subtype is not None):
            raise ValueError("the subtype target needs the loaded subtype model, and only it takes one")
        self.target = target
        part = loaded if subtype is None else subtype
        self.classes = tuple(part.classes)
        self.layer = part.explain_layer
        self.size = loaded.input_size
        source = part.model
        model = listed_input_view(source)
        # clone=True: the shared, cached model is never modified (Score-CAM gets a view of its own).
        self._methods = {
            "gradcam": Gradcam(model, model_modifier=ReplaceToLinear(), clone=True),
            "gradcam_pp": GradcamPlusPlus(model, model_modifier=ReplaceToLinear(), clone=True),
            "scorecam": Scorecam(direct_predict_view(two_class_view(source)), clone=True),
            "saliency": Saliency(model, model_modifier=ReplaceToLinear(), clone=True),
        }

    def heatmaps(self, inputs: np.ndarray, method: str = "gradcam", towards: str | None = None) -> np.ndarray:
        """Maps for a batch of model inputs.

        Args:
            inputs: (n, size, size, 1) in 0-255, as ``pneumo.preprocess.to_model_input`` makes them.
            method: a key of :data:`METHODS`.
            towards: the class the map is evidence for, one of :attr:`classes` (``"PNEUMONIA"`` or
                ``"NORMAL"``; ``"bacterial"`` or ``"viral"``); None for the second (positive) one.

        Returns:
            float32 (n, size, size) in [0, 1], each map scaled to its own maximum.

        Raises:
            ValueError: unknown method or class, or inputs of the wrong shape.
        """
        from tf_keras_vis.utils.scores import BinaryScore, CategoricalScore

        if method not in self._methods:
            raise ValueError(f"unknown method {method!r}; choose from {list(METHODS)}")
        towards = self.classes[1] if towards is None else towards
        if towards not in self.classes:
            raise ValueError(f"unknown class {towards!r} for the {self.target} map; choose from {list(self.classes)}")
        positive = towards == self.classes[1]
        inputs = np.asarray(inputs, dtype=np.float32)
        if inputs.ndim != 4 or inputs.shape[1:] != (self.size, self.size, 1):
            raise ValueError(f"inputs must have shape (n, {self.size}, {self.size}, 1), got {inputs.shape}")
        score = BinaryScore([positive] * len(inputs))
        explainer = self._methods[method]
        if method == "scorecam":
            # Score-CAM softmaxes the output: it needs two units, and picks its channels per call.
            score = CategoricalScore(int(positive))
            return np.concatenate([self._maps(explainer, method, score, inputs[i:i + 1])
                                   for i in range(len(inputs))])
        return self._maps(explainer, method, score, inputs)

    def _maps(self, explainer, method: str, score, inputs: np.ndarray) -> np.ndarray:
        if method == "saliency":
            maps = explainer(score, inputs, keepdims=False)
        elif method == "scorecam":
            maps = explainer(score, inputs, penultimate_layer=self.layer,
                             seek_penultimate_conv_layer=False,
                             max_N=SCORECAM_MAX_CHANNELS, batch_size=SCORECAM_MAX_CHANNELS)
        else:
            # The named layer itself (after batch norm and ReLU), not the convolution before it.
            maps = explainer(score, inputs, penultimate_layer=self.layer,
                             seek_penultimate_conv_layer=False)
        maps = np.nan_to_num(np.asarray(maps, dtype=np.float32).reshape(len(inputs), self.size, self.size))
        return np.clip(maps, 0.0, 1.0)

    def heatmap(self, model_input: np.ndarray, method: str = "gradcam", towards: str | None = None) -> np.ndarray:
        """The map of one model input (size, size, 1); returns (size, size)."""
        return self.heatmaps(np.asarray(model_input)[np.newaxis], method, towards)[0]


BORDER_MARGIN = 0.12
"""The border band: this fraction of the side on each edge (42% of the film's area)."""


def cell_paint(cells: int, size: int, margin: float = BORDER_MARGIN) -> tuple[np.ndarray, np.ndarray]:
    """The weight each feature cell paints on the film: in the border band, and in all.

    A Grad-CAM map is the explained layer's (cells, cells) grid enlarged to the film by
    linear interpolation, as tf-keras-vis does it, so the map's :func:`border_share` is
    ``sum(grid * band) / sum(grid * whole)`` for any grid of non-negative weights.

    Returns:
        (band, whole): float64 (cells, cells) each.
    """
    from scipy.ndimage import zoom

    whole, share = np.zeros((cells, cells)), np.zeros((cells, cells))
    for i in range(cells):
        for j in range(cells):
            one = np.zeros((cells, cells))
            one[i, j] = 1.0
            painted = zoom(one, size / cells, order=1)
            whole[i, j], share[i, j] = painted.sum(), border_share(painted, margin)
    return whole * share, whole


def direct_predict_view(model):
    """The same model taking its input as a one-element list, whose ``predict()`` calls it directly.

    Score-CAM scores its masked films with ``predict()``, whose per-call set-up made
    up a third of its time and whose progress bar is not for the user; this view
    shares the layers and weights, answers the same numbers batch by batch, and
    takes the listed input tf-keras-vis passes (see :func:`listed_input_view`).
    """
    return _direct_predict_class()([model.input], model.output, name=f"{model.name}_listed")


@functools.cache
def _direct_predict_class():
    import keras

    class DirectPredictModel(keras.Model):
        """A functional model whose ``predict`` is direct calls, batch by batch."""

        def predict(self, x, batch_size: int | None = None, **_):
            arrays = [np.asarray(a) for a in (x if isinstance(x, (list, tuple)) else [x])]
            count = len(arrays[0])
            step = batch_size or count or 1
            return np.concatenate([np.asarray(self([a[i:i + step] for a in arrays], training=False))
                                   for i in range(0, count, step)])

    return DirectPredictModel


def listed_input_view(model):
    """The same model taking its input as a one-element list, the structure tf-keras-vis passes.

    Called with a bare tensor's list, a model with one named input warns on every call;
    this view shares the layers and weights and does not.
    """
    import keras

    return keras.Model([model.input], model.output, name=f"{model.name}_listed")


def two_class_view(model):
    """The model as two logits, [0, z / T]: their softmax is (1 - p, p), what Score-CAM scores."""
    import keras

    scaled = model.get_layer("temperature").output  # (n, 1) calibrated logit
    zeros = keras.layers.Subtract(name="zero_logit")([scaled, scaled])
    logits = keras.layers.Concatenate(name="two_class_logits")([zeros, scaled])
    return keras.Model(model.input, logits, name=f"{model.name}_two_class")


def border_share(heatmap: np.ndarray, margin: float = BORDER_MARGIN, floor: float = 0.0) -> float:
    """Share of a map's total weight in the outer ``margin`` of the film (where markers sit).

    Args:
        heatmap: weights in [0, 1], (h, w).
        margin: width of the band on each side, as a fraction of that side.
        floor: weights below this count as 0, so only the regions the overlay paints
            warm are weighed (0 weighs the whole map).
    """
    heat = np.clip(np.asarray(heatmap, dtype=np.float64), 0.0, None)
    heat = np.where(heat >= floor, heat, 0.0) if floor > 0 else heat
    total = heat.sum()
    if total <= 0:
        return 0.0
    h, w = heat.shape
    dy, dx = round(h * margin), round(w * margin)
    inner = heat[dy:h - dy, dx:w - dx].sum()
    return float((total - inner) / total)


ATTENTION_WARNING = ("Most of the map's warm area lies at the film's edge: check that it is not on a marker, "
                     "text or the film's border, and interpret with care.")
"""What the diagnose page says beside an overlay that :func:`attention_warning` flags."""

WARM_FLOOR = 0.5
"""Weights from here up are painted green to red on the overlay: what a reader sees as 'the spot'."""

WARM_BORDER_LIMIT = 0.5


def attention_warning(heatmap: np.ndarray) -> str | None:
    """The sentence to show beside a film's overlay when its map points mostly off the thorax.

    Flags a map when more than half of its warm weight (weights of at least
    :data:`WARM_FLOOR`) lies in the border band of :func:`border_share`.

    Args:
        heatmap: one map in [0, 1], (h, w), as :meth:`Explainer.heatmap` returns it.

    Returns:
        :data:`ATTENTION_WARNING`, or None when the map raises no concern.
    """
    if border_share(heatmap, floor=WARM_FLOOR) > WARM_BORDER_LIMIT:
        return ATTENTION_WARNING
    return None
