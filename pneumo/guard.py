"""A guard against out-of-scope images: what is not a frontal chest film is refused, with a reason.

Eight checks score every image; each refuses above its own threshold, and the
reason given is the most specific one that applies, in this order. The cheap named
checks (noise, blank, document) look at the film itself at 256 x 256, whatever the
model's input size, so their reason describes the file that was given:

- ``colour``: the file held several hues (``Film.colourfulness``); films are grey.
- ``noise``: most of the variation is from one pixel to the next (1 - lag-one correlation).
- ``blank``: the intensity spread (1st to 99th percentile) is tiny.
- ``layout``: a small linear classifier on the 32 x 32 film, fitted on training films and
  their own transforms, tells upright films from films turned by 90 degrees, upside down,
  inverted, and collages of several films. Its reason is named only when undoing the
  transform (or cutting the collage into tiles) gives something that looks like a film.
- ``document``: a light page crossed by many sharp edges (text).
- ``features``, ``statistics``, ``appearance``: how unlike the training films the image is:
  Mahalanobis distance on the classifier's pooled features ("pool" layer, Ledoit-Wolf
  shrunk covariance), Mahalanobis distance on 49 film statistics (intensity quantiles,
  edge strength, row and column profiles), and the residual of a 16-component PCA of the
  32 x 32 film (a linear autoencoder's reconstruction error).

Everything is fitted on training films only. Thresholds are set on the patient-grouped
validation split: each check at the same validation quantile level, the largest at which
at most 1% of validation films are refused, counted on all of them and cross-fitted between
two halves of the patients; the named cheap checks also have a fixed floor, so they fire
only on what their name says. The fitted arrays are saved as
``guard.npz`` beside the model (no pickle), the thresholds and figures in the card's
``guard`` section with the file's sha256.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from pneumo.io import Film
from pneumo.preprocess import to_model_input
from pneumo.store import LoadedModel, ModelStoreError, file_sha256, read_card, write_card

GUARD_FILE = "guard.npz"
POOL_LAYER = "pool"
TARGET_REJECTION = 0.01
"""At most this share of real validation films is refused."""

VIEW_SIDE = 256
"""The side at which the cheap named checks look at a film."""
LAYOUT_SIDE = 32
PROFILE_BINS = 16
PCA_COMPONENTS = 16
NAME_CONFIDENCE = 0.5
"""The layout classifier names a transform only when it is the more likely answer."""
TILE_MARGIN = 1.0
"""A collage's tiles count as films up to this appearance margin (twice the usual spread)."""

CHECKS = ("colour", "noise", "blank", "document", "layout", "features", "statistics", "appearance")
LEARNED_CHECKS = ("layout", "features", "statistics", "appearance")
LAYOUTS = ("upright", "rotated", "upside_down", "inverted", "collage")

# Bounds that make a named check mean what its name says; a threshold is never below its
# floor (for "blank", the score is minus the intensity spread: below 0.2 of the range).
FLOORS = {"colour": 0.03, "blank": -0.2, "noise": 0.5, "document": 0.1}
LIGHT_PAGE = 0.6  # median intensity above which an image is a light page (document check)
EDGE_STEP = 0.1  # a step between neighbouring pixels counted as an edge (0-1 scale)

REASONS = {
    "colour": "This looks like a colour photograph, not an X-ray film.",
    "blank": "The image is blank or almost uniform: there is no film to read.",
    "noise": "The image looks like random noise, not an X-ray film.",
    "document": "This looks like a scanned document or text, not an X-ray film.",
    "rotated": "The film appears to be rotated by 90 degrees (lying on its side); "
               "upload it upright.",
    "upside_down": "The film appears to be upside down (rotated by 180 degrees); upload it upright.",
    "inverted": "The film appears to have inverted polarity (bones dark, lungs light); "
                "upload it as a standard film, bones white.",
    "collage": "The image appears to hold several films; upload one film at a time.",
    "unfamiliar": "The image does not look like the frontal chest films of young children "
                  "this model was trained on, so it gives no result.",
}
"""One sentence per reason, for the clinician."""

_QUANTILES = np.linspace(0.02, 0.98, 13)


@dataclass(frozen=True)
class ScopeVerdict:
    """The guard's answer for one image.

    Attributes:
        in_scope: False when the image is refused.
        kind: the reason's key in :data:`REASONS` ("" when in scope).
        reason: the sentence for the clinician ("" when in scope).
        score: the combined out-of-scope score: above 0 is refused; larger is further out.
        fired: the checks above their threshold.
    """

    in_scope: bool
    kind: str
    reason: str
    score: float
    fired: tuple[str, ...]


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


