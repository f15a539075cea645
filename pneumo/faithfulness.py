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
  seeded random weights is explained on the same films; the Spearman rank
  correlation between the two maps of a film should be low for a method that
  depends on what the model learned. Every film is compared with the same random
  model, whose maps share one spatial pattern (set by its draw of weights and the
  convolutions' zero padding), so a single draw is one sample however many films
  are measured: on 100 validation films the shipped model's Grad-CAM gave 0.36
  against one draw and -0.10 against the next. The figure is therefore the mean
  over several random models (``randomization_models``), and each model's own
  mean is kept (``randomization_spearman_by_model``) to show the spread.
* **Border share**: the share of a map's weight in the outer band of the film
  (:func:`pneumo.explain.border_share`), where markers and text sit.

The canvas is what removed pixels become. A deletion curve can only fall as far as
the canvas's own score, so the canvas must be something the model reads as *no
pneumonia*; otherwise the curves say little (:func:`canvas_note` warns).

* ``"mean"`` (default): the pixel-wise mean of the normal films of the set, an
  average normal chest in the same framing. Removing a region puts back what a
  normal chest looks like there on average, with no other patient's anatomy pasted
  in and nothing drawn at random (the expected-value baseline of attribution methods).
* ``"normal"``: a seeded normal film of the set for each pneumonia film, one other
  child's chest.
* ``"blur"``: the film's own Gaussian blur, RISE's insertion canvas. A model that
  reads opacity rightly keeps a blurred consolidation as pneumonia, so for this task
  a blur removes little evidence; it is kept to compare with RISE.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from pneumo import data, explain
from pneumo.store import LoadedModel

EXPLANATIONS_FILE = "explanations.json"
"""Written beside ``card.json`` in a model's folder by :func:`save_explanations`."""

CANVASES = ("mean", "normal", "blur")
SPLIT_CHOICES = ("validation", "train", "val", "test", "all")
BASELINES = {"random": "Random map", "gaussian": "Centred Gaussian"}
"""Baseline key -> name shown to people."""
MAP_NAMES = {**explain.METHODS, **BASELINES}
"""Every map measured (methods, then baselines) -> name shown to people."""

TARGETS = {"gradcam": {"deletion_beats_random": 0.9, "insertion_beats_random": 0.9,
                       "randomization_spearman_max": 0.3, "border_share_median_max": 0.15}}
"""What the product asks of Grad-CAM on the shipped model's validation films."""

BASELINE_TARGETS = {"gradcam": {"deletion_auc": "gaussian"}}
"""Method -> {figure: baseline whose figure it must beat}. Grad-CAM's deletion AUC must be
below the centred Gaussian's: a map that does no better than "the middle of the film"
shows a prior, not the evidence of this film."""

MIN_SCORE_DROP = 0.25
"""Below this gap between the films' and their canvases' mean P(pneumonia), :func:`canvas_note` warns."""

Progress = Callable[[str], None]


@dataclass(frozen=True)
class FaithfulnessConfig:
    """The settings of one measurement; recorded in its results.

    Attributes:
        steps: deletion/insertion steps; the curve has ``steps + 1`` points.
        canvas: one of :data:`CANVASES`.
        blur_sigma: sigma of the blur canvas as a fraction of the input side
            (RISE: 5 px at 224 px).
        gaussian_sigma: sigma of the centred-Gaussian baseline as a fraction of the side.
        methods: keys of :data:`pneumo.explain.METHODS` to measure.
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


def trapezoid_auc(scores: Sequence[float]) -> float:
    """Area under a curve sampled at evenly spaced fractions from 0 to 1 (trapezoid rule)."""
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 1 or len(scores) < 2:
        raise ValueError(f"a curve needs at least two points, got shape {scores.shape}")
    return float(np.trapezoid(scores, dx=1.0 / (len(scores) - 1)))


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

    Built with :func:`pneumo.models.build` from the card's architecture and input size (for
    an ensemble, as many random members combined by :func:`pneumo.models.build_ensemble`);
    the compact CNN's width is the card's ``training.config.width``, or, for a card
    without a training record, read from the model's first block. Resets Keras's
    global random seeds to ``seed``.

    Raises:
        ValueError: the rebuilt model's weights do not have the shapes of the original's.
    """
    import keras

    from pneumo import models

    card = loaded.card
    architecture = card.get("architecture", "cnn")
    width = card.get("training", {}).get("config", {}).get("width")
    if width is None and architecture == "cnn" and not card.get("ensemble"):
        width = loaded.model.get_layer("block1_a_conv").filters
    keras.utils.set_random_seed(seed)
    temperature = float(card.get("temperature", 1.0))
    members = (card.get("ensemble") or {}).get("members")
    if members:  # an ensemble of fresh random members, combined the same way
        model = models.build_ensemble([models.build(architecture, loaded.input_size, width=int(width or 32))
                                       for _ in range(int(members))], temperature, width=int(width or 32))
    else:
        model = models.build(architecture, loaded.input_size, temperature=temperature, width=int(width or 32))
    trained_shapes = [tuple(w.shape) for w in loaded.model.weights]
    if [tuple(w.shape) for w in model.weights] != trained_shapes:
        raise ValueError(f"the rebuilt {architecture!r} model does not match {loaded.name!r}: "
                         "its card's architecture, input size or width differ from the model file")
    return LoadedModel(name=f"{loaded.name} (random weights)", path=loaded.path, model=model, card=card)


def compute_maps(explainer: explain.Explainer, inputs: np.ndarray, methods: Sequence[str],
                 batch_size: int, progress: Progress | None = None,
                 label: str = "") -> dict[str, np.ndarray]:
    """Maps of every method for every input, towards PNEUMONIA; method -> (n, s, s) float32.

    Score-CAM runs one film at a time, as the app calls it: tf-keras-vis pools the
    strongest channels over the whole batch, so a batched Score-CAM map would depend
    on the other films in it (and score up to every channel of the layer).
    """
    maps = {}
    for method in methods:
        chunks = []
        step = 1 if method == "scorecam" else batch_size
        for start in range(0, len(inputs), step):
            chunk = inputs[start:start + step].astype(np.float32)
            chunks.append(explainer.heatmaps(chunk, method))
            done = min(start + step, len(inputs))
            if done == len(inputs) or done % 16 == 0:
                _report(progress, f"{label}{explain.METHODS[method]} maps: {done}/{len(inputs)} films")
        maps[method] = np.concatenate(chunks)
    return maps


def rank_correlations(maps_a: np.ndarray, maps_b: np.ndarray) -> np.ndarray:
    """Spearman rank correlation of each pair of maps, (n, h, w) twice -> (n,).

    A constant map has no ranks to correlate: its entry is NaN.
    """
    from scipy.stats import spearmanr

    values = []
    for a, b in zip(maps_a, maps_b):
        if np.ptp(a) == 0 or np.ptp(b) == 0:
            values.append(math.nan)
        else:
            values.append(float(spearmanr(a.ravel(), b.ravel()).statistic))
    return np.asarray(values)


# --- the measurement ----------------------------------------------------------------------


def measure(loaded: LoadedModel, inputs: np.ndarray, labels: np.ndarray,
            config: FaithfulnessConfig = FaithfulnessConfig(),
            progress: Progress | None = None) -> dict:
    """Deletion, insertion, randomisation and border share of each method on a set of films.

    Args:
        loaded: the model to explain.
        inputs: (n, s, s, 1) model inputs in 0-255 (uint8 or float).
        labels: (n,) 1 for pneumonia, 0 for normal.
        config: the settings.
        progress: called with a line of progress now and then.

    Returns:
        One entry per method (see :func:`summarize`), ``"baselines"``, ``"curves"``,
        ``"per_film"``, ``"settings"`` and ``n_films``.

    Raises:
        ValueError: no films, inputs of the wrong shape, or the ``"mean"`` or
            ``"normal"`` canvas without normal films.
    """
    from pneumo.predict import Classifier

    inputs, labels = _check_inputs(loaded, inputs, labels)
    size = loaded.input_size
    maps = compute_maps(explain.Explainer(loaded), inputs, config.methods, config.batch_size, progress)
    baselines = baseline_maps(len(inputs), size, feature_cells(loaded), config)
    random_maps = []  # one method -> maps dict per random model
    for i in range(config.randomization_models):
        random_weights = randomized_model(loaded, config.seed + i)
        random_maps.append(compute_maps(
            explain.Explainer(random_weights), inputs, config.methods, config.batch_size, progress,
            label=f"random model {i + 1}/{config.randomization_models}: "))
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
    for done, (index, canvas) in enumerate(zip(positives, canvases), start=1):
        film_maps = {name: stack[index] for name, stack in maps.items()}
        rng = np.random.default_rng([config.seed, 1, int(index)])
        curves = film_curves(score, inputs[index].astype(np.float32), canvas, film_maps, config.steps, rng)
        for name, pair in curves.items():
            per_map[name]["deletion"].append(pair["deletion"])
            per_map[name]["insertion"].append(pair["insertion"])
        canvas_p.append(float(next(iter(curves.values()))["insertion"][0]))
        if done == len(positives) or done % 5 == 0:
            _report(progress, f"deletion and insertion: {done}/{len(positives)} pneumonia films")
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
    normals = np.flatnonzero(labels == 0)
    if not len(normals):
        raise ValueError(f"the {config.canvas!r} canvas needs normal films among the films measured")
    if config.canvas == "mean":
        mean = inputs[normals].astype(np.float32).mean(axis=0)
        return np.broadcast_to(mean, films.shape)
    rng = np.random.default_rng([config.seed, 2])
    return inputs[rng.choice(normals, size=len(indices))].astype(np.float32)


def baseline_maps(n: int, size: int, cells: int, config: FaithfulnessConfig) -> dict[str, np.ndarray]:
    """The random map (a fresh one per film, seeded) and the centred Gaussian, each (n, s, s)."""
    rng = np.random.default_rng([config.seed, 0])
    random = np.stack([random_map(size, cells, rng) for _ in range(n)]) if n else np.zeros((0, size, size))
    gaussian = np.broadcast_to(gaussian_map(size, config.gaussian_sigma), (n, size, size))
    return {"random": random.astype(np.float32), "gaussian": gaussian}


def feature_cells(loaded: LoadedModel) -> int:
    """Side of the explained layer's grid (12 for a 192-px compact CNN)."""
    return int(loaded.model.get_layer(loaded.explain_layer).output.shape[1])


# --- summaries ----------------------------------------------------------------------------


def summarize(maps: dict[str, np.ndarray], random_maps: Sequence[dict[str, np.ndarray]],
              baselines: dict[str, np.ndarray], curves: dict[str, dict[str, np.ndarray]],
              labels: np.ndarray, canvas_p: Sequence[float], config: FaithfulnessConfig,
              size: int) -> dict:
    """The results as JSON-ready values: one object per method, plus baselines and settings."""
    films = per_film_figures(maps | baselines, random_maps, curves)
    result: dict = {"n_films": int(len(labels)), "n_pneumonia": int((labels == 1).sum()),
                    "n_normal": int((labels == 0).sum())}
    for method in maps:
        result[method] = summarize_method(films[method], films)
    result["baselines"] = {name: _summarize_common(films[name]) for name in baselines}
    result["curves"] = {"fraction": np.linspace(0, 1, config.steps + 1).round(4).tolist(),
                        **{name: {kind: _round(c.mean(axis=0)) if len(c) else None
                                  for kind, c in pair.items()} for name, pair in curves.items()}}
    result["per_film"] = {"label": labels.astype(int).tolist(),
                          "curve_films": np.flatnonzero(labels == 1).tolist(),
                          **{name: {key: _round(values) for key, values in figures.items()}
                             for name, figures in films.items()}}
    p_film = [float(c[0]) for c in next(iter(curves.values()))["deletion"]] if curves else []
    result["settings"] = {
        **asdict(config), "methods": list(config.methods), "input_size": size, "target": "PNEUMONIA",
        "score": "P(pneumonia) from the model's own output",
        "curves_on": "pneumonia films (per_film.curve_films)", "border_margin": explain.BORDER_MARGIN,
        "warm_floor": explain.WARM_FLOOR,
        "random_map": "uniform random values on the explained layer's grid, one map per film",
        "randomization": (f"mean Spearman rho against {config.randomization_models} models of the "
                          f"same architecture with random weights (seeds {config.seed} to "
                          f"{config.seed + config.randomization_models - 1})"),
        "canvas_p_pneumonia": _mean(canvas_p), "film_p_pneumonia": _mean(p_film)}
    return result


def per_film_figures(maps: dict[str, np.ndarray], random_maps: Sequence[dict[str, np.ndarray]],
                     curves: dict[str, dict[str, np.ndarray]]) -> dict[str, dict[str, np.ndarray]]:
    """Per map name, the figures of each film.

    Returns:
        name -> {"deletion_auc", "insertion_auc"} over the curve films, and
        {"border_share", "warm_border_share", "attention_warning"} over all films; for
        maps with random-weights counterparts also "randomization_spearman_by_model"
        (models, n) and its mean over the models, "randomization_spearman" (n,).
    """
    films = {}
    for name, stack in maps.items():
        figures = {f"{kind}_auc": np.array([trapezoid_auc(c) for c in curves[name][kind]])
                   for kind in ("deletion", "insertion")}
        figures["border_share"] = np.array([explain.border_share(m) for m in stack])
        figures["warm_border_share"] = np.array([explain.border_share(m, floor=explain.WARM_FLOOR)
                                                 for m in stack])
        figures["attention_warning"] = np.array([explain.attention_warning(m) is not None for m in stack])
        if random_maps and name in random_maps[0]:
            by_model = np.stack([rank_correlations(stack, model_maps[name]) for model_maps in random_maps])
            figures["randomization_spearman_by_model"] = by_model  # (models, n)
            # Mean over the models that gave a map; NaN (no warning) where none did.
            figures["randomization_spearman"] = np.ma.masked_invalid(by_model).mean(axis=0).filled(np.nan)
        films[name] = figures
    return films


def summarize_method(own: dict[str, np.ndarray], films: dict[str, dict[str, np.ndarray]]) -> dict:
    """The figures of one method; its AUCs are compared film by film with each baseline's."""
    figures = _summarize_common(own)
    for baseline in BASELINES:
        other = films[baseline]
        figures[f"deletion_beats_{baseline}"] = _share(own["deletion_auc"] < other["deletion_auc"])
        figures[f"insertion_beats_{baseline}"] = _share(own["insertion_auc"] > other["insertion_auc"])
    rho = own["randomization_spearman"]
    defined = rho[~np.isnan(rho)]
    by_model = [_mean(row[~np.isnan(row)]) for row in own["randomization_spearman_by_model"]]
    figures.update({
        "randomization_spearman": _mean(defined),
        "randomization_spearman_median": float(np.median(defined)) if len(defined) else None,
        "randomization_spearman_by_model": by_model,
        "randomization_spearman_max_model": max((v for v in by_model if v is not None), default=None),
        "randomization_undefined": int(np.isnan(rho).sum()),
        "n_films": int(len(rho)),
        "n_curve_films": int(len(own["deletion_auc"])),
    })
    return figures


def _summarize_common(figures: dict[str, np.ndarray]) -> dict:
    """Means of the AUCs and medians of the border shares: what methods and baselines share."""
    return {"deletion_auc": _mean(figures["deletion_auc"]),
            "insertion_auc": _mean(figures["insertion_auc"]),
            "border_share_median": float(np.median(figures["border_share"])),
            "border_share_mean": float(figures["border_share"].mean()),
            "warm_border_share_median": float(np.median(figures["warm_border_share"])),
            "attention_warning_rate": _share(figures["attention_warning"])}


def check_targets(result: dict) -> dict[str, dict]:
    """Each product target of :data:`TARGETS` with the measured value and whether it is met."""
    checks = {}
    for method, targets in TARGETS.items():
        figures = result.get(method)
        if not figures:
            continue
        for key, target in targets.items():
            field, at_most = (key[:-4], True) if key.endswith("_max") else (key, False)
            value = figures.get(field)
            met = None if value is None else (value < target if at_most else value >= target)
            checks[f"{method}.{key}"] = {"value": value, "target": target, "met": met}
        for field, baseline in BASELINE_TARGETS.get(method, {}).items():
            value = figures.get(field)
            target = (result.get("baselines", {}).get(baseline) or {}).get(field)
            met = None if value is None or target is None else value < target
            checks[f"{method}.{field}_below_{baseline}"] = {"value": value, "target": target, "met": met}
    return checks


def summary_rows(result: dict) -> list[dict]:
    """One row per method and baseline with the headline figures, for tables (CLI, model page)."""
    rows = []
    for key, name in MAP_NAMES.items():
        figures = result.get(key) or result.get("baselines", {}).get(key)
        if not figures:
            continue
        rows.append({"method": name, "deletion_auc": figures.get("deletion_auc"),
                     "insertion_auc": figures.get("insertion_auc"),
                     "deletion_beats_random": figures.get("deletion_beats_random"),
                     "insertion_beats_random": figures.get("insertion_beats_random"),
                     "randomization_spearman": figures.get("randomization_spearman"),
                     "border_share_median": figures.get("border_share_median")})
    return rows


def reading_guide(result: dict) -> str:
    """How to read the figures of ``result``, in words, for the model page."""
    settings = result.get("settings", {})
    models = settings.get("randomization_models", 1)
    gradcam = result.get("gradcam") or {}
    spread = [v for v in gradcam.get("randomization_spearman_by_model") or [] if v is not None]
    spread_text = (f" (Grad-CAM: {min(spread):.2f} to {max(spread):.2f} from one random model to "
                   "another)") if len(spread) > 1 else ""
    return (f"{result.get('n_films')} validation films. Deletion: removing the most salient pixels "
            f"first (replaced by the {settings.get('canvas', '?')} canvas) should make P(pneumonia) "
            "fall fast (lower is better); insertion: revealing them first should make it rise fast "
            "(higher is better); 'beats random' is the share of pneumonia films where the map does "
            "better than a random one. Randomisation: rank correlation with the maps of the same "
            f"network with random weights, averaged over {models} random "
            f"model{'s' if models != 1 else ''}{spread_text}; low means the map depends on what the "
            "model learned. Border: share of the map's weight in the film's outer band.")


def target_rows(targets: dict[str, dict]) -> list[dict]:
    """The product's targets (:func:`check_targets`) as table rows, in words."""
    words = {"deletion_beats_random": "deletion beats random on at least",
             "insertion_beats_random": "insertion beats random on at least",
             "randomization_spearman_max": "randomisation rank correlation below",
             "border_share_median_max": "median border share below",
             "deletion_auc_below_gaussian": "deletion AUC below the centred Gaussian's"}
    rows = []
    for key, check in targets.items():
        method, _, figure = key.partition(".")
        rows.append({"target": f"{MAP_NAMES.get(method, method)}: {words.get(figure, figure)} "
                               f"{_bound(check['target'])}",
                     "measured": None if check["value"] is None else round(check["value"], 3),
                     "met": {True: "yes", False: "no", None: "n/a"}[check["met"]]})
    return rows


def format_summary(result: dict) -> str:
    """The results as a fixed-width table with the settings that matter to read it."""
    settings = result.get("settings", {})
    header = (f"{'':<20}{'del AUC':>9}{'ins AUC':>9}{'del<rnd':>9}{'ins>rnd':>9}"
              f"{'rand rho':>10}{'border':>8}")
    lines = [f"{result['n_films']} films ({result['n_pneumonia']} pneumonia, {result['n_normal']} normal); "
             f"curves on the pneumonia films, canvas {settings.get('canvas')}, "
             f"{settings.get('steps')} steps", "", header]
    for row in summary_rows(result):
        cells = [row[k] for k in ("deletion_auc", "insertion_auc", "deletion_beats_random",
                                  "insertion_beats_random")]
        lines.append(f"{row['method']:<20}" + "".join(f"{_fmt(v):>9}" for v in cells)
                     + f"{_fmt(row['randomization_spearman']):>10}{_fmt(row['border_share_median']):>8}")
    spreads = [f"{explain.METHODS[m]} {', '.join(_fmt(v) for v in result[m]['randomization_spearman_by_model'])}"
               for m in explain.METHODS if result.get(m, {}).get("randomization_spearman_by_model")]
    if spreads:
        lines += ["", "rand rho against each random-weights model: " + "; ".join(spreads)]
    lines += ["", f"mean P(pneumonia): films {_fmt(settings.get('film_p_pneumonia'))}, "
                  f"their canvases {_fmt(settings.get('canvas_p_pneumonia'))}"]
    note = canvas_note(result)
    if note:
        lines.append(f"note: {note}")
    for key, check in result.get("targets", {}).items():
        verdict = {True: "met", False: "MISSED", None: "n/a"}[check["met"]]
        lines.append(f"target {key} {_bound(check['target'])}: {_fmt(check['value'])} {verdict}")
    return "\n".join(lines)


def canvas_note(result: dict, min_drop: float = MIN_SCORE_DROP) -> str | None:
    """A warning when the canvas scores nearly as high as the films, else None.

    Deletion can only lower P(pneumonia) as far as the canvas's own score, so when
    the two ends of the curves lie within ``min_drop`` of each other the AUCs differ
    by little more than noise and "beats random" says little.
    """
    settings = result.get("settings", {})
    film_p, canvas_p = settings.get("film_p_pneumonia"), settings.get("canvas_p_pneumonia")
    if film_p is None or canvas_p is None or film_p - canvas_p >= min_drop:
        return None
    others = " or ".join(f"--canvas {c}" for c in CANVASES if c != settings.get("canvas"))
    return (f"the {settings.get('canvas')} canvas alone scores P(pneumonia) {canvas_p:.3f} against "
            f"{film_p:.3f} for the films, so removing pixels cannot lower the score much and the "
            f"deletion and insertion figures say little; compare with {others}.")


# --- which films, and where results go ----------------------------------------------------


def model_validation_records(root: str | Path, card: dict) -> list[data.FilmRecord] | None:
    """The model's own held-out films under ``root``, or None when ``root`` is not its data.

    They come from :func:`pneumo.folds.training_records` (for an ensemble, the films its
    first member never saw), on ``root`` or, for a split folder such as ``.../train``, on
    its parent; the card's checksum of those films must match, so these are never
    training films of that model.
    """
    from pneumo import folds

    root = Path(root).resolve()
    for candidate in (root, root.parent):
        try:
            _, validation = folds.training_records(card, candidate)
        except (ValueError, FileNotFoundError):  # no films there, or not the films of the card
            continue
        return [r for r in validation if r.path.resolve().is_relative_to(root)]
    return None


def select_records(root: str | Path, card: dict, split: str | None) -> tuple[list[data.FilmRecord], str]:
    """The films to measure and a name for them.

    With no ``split``: the model's validation films when ``root`` holds its training
    data, else the ``test`` split of a Kaggle root, else every film under ``root``.

    Raises:
        FileNotFoundError: ``root`` does not exist.
        ValueError: an unknown split, ``"validation"`` when ``root`` is not the model's
            training data, or no films.
    """
    if split is not None and split not in SPLIT_CHOICES:
        raise ValueError(f"unknown split {split!r}; choose from {SPLIT_CHOICES}")
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"No such data folder: {root}")
    if split in (None, "validation"):
        validation = model_validation_records(root, card)
        if validation:
            return validation, "validation"
        if split == "validation":
            raise ValueError(f"{root} does not hold this model's training data (its validation split "
                             "cannot be recomputed there); pick --split test, val, train or all.")
    if split in ("train", "val", "test"):
        return data.find_films(root, splits=(split,)), split
    if split is None and (root / "test").is_dir():
        return data.find_films(root, splits=("test",)), "test"
    return data.find_films(root), "all"


