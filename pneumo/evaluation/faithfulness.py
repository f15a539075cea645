"""How far to trust the heatmaps: deletion and insertion, the randomisation check, border share.

Three measurements, each on a model's own films:

* **Deletion and insertion** (RISE, Petsiuk et al. 2018). The pixels of a film are
  ordered by a map, most salient first (ties broken at random with a fixed seed).
  Deletion replaces them, step by step, with a *canvas* and scores P(pneumonia)
  after each step; insertion starts from the canvas and reveals the film's pixels
  in the same order. The area under each curve over the fraction of pixels changed
  (trapezoid rule) is the figure: a faithful map gives a low deletion AUC and a high
  insertion AUC. Each map is compared, film by film, with a uniform random map and a
  centred Gaussian (the "model looks at the middle" prior). The score is
  P(pneumonia), so the curves are measured on pneumonia films only.
* **Model randomisation** (Adebayo et al. 2018): the same architecture with fresh,
  seeded random weights (:func:`randomized_model`) is explained on the same films; the Spearman rank
  correlation between the two maps of a film should be low for a method that
  depends on what the model learned. Every film is compared with the same random
  model, whose maps share one spatial pattern (set by its draw of weights and the
  convolutions' zero padding), so a single draw is one sample however many films
  are measured: on 100 training films the shipped model's Grad-CAM gave 0.36
  against one draw and -0.10 against the next. The figure is therefore the mean
  over several random models (``randomization_models``), and each model's own
  mean is kept (``randomization_spearman_by_model``) to show the spread.
* **Border share**: the share of a map's weight in the outer band of the film
  (:func:`pneumo.inference.explain.border_share`), where markers and text sit.

The canvas is what removed pixels become. A deletion curve can only fall as far as
the canvas's own score, so the canvas must be something the model reads as *no
pneumonia*; otherwise the curves say little
(:func:`pneumo.render.faithfulness_words.canvas_note` warns).

* ``"mean"`` (default): the pixel-wise mean of the normal films of the set, an
  average normal chest in the same framing. Removing a region puts back what a
  normal chest looks like there on average, with no other patient's anatomy pasted
  in and nothing drawn at random (the expected-value baseline of attribution methods).
* ``"normal"``: a seeded normal film of the set for each pneumonia film, one other
  child's chest.
* ``"blur"``: the film's own Gaussian blur, RISE's insertion canvas. A model that
  reads opacity rightly keeps a blurred consolidation as pneumonia, so for this task
  a blur removes little evidence; it is kept to compare with RISE.

This module measures (curves, canvases, maps); :mod:`pneumo.evaluation.faithfulness_results`
turns what it measures into figures, targets and ``explanations.json``;
:mod:`pneumo.render.faithfulness_words` puts them into words; :func:`pneumo.folds.records_to_measure`
chooses the films.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from pneumo.evaluation.faithfulness_results import BASELINES, summarize
from pneumo.inference import explain
from pneumo.store import LoadedModel

CANVASES = ("mean", "normal", "blur")
"""What removed pixels become (see the module's docstring)."""

NORMAL_CANVASES = ("mean", "normal")
"""The canvases made of the normal films of the set."""


class Progress(Protocol):
    """Where :func:`measure` says how far it is (:class:`pneumo.cli.progress.Progress` is one):
    ``note(message)`` as each stage starts, ``advance(n)`` as maps are done (:func:`count_maps`)."""

    def note(self, message: str) -> None: ...

    def advance(self, n: int = 1) -> None: ...


@dataclass(frozen=True)
class FaithfulnessConfig:
    """The settings of one measurement; recorded in its results.

    Attributes:
        steps: deletion/insertion steps; the curve has ``steps + 1`` points.
        canvas: one of :data:`CANVASES`.
        blur_sigma: sigma of the blur canvas as a fraction of the input side
            (RISE: 5 px at 224 px).
        gaussian_sigma: sigma of the centred-Gaussian baseline as a fraction of the side.
        methods: keys of :data:`pneumo.inference.explain.METHODS` to measure.
        seed: seeds the random maps, the tie-breaks and the canvas films; random model
            ``i`` is drawn with seed ``seed + i``.
        randomization_models: how many random-weight models each map is compared with.
        batch_size: films per explainer call and images per model call.
    """

    steps: int = 24
    canvas: str = "mean"
    blur_sigma: float = 5 / 224
    gaussian_sigma: float = 0.25
    methods: tuple[str, ...] = tuple(explain.METHODS)
    seed: int = 0
    randomization_models: int = 5
    batch_size: int = 64

    def __post_init__(self):
        if self.steps < 2:
            raise ValueError(f"steps must be at least 2, got {self.steps}")
        if self.randomization_models < 1:
            raise ValueError(f"randomization_models must be at least 1, got {self.randomization_models}")
        if self.canvas not in CANVASES:
            raise ValueError(f"unknown canvas {self.canvas!r}; choose from {CANVASES}")
        unknown = [m for m in self.methods if m not in explain.METHODS]
        if unknown or not self.methods:
            raise ValueError(f"unknown methods {unknown}; choose from {list(explain.METHODS)}")


# --- curves -------------------------------------------------------------------------------


def blur_canvas(inputs: np.ndarray, sigma: float) -> np.ndarray:
    """Each film blurred with a Gaussian of ``sigma`` pixels; (n, s, s, 1) -> same shape, float32."""
    from scipy import ndimage

    return ndimage.gaussian_filter(np.asarray(inputs, np.float32), sigma=(0, sigma, sigma, 0))


def random_map(size: int, cells: int, rng: np.random.Generator) -> np.ndarray:
    """A uniform random map drawn on a ``cells`` x ``cells`` grid, repeated up to (size, size).

    Drawn at the grid of the explained layer, so it is compared with Grad-CAM at the
    same spatial scale (a pixel-level random map is easy to beat for any smooth map).
    """
    coarse = rng.random((cells, cells), dtype=np.float32)
    index = np.arange(size) * cells // size  # which cell each pixel row/column falls in
    return coarse[np.ix_(index, index)]


def gaussian_map(size: int, sigma: float) -> np.ndarray:
    """A Gaussian centred on the film, ``sigma`` as a fraction of the side; peak 1, (size, size)."""
    axis = (np.arange(size, dtype=np.float32) + 0.5) / size - 0.5
    squared = axis[:, None] ** 2 + axis[None, :] ** 2
    return np.exp(-squared / (2 * sigma**2)).astype(np.float32)


def pixel_ranks(heatmap: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Rank of each pixel of a map, 0 for the most salient; ties broken at random.

    Returns:
        int array (h * w,) over the flattened map.
    """
    flat = np.asarray(heatmap, dtype=np.float64).ravel()
    order = np.lexsort((rng.random(flat.size), -flat))  # last key sorts first
    ranks = np.empty(flat.size, dtype=np.int64)
    ranks[order] = np.arange(flat.size)
    return ranks


def perturbed_films(film: np.ndarray, canvas: np.ndarray, ranks: np.ndarray,
                    steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The inner images of the deletion and insertion sequences of one map.

    Step ``k`` changes the ``round(k / steps * h * w)`` highest-ranked pixels. The end
    points (the film and the canvas) are the same for every map and left out.

    Args:
        film: (s, s, 1) model input.
        canvas: (s, s, 1) what removed pixels become.
        ranks: (s * s,) from :func:`pixel_ranks`.
        steps: number of steps.

    Returns:
        (deletion, insertion), each float32 (steps - 1, s, s, 1).
    """
    counts = np.round(np.arange(1, steps) / steps * ranks.size).astype(np.int64)
    changed = (ranks[None, :] < counts[:, None]).reshape(steps - 1, *film.shape)
    deletion = np.where(changed, canvas[None], film[None])
    insertion = np.where(changed, film[None], canvas[None])
    return deletion.astype(np.float32), insertion.astype(np.float32)


def film_curves(score: Callable[[np.ndarray], np.ndarray], film: np.ndarray, canvas: np.ndarray,
                maps: dict[str, np.ndarray], steps: int,
                rng: np.random.Generator) -> dict[str, dict[str, np.ndarray]]:
    """Deletion and insertion curves of one film for several maps, in one batched scoring.

    Args:
        score: P(pneumonia) of a batch of model inputs, (m, s, s, 1) -> (m,).
        film: (s, s, 1) model input.
        canvas: (s, s, 1) what removed pixels become.
        maps: name -> (s, s) map.
        steps: number of steps.
        rng: breaks ties between equally salient pixels.

    Returns:
        name -> {"deletion": (steps + 1,), "insertion": (steps + 1,)} of P(pneumonia).
    """
    batches = [film[None], canvas[None]]
    for heatmap in maps.values():
        batches.extend(perturbed_films(film, canvas, pixel_ranks(heatmap, rng), steps))
    scores = np.asarray(score(np.concatenate(batches)), dtype=np.float64)
    p_film, p_canvas, inner = scores[0], scores[1], scores[2:].reshape(len(maps), 2, steps - 1)
    return {name: {"deletion": np.concatenate([[p_film], inner[i, 0], [p_canvas]]),
                   "insertion": np.concatenate([[p_canvas], inner[i, 1], [p_film]])}
            for i, name in enumerate(maps)}


# --- maps ---------------------------------------------------------------------------------


def randomized_model(loaded: LoadedModel, seed: int = 0) -> LoadedModel:
    """The same architecture as ``loaded`` with fresh random weights (Adebayo et al.'s check).

    Built with :func:`pneumo.modeling.models.build` from the card's architecture and input size (for
    an ensemble, as many random members combined by :func:`pneumo.modeling.models.build_ensemble`);
    the compact CNN's width is the card's ``training.config.width``, or, for a card
    without a training record, read from the model's first block. Every layer's random
    initialiser takes its seed from ``random.Random(seed)``, layer by layer
    (:func:`pneumo.modeling.seeding.seeded_copy`), so the weights depend on ``seed`` alone
    and no global random state is reseeded.

    Raises:
        ValueError: the rebuilt model's weights do not have the shapes of the original's.
    """
    from pneumo.modeling import models
    from pneumo.modeling.seeding import seeded_copy

    card = loaded.card
    architecture = card.get("architecture", "cnn")
    width = card.get("training", {}).get("config", {}).get("width")
    if width is None and architecture == "cnn" and not card.get("ensemble"):
        width = loaded.model.get_layer("block1_a_conv").filters
    width = int(width or 32)
    temperature = float(card.get("temperature", 1.0))
    members = (card.get("ensemble") or {}).get("members")
    seeds = random.Random(seed)  # one stream for every layer of every member, in order
    if members:  # an ensemble of fresh random members, combined the same way
        model = models.build_ensemble([seeded_copy(models.build(architecture, loaded.input_size, width=width),
                                                   seeds) for _ in range(int(members))],
                                      temperature, width=width)
    else:
        model = seeded_copy(models.build(architecture, loaded.input_size, temperature=temperature,
                                         width=width), seeds)
    trained_shapes = [tuple(w.shape) for w in loaded.model.weights]
    if [tuple(w.shape) for w in model.weights] != trained_shapes:
        raise ValueError(f"the rebuilt {architecture!r} model does not match {loaded.name!r}: "
                         "its card's architecture, input size or width differ from the model file")
    return LoadedModel(name=f"{loaded.name} (random weights)", path=loaded.path, model=model, card=card)


def compute_maps(explainer: explain.Explainer, inputs: np.ndarray, methods: Sequence[str],
                 batch_size: int, progress: Progress | None = None,
                 label: str = "the model") -> dict[str, np.ndarray]:
    """Maps of every method for every input, towards PNEUMONIA; method -> (n, s, s) float32.

    Score-CAM runs one film at a time, as the app calls it: tf-keras-vis pools the
    strongest channels over the whole batch, so a batched Score-CAM map would depend
    on the other films in it (and score up to every channel of the layer).
    """
    maps = {}
    if progress is not None:
        progress.note(f"maps of {label}: {len(inputs)} films by "
                      + ", ".join(explain.METHODS[method] for method in methods))
    for method in methods:
        chunks = []
        step = 1 if method == "scorecam" else batch_size
        for start in range(0, len(inputs), step):
            chunk = inputs[start:start + step].astype(np.float32)
            chunks.append(explainer.heatmaps(chunk, method))
            if progress is not None:
                progress.advance(len(chunk))
        maps[method] = np.concatenate(chunks)
    return maps


# --- the measurement ----------------------------------------------------------------------


def count_maps(labels: Sequence[int] | np.ndarray, config: FaithfulnessConfig) -> int:
    """The maps :func:`measure` makes (every method's, of every film, on the model and each random
    model) and traces (each pneumonia film's maps and baselines): the unit its progress counts."""
    labels = np.asarray(labels).astype(int).ravel()
    methods = len(config.methods)
    return (len(labels) * methods * (1 + config.randomization_models)
            + int((labels == 1).sum()) * (methods + len(BASELINES)))


def check_can_measure(labels: Sequence[int] | np.ndarray, config: FaithfulnessConfig) -> None:
    """Check, before any film is decoded or explained, that ``config`` can measure these films.

    Args:
        labels: 1 for pneumonia, 0 for normal, one per film to be measured.
        config: the settings.

    Raises:
        ValueError: no films, or the ``"mean"`` or ``"normal"`` canvas without a normal film.
    """
    labels = np.asarray(labels).astype(int).ravel()
    if not len(labels):
        raise ValueError("there are no films to measure")
    if config.canvas in NORMAL_CANVASES and not (labels == 0).any():
        raise ValueError(f"the {config.canvas!r} canvas needs normal films among the films measured, "
                         f"and all {len(labels)} are pneumonia films; add normal films or choose "
                         "the 'blur' canvas.")


def measure(loaded: LoadedModel, inputs: np.ndarray, labels: np.ndarray,
            config: FaithfulnessConfig = FaithfulnessConfig(),
            progress: Progress | None = None) -> dict:
    """Deletion, insertion, randomisation and border share of each method on a set of films.

    Args:
        loaded: the model to explain.
        inputs: (n, s, s, 1) model inputs in 0-255 (uint8 or float).
        labels: (n,) 1 for pneumonia, 0 for normal.
        config: the settings.
        progress: told of each stage and of every map done (:func:`count_maps` in all).

    Returns:
        One entry per method (see :func:`summarize`), ``"baselines"``, ``"curves"``,
        ``"per_film"``, ``"settings"`` and ``n_films``.

    Raises:
        ValueError: no films, inputs of the wrong shape, or the ``"mean"`` or
            ``"normal"`` canvas without normal films (before anything is measured).
    """
    from pneumo.inference.predict import Classifier

    inputs, labels = _check_inputs(loaded, inputs, labels)
    check_can_measure(labels, config)
    size = loaded.input_size
    maps = compute_maps(explain.Explainer(loaded), inputs, config.methods, config.batch_size, progress)
    baselines = baseline_maps(len(inputs), size, feature_cells(loaded), config)
    random_maps = []  # one method -> maps dict per random model
    for i in range(config.randomization_models):
        random_weights = randomized_model(loaded, config.seed + i)
        random_maps.append(compute_maps(
            explain.Explainer(random_weights), inputs, config.methods, config.batch_size, progress,
            label=f"random model {i + 1}/{config.randomization_models}"))
    classifier = Classifier(loaded)
    curves, canvas_p = measure_curves(
        lambda batch: classifier.predict_inputs(batch, config.batch_size),
        inputs, labels, maps | baselines, config, progress)
    return summarize(maps, random_maps, baselines, curves, labels, canvas_p, config, size)


def measure_curves(score: Callable[[np.ndarray], np.ndarray], inputs: np.ndarray,
                   labels: np.ndarray, maps: dict[str, np.ndarray], config: FaithfulnessConfig,
                   progress: Progress | None = None) -> tuple[dict[str, dict[str, np.ndarray]], list]:
    """Deletion and insertion curves of every map on the pneumonia films.

    Returns:
        (name -> {"deletion": (m, steps + 1), "insertion": (m, steps + 1)}, and the
        P(pneumonia) of each of the m films' canvas).
    """
    positives = np.flatnonzero(labels == 1)
    canvases = make_canvases(inputs, labels, positives, config)
    per_map = {name: {"deletion": [], "insertion": []} for name in maps}
    canvas_p = []
    if progress is not None:
        progress.note(f"deletion and insertion: {len(positives)} pneumonia films, {len(maps)} maps each")
    for index, canvas in zip(positives, canvases):
        film_maps = {name: stack[index] for name, stack in maps.items()}
        rng = np.random.default_rng([config.seed, 1, int(index)])
        curves = film_curves(score, inputs[index].astype(np.float32), canvas, film_maps, config.steps, rng)
        for name, pair in curves.items():
            per_map[name]["deletion"].append(pair["deletion"])
            per_map[name]["insertion"].append(pair["insertion"])
        canvas_p.append(float(next(iter(curves.values()))["insertion"][0]))
        if progress is not None:
            progress.advance(len(maps))
    width = config.steps + 1
    return ({name: {kind: np.asarray(rows, dtype=np.float64).reshape(-1, width)
                    for kind, rows in pair.items()} for name, pair in per_map.items()}, canvas_p)


def make_canvases(inputs: np.ndarray, labels: np.ndarray, indices: np.ndarray,
                  config: FaithfulnessConfig) -> np.ndarray:
    """The canvas of each film in ``indices``: the mean normal film, a seeded normal film, or its blur.

    Raises:
        ValueError: the ``"mean"`` or ``"normal"`` canvas with no normal film in the set.
    """
    films = inputs[indices].astype(np.float32)
    if config.canvas == "blur":
        return blur_canvas(films, config.blur_sigma * inputs.shape[1])
    check_can_measure(labels, config)
    normals = np.flatnonzero(labels == 0)
    if config.canvas == "mean":
        mean = inputs[normals].astype(np.float32).mean(axis=0)
        return np.broadcast_to(mean, films.shape)
    rng = np.random.default_rng([config.seed, 2])
    return inputs[rng.choice(normals, size=len(indices))].astype(np.float32)


def baseline_maps(n: int, size: int, cells: int, config: FaithfulnessConfig) -> dict[str, np.ndarray]:
    """The random map (a fresh one per film, seeded) and the centred Gaussian, each (n, s, s)."""
    rng = np.random.default_rng([config.seed, 0])
    uniform = np.stack([random_map(size, cells, rng) for _ in range(n)]) if n else np.zeros((0, size, size))
    gaussian = np.broadcast_to(gaussian_map(size, config.gaussian_sigma), (n, size, size))
    return {"random": uniform.astype(np.float32), "gaussian": gaussian}


def feature_cells(loaded: LoadedModel) -> int:
    """Side of the explained layer's grid (12 for a 192-px compact CNN)."""
    return int(loaded.model.get_layer(loaded.explain_layer).output.shape[1])


# --- helpers ------------------------------------------------------------------------------


def _check_inputs(loaded: LoadedModel, inputs: np.ndarray, labels: np.ndarray):
    inputs, labels = np.asarray(inputs), np.asarray(labels).astype(int).ravel()
    size = loaded.input_size
    if inputs.ndim != 4 or inputs.shape[1:] != (size, size, 1):
        raise ValueError(f"inputs must have shape (n, {size}, {size}, 1), got {inputs.shape}")
    if len(inputs) == 0 or len(labels) != len(inputs):
        raise ValueError(f"need one label per film and at least one film, got {len(inputs)} films "
                         f"and {len(labels)} labels")
    return inputs, labels