# ---------------------------------------------------------------- transforms of films


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


# ---------------------------------------------------------------- the guard


class Guard:
    """Fitted arrays and thresholds: model inputs (and their pooled features) in, verdicts out.

    Build one with :func:`fit_guard` or :func:`load_guard`; it holds no model of its own.
    """

    def __init__(self, arrays: dict[str, np.ndarray], settings: dict):
        """Hold a fitted guard.

        Args:
            arrays: the fitted arrays (the contents of ``guard.npz``).
            settings: the card's ``guard`` section; ``checks`` maps each check to its
                ``threshold`` and ``scale`` (left out while fitting).
        """
        self.arrays = {key: np.asarray(value) for key, value in arrays.items()}
        self.settings = settings
        self.input_size = int(settings["input_size"])
        checks = settings.get("checks", {})
        self.thresholds = {name: float(checks[name]["threshold"]) for name in checks}
        self.scales = {name: float(checks[name]["scale"]) for name in checks}

    def scores(self, inputs: np.ndarray, pooled: np.ndarray,
               films: Sequence[Film]) -> tuple[dict[str, np.ndarray], np.ndarray]:
        """Every check's score (higher is further out of scope).

        Args:
            inputs: model inputs (n, S, S, 1) in 0-255.
            pooled: the model's pooled features (n, D).
            films: the decoded films the inputs were made from (colour and cheap checks).

        Returns:
            (check name -> (n,) scores, layout probabilities (n, 5) over :data:`LAYOUTS`).
        """
        images = np.asarray(inputs, dtype=np.float32)[..., 0] / 255.0
        cheap = [cheap_scores(film_view(film)) for film in films]
        statistics = np.stack([film_statistics(image) for image in images])
        vectors = np.stack([layout_vector(image) for image in images])
        layout = self.layout_probabilities(vectors)
        result = {"colour": np.array([film.colourfulness for film in films], dtype=np.float64)}
        for name in ("blank", "noise", "document"):
            result[name] = np.array([row[name] for row in cheap])
        result["layout"] = -np.log(np.clip(layout[:, 0], 1e-12, 1.0))
        result["features"] = self._mahalanobis("pool", np.asarray(pooled, dtype=np.float64))
        result["statistics"] = self._mahalanobis("statistics", statistics)
        result["appearance"] = self._residual(vectors)
        return result, layout

    def margins(self, scores: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each score relative to its threshold: 0 at the threshold, -1 at the validation median."""
        return {name: (scores[name] - self.thresholds[name]) / self.scales[name]
                for name in CHECKS if name in scores}

    def judge(self, inputs: np.ndarray, pooled: np.ndarray, films: Sequence[Film]) -> list[ScopeVerdict]:
        """Verdicts for a batch of model inputs (see :meth:`scores` for the arguments)."""
        scores, layout = self.scores(inputs, pooled, films)
        margins = self.margins(scores)
        combined = np.max(np.stack([margins[name] for name in CHECKS]), axis=0)
        verdicts = []
        for index, image in enumerate(np.asarray(inputs, dtype=np.float32)[..., 0] / 255.0):
            fired = tuple(name for name in CHECKS if margins[name][index] > 0)
            if not fired:
                verdicts.append(ScopeVerdict(True, "", "", float(combined[index]), ()))
                continue
            kind = self._name(fired, image, layout[index])
            verdicts.append(ScopeVerdict(False, kind, REASONS[kind], float(combined[index]), fired))
        return verdicts

    def layout_probabilities(self, vectors: np.ndarray) -> np.ndarray:
        """Softmax of the layout classifier over :data:`LAYOUTS`; (n, 5)."""
        logits = vectors @ self.arrays["layout_coef"].T + self.arrays["layout_intercept"]
        logits -= logits.max(axis=1, keepdims=True)
        weights = np.exp(logits)
        return weights / weights.sum(axis=1, keepdims=True)

    def _mahalanobis(self, prefix: str, values: np.ndarray) -> np.ndarray:
        centred = values - self.arrays[f"{prefix}_mean"]
        squared = np.einsum("ij,jk,ik->i", centred, self.arrays[f"{prefix}_precision"], centred)
        return np.sqrt(np.clip(squared, 0.0, None))

    def _residual(self, vectors: np.ndarray) -> np.ndarray:
        centred = vectors - self.arrays["appearance_mean"]
        components = self.arrays["appearance_components"]
        rest = centred - (centred @ components.T) @ components
        return (rest ** 2).sum(axis=1)

    def _name(self, fired: tuple[str, ...], image: np.ndarray, layout: np.ndarray) -> str:
        """The most specific reason for a refused image: a named check, else "unfamiliar"."""
        for name in ("colour", "noise", "blank"):
            if name in fired:
                return name
        best = int(np.argmax(layout[1:])) + 1
        if "layout" in fired and layout[best] >= NAME_CONFIDENCE:
            kind = LAYOUTS[best]
            if kind == "collage" and self._holds_films(image):
                return kind
            if kind != "collage" and any(self._looks_like_film(undone) for undone in _undo(image, kind)):
                return kind
        return "document" if "document" in fired else "unfamiliar"

    def _looks_like_film(self, image: np.ndarray) -> bool:
        """Whether an image passes the statistics and appearance checks."""
        statistics = film_statistics(image)
        stats_margin = (self._mahalanobis("statistics", statistics[np.newaxis])[0]
                        - self.thresholds["statistics"]) / self.scales["statistics"]
        return stats_margin <= 0 and self._appearance_margin([image])[0] <= 0

    def _holds_films(self, image: np.ndarray) -> bool:
        """Whether some grid cuts the image into tiles most of which look like films."""
        for rows, cols in ((1, 2), (2, 1), (2, 2), (2, 3), (3, 2), (3, 3)):
            tiles = tiles_of(image, rows, cols)
            if np.mean(self._appearance_margin(tiles) <= TILE_MARGIN) > 0.5:
                return True
        return False

    def _appearance_margin(self, images: Sequence[np.ndarray]) -> np.ndarray:
        residual = self._residual(np.stack([layout_vector(image) for image in images]))
        return (residual - self.thresholds["appearance"]) / self.scales["appearance"]


def _undo(image: np.ndarray, kind: str) -> list[np.ndarray]:
    """The film as it would look if the named transform were undone."""
    if kind == "rotated":
        return [np.rot90(image, 1), np.rot90(image, 3)]
    if kind == "upside_down":
        return [np.rot90(image, 2), image[::-1]]
    if kind == "inverted":
        return [1.0 - image]
    return [image]


# ---------------------------------------------------------------- fitting


def fit_guard(loaded: LoadedModel, train_inputs: np.ndarray, val_inputs: np.ndarray, *,
              val_groups: Sequence[str] | None = None, max_train: int | None = 2000,
              max_layout: int = 1500, seed: int = 0, log: Callable[[str], None] = print,
              val_pooled: np.ndarray | None = None) -> dict:
    """Fit the guard on training films and set its thresholds on validation films.

    Args:
        loaded: the model whose pooled features the guard reads.
        train_inputs: training films as model inputs (n, S, S, 1) in 0-255 (uint8 is fine).
        val_inputs: validation films, the same way; never used for fitting, only thresholds.
        val_groups: the patient of each validation film, for the cross-fitted rejection rate.
        max_train: at most this many training films (drawn with ``seed``) are used.
        max_layout: at most this many of those make the layout classifier's examples.
        seed: seeds the draws and the fits.
        log: where progress lines go.
        val_pooled: the validation films' pooled features, when already computed.

    Returns:
        {"arrays": the contents of ``guard.npz``, "settings": the card's ``guard`` section
        (thresholds, scales, validation rejection rates)}.

    Raises:
        ValueError: inputs of the wrong shape, or too few films to fit.
    """
    size = loaded.input_size
    for name, inputs in (("train_inputs", train_inputs), ("val_inputs", val_inputs)):
        if np.ndim(inputs) != 4 or tuple(np.shape(inputs)[1:]) != (size, size, 1):
            raise ValueError(f"{name} must have shape (n, {size}, {size}, 1), got {np.shape(inputs)}")
    if len(train_inputs) < 10 or len(val_inputs) < 10:
        raise ValueError(f"the guard needs at least 10 training and 10 validation films, got "
                         f"{len(train_inputs)} and {len(val_inputs)}")
    rng = np.random.default_rng(seed)
    chosen = np.arange(len(train_inputs))
    if max_train and len(chosen) > max_train:
        chosen = np.sort(rng.choice(len(chosen), max_train, replace=False))
    two_headed = feature_model(loaded.model)
    log(f"guard: fitting on {len(chosen)} training films, thresholds on {len(val_inputs)} "
        "validation films")
    _, train_pooled = model_outputs(two_headed, train_inputs[chosen])
    if val_pooled is None:
        _, val_pooled = model_outputs(two_headed, val_inputs)
    films = np.asarray(train_inputs[chosen], dtype=np.float32)[..., 0] / 255.0
    arrays = fit_arrays(films, train_pooled, rng, max_layout)
    settings = {"version": 1, "input_size": size, "pool_layer": POOL_LAYER}
    guard = Guard(arrays, settings)
    val_scores, _ = guard.scores(val_inputs, val_pooled, films_of(val_inputs))
    checks = choose_thresholds(val_scores, val_groups, seed)
    settings = {
        **settings,
        "target_rejection_rate": TARGET_REJECTION,
        "checks": checks,
        "validation": validation_figures(val_scores, checks, val_groups, seed),
        "fitted_on": {"n_train": int(len(chosen)), "n_train_layout": int(min(len(chosen), max_layout)),
                      "n_val": int(len(val_inputs)), "seed": seed},
    }
    log(f"guard: {settings['validation']['rejected']} of {len(val_inputs)} validation films refused "
        f"({settings['validation']['rejection_rate']:.2%}; cross-fitted "
        f"{settings['validation']['cross_fitted_rejection_rate']:.2%})")
    return {"arrays": arrays, "settings": settings}


def fit_arrays(films: np.ndarray, pooled: np.ndarray, rng: np.random.Generator,
               max_layout: int = 1500) -> dict[str, np.ndarray]:
    """The learned parts, from training films only.

    Args:
        films: (n, S, S) float in [0, 1].
        pooled: their pooled features (n, D).
        rng: the random generator (layout examples, PCA).
        max_layout: at most this many films make layout examples.

    Returns:
        Arrays: Mahalanobis means and precisions (pool, statistics), PCA mean and
        components (appearance), layout classifier coefficients and intercepts.
    """
    from sklearn.covariance import LedoitWolf
    from sklearn.decomposition import PCA
    from sklearn.linear_model import LogisticRegression

    statistics = np.stack([film_statistics(film) for film in films])
    vectors = np.stack([layout_vector(film) for film in films])
    pool_fit, stats_fit = LedoitWolf().fit(pooled), LedoitWolf().fit(statistics)
    pca = PCA(n_components=min(PCA_COMPONENTS, len(films) - 1), random_state=int(rng.integers(2**31)))
    pca.fit(vectors)
    layout_films = films[np.sort(rng.choice(len(films), min(len(films), max_layout), replace=False))]
    features, labels = layout_examples(layout_films, rng)
    classifier = LogisticRegression(C=0.1, max_iter=3000).fit(features, labels)
    return {
        "pool_mean": pool_fit.location_, "pool_precision": pool_fit.precision_,
        "statistics_mean": stats_fit.location_, "statistics_precision": stats_fit.precision_,
        "appearance_mean": pca.mean_.astype(np.float64),
        "appearance_components": pca.components_.astype(np.float64),
        "layout_coef": classifier.coef_.astype(np.float64),
        "layout_intercept": classifier.intercept_.astype(np.float64),
    }


def thresholds_at(val_scores: dict[str, np.ndarray], alpha: float) -> dict[str, float]:
    """Each check's (1 - alpha) validation quantile, never below its floor (:data:`FLOORS`)."""
    return {name: max(FLOORS.get(name, -np.inf), float(np.quantile(val_scores[name], 1 - alpha)))
            for name in CHECKS}


def refused_by(scores: dict[str, np.ndarray], limits: dict[str, float]) -> np.ndarray:
    """Which images any check refuses at the given thresholds; (n,) bool."""
    return np.any([scores[name] > limits[name] for name in CHECKS], axis=0)


def patient_halves(groups: Sequence[str], seed: int) -> np.ndarray:
    """A seeded split of the validation films into two halves by patient; True for the first."""
    groups = np.asarray(groups).astype(str)
    names = np.unique(groups)
    return np.isin(groups, np.random.default_rng(seed).permutation(names)[: len(names) // 2])


def cross_fitted_rate(val_scores: dict[str, np.ndarray], half: np.ndarray, alpha: float) -> float:
    """Refusals among one half's films at thresholds set on the other half, both ways."""
    refused = []
    for fit_part in (half, ~half):
        limits = thresholds_at({k: v[fit_part] for k, v in val_scores.items()}, alpha)
        refused.append(refused_by({k: v[~fit_part] for k, v in val_scores.items()}, limits))
    return float(np.concatenate(refused).mean())


def choose_thresholds(val_scores: dict[str, np.ndarray], groups: Sequence[str] | None = None,
                      seed: int = 0, target: float = TARGET_REJECTION) -> dict:
    """Thresholds at one common validation quantile level, the largest that keeps the target.

    The level alpha (each check's threshold is its (1 - alpha) validation quantile, never
    below its floor) is found by bisection so that at most ``target`` of the validation films
    are refused, both counted on all of them and cross-fitted between two halves of the
    patients (thresholds from one half, refusals counted on the other), so the rate holds
    for films the thresholds never saw. The colour score is not observed on validation
    inputs; its threshold is its floor.

    Returns:
        check -> {"threshold", "scale" (threshold minus validation median), "floor", "alpha"}.
    """
    n = len(next(iter(val_scores.values())))
    half = patient_halves(groups if groups is not None else np.arange(n).astype(str), seed)

    def keeps_target(alpha: float) -> bool:
        in_sample = refused_by(val_scores, thresholds_at(val_scores, alpha)).mean()
        return in_sample <= target and cross_fitted_rate(val_scores, half, alpha) <= target

    low, high = 0.0, target
    for _ in range(30):
        middle = (low + high) / 2
        low, high = (middle, high) if keeps_target(middle) else (low, middle)
    limits = thresholds_at(val_scores, low)
    checks = {}
    for name in CHECKS:
        scale = limits[name] - float(np.median(val_scores[name]))
        checks[name] = {"threshold": limits[name], "scale": scale if scale > 1e-9 else 1.0,
                        "floor": FLOORS.get(name), "alpha": low}
    return checks


def validation_figures(val_scores: dict[str, np.ndarray], checks: dict,
                       groups: Sequence[str] | None, seed: int) -> dict:
    """How many validation films the thresholds refuse, in all and per check, and cross-fitted."""
    fired = {name: val_scores[name] > checks[name]["threshold"] for name in CHECKS}
    refused = np.any(list(fired.values()), axis=0)
    n = len(refused)
    half = patient_halves(groups if groups is not None else np.arange(n).astype(str), seed)
    alpha = checks[CHECKS[0]]["alpha"]
    return {"n": n, "rejected": int(refused.sum()), "rejection_rate": float(refused.mean()),
            "cross_fitted_rejection_rate": cross_fitted_rate(val_scores, half, alpha),
            "rejected_by_check": {name: int(value.sum()) for name, value in fired.items()}}


# ---------------------------------------------------------------- saving and loading


def save_guard(folder: str | Path, fitted: dict, extra: dict | None = None) -> dict:
    """Write ``guard.npz`` and the card's ``guard`` section (with the file's sha256).

    Args:
        folder: the model's folder in the store.
        fitted: what :func:`fit_guard` returned.
        extra: more entries for the card's section (the out-of-scope figures).

    Returns:
        The section written to the card.
    """
    folder = Path(folder)
    arrays = {key: np.asarray(value, dtype=np.float64) for key, value in fitted["arrays"].items()}
    np.savez(folder / GUARD_FILE, **arrays)
    section = {**fitted["settings"], **(extra or {}), "file": GUARD_FILE,
               "sha256": file_sha256(folder / GUARD_FILE)}
    card = read_card(folder.name, folder.parent)
    write_card(folder.name, {**card, "guard": section}, folder.parent)
    return section


def load_guard(loaded: LoadedModel) -> Guard | None:
    """The model's guard, or None when it has none (its card has no ``guard`` section).

    Raises:
        ModelStoreError: the card names a guard whose file is missing, altered, unreadable
            or made for another input size.
    """
    section = loaded.card.get("guard")
    if not section:
        return None
    path = Path(loaded.path) / section.get("file", GUARD_FILE)
    if not path.is_file():
        raise ModelStoreError(f"Model {loaded.name!r} lists an out-of-scope guard but {path.name} is "
                              "missing; restore it or run 'python -m pneumo fit-guard'.")
    if file_sha256(path) != section.get("sha256"):
        raise ModelStoreError(f"The out-of-scope guard of model {loaded.name!r} failed its integrity "
                              f"check ({path.name} does not match its card); restore it or run "
                              "'python -m pneumo fit-guard'.")
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError) as err:
        raise ModelStoreError(f"The out-of-scope guard of model {loaded.name!r} cannot be read "
                              f"({err}); run 'python -m pneumo fit-guard'.") from err
    if int(section.get("input_size", -1)) != loaded.input_size:
        raise ModelStoreError(f"The out-of-scope guard of model {loaded.name!r} was fitted for "
                              f"{section.get('input_size')}-pixel inputs, the model takes "
                              f"{loaded.input_size}; run 'python -m pneumo fit-guard'.")
    return Guard(arrays, section)