def stratified_sample(records: Sequence[data.FilmRecord], limit: int | None,
                      seed: int = 0) -> list[data.FilmRecord]:
    """A seeded sample of ``limit`` films keeping each class's share (at least one per class).

    Returns all records when ``limit`` is None or not smaller than their number.

    Raises:
        ValueError: ``limit`` below 1.
    """
    if limit is None or limit >= len(records):
        return list(records)
    if limit < 1:
        raise ValueError(f"limit must be at least 1, got {limit}")
    rng = np.random.default_rng(seed)
    by_class = [[r for r in records if r.label == label] for label in range(len(data.CLASSES))]
    by_class = [group for group in by_class if group]
    quotas = [max(1, round(limit * len(group) / len(records))) for group in by_class]
    quotas[int(np.argmax(quotas))] -= sum(quotas) - limit  # the rounding goes to the largest class
    chosen = [group[i] for group, quota in zip(by_class, quotas)
              for i in rng.choice(len(group), size=max(quota, 0), replace=False)]
    return sorted(chosen, key=lambda r: str(r.path))


def save_explanations(result: dict, model_folder: str | Path) -> Path:
    """Write results to ``explanations.json`` beside the model's ``card.json``.

    A file of its own rather than a card field: the card is the training record,
    written once with the model file's sha256, and this measurement can be rerun
    (new films, new settings) without rewriting it. The results carry the
    ``model_sha256`` they were measured on, so :func:`read_explanations` can ignore
    figures of a replaced model.

    Raises:
        ValueError: the results do not name the model's sha256.
    """
    if not result.get("model_sha256"):
        raise ValueError("the results must carry the model_sha256 they were measured on")
    path = Path(model_folder) / EXPLANATIONS_FILE
    path.write_text(json.dumps(result, indent=1) + "\n")
    return path


def read_explanations(model_folder: str | Path, model_sha256: str | None = None) -> dict | None:
    """The stored results of a model, or None when absent, unreadable or for another model file."""
    path = Path(model_folder) / EXPLANATIONS_FILE
    if not path.is_file():
        return None
    try:
        result = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    if model_sha256 is not None and result.get("model_sha256") != model_sha256:
        return None
    return result


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


def _mean(values) -> float | None:
    values = np.asarray(values, dtype=np.float64)
    return float(values.mean()) if values.size else None


def _share(flags: np.ndarray) -> float | None:
    return float(np.mean(flags)) if len(flags) else None


def _round(values, digits: int = 4) -> list:
    """Rounded floats for JSON (nested lists for 2-D values), with None where a value is NaN."""
    values = np.asarray(values, dtype=np.float64)
    rounded = np.round(values, digits).astype(object)
    rounded[np.isnan(values)] = None
    return rounded.tolist()


def _fmt(value) -> str:
    return "n/a" if value is None else f"{value:.3f}"


def _bound(target) -> str:
    return "n/a" if target is None else f"{target:.3g}"


def _report(progress: Progress | None, message: str) -> None:
    if progress is not None:
        progress(message)
